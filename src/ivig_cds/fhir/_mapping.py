"""FHIR R4 in, `PatientContext` out: the mapping and its result.

Nothing is guessed. A fact is set only from a resource whose code is in the code tables
(`codes/*.yaml`) and whose status says it holds; everything else stays unknown and shows in
the result's `missing_data`. When resources disagree (two MS courses, say), the field stays
unknown and the disagreement is reported with the resources that make it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.resource import Resource

from ivig_cds._errors import InvalidPatientError
from ivig_cds._evaluate import Evaluator, default_evaluator
from ivig_cds._patient import PatientContext
from ivig_cds._patient_input import parse_patient
from ivig_cds._recommendation import Recommendation
from ivig_cds._record_windows import RecordWindows
from ivig_cds.fhir._codes import CodeTables, default_code_tables
from ivig_cds.fhir._conditions import read_conditions
from ivig_cds.fhir._ivig_use import read_ivig_use
from ivig_cds.fhir._medications import read_medications
from ivig_cds.fhir._observations import read_edss, read_pregnancy_and_lactation
from ivig_cds.fhir._parse import FhirDataError, ref, resources_of, short
from ivig_cds.fhir._record import FhirConflict, Record
from ivig_cds.fhir._thrombosis import read_thrombotic_risk


@dataclass(frozen=True, slots=True)
class FhirMapping:
    """What the FHIR data says about the patient, and how it was read.

    Attributes:
        patient: the facts that mapped; unknown ones are None.
        conflicts: disagreements between resources; each leaves its field unknown.
        notes: resources that were read but deliberately not used, and why; then each code
            read through a site code map, with its file and line.
        unmapped: relevant resources whose codes are not in the code tables.
        sources: for each field that was set, the resources that set it; for
            `first_line_by_class` also per class (`first_line_by_class.interferon_beta`...).
        ms_on_record: a current, confirmed MS-family diagnosis (any course, or none named, or
            a code the tables do not know) is recorded. Without any MS-family code,
            `patient.ms_phenotype` is `not_ms` ("no MS diagnosis on record").
    """

    patient: PatientContext
    conflicts: tuple[FhirConflict, ...] = ()
    notes: tuple[str, ...] = ()
    unmapped: tuple[str, ...] = ()
    sources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ms_on_record: bool = False


def patient_from_fhir(
    data: Mapping[str, Any],
    *,
    as_of: dt.date | None = None,
    codes: CodeTables | None = None,
    windows: RecordWindows | None = None,
) -> FhirMapping:
    """Map FHIR R4 data about one patient to a `PatientContext`.

    Args:
        data: a Bundle (searchset or collection), one resource, or a CDS Hooks prefetch
            dictionary of resources, Bundles or nulls.
        as_of: the evaluation date for age and recency; default today.
        codes: code tables to use; default the shipped `fhir/codes/`.
        windows: how long dated answers count; default the shipped
            `rules/record-windows.yaml`.

    Returns:
        The mapped patient with its conflicts, notes and provenance.

    Raises:
        FhirDataError: the data is not FHIR R4 the adapter can read (its problems listed), or
            it describes more than one patient.
    """
    return patient_from_resources(resources_of(data), as_of=as_of, codes=codes, windows=windows)


def patient_from_resources(
    resources: list[Resource],
    *,
    as_of: dt.date | None = None,
    codes: CodeTables | None = None,
    windows: RecordWindows | None = None,
) -> FhirMapping:
    """`patient_from_fhir` for resources already parsed (by `resources_of`, one at a time for
    a bulk export, say); the same mapping, the same notes.

    Raises:
        FhirDataError: the resources describe more than one patient.
    """
    record = Record(resources, as_of or dt.date.today(), codes or default_code_tables(), windows)
    patient = _read_patient(record)
    read_conditions(record)
    read_thrombotic_risk(record)
    read_medications(record)
    read_ivig_use(record)
    read_pregnancy_and_lactation(record)
    read_edss(record)
    if patient is not None and patient.id:
        record.facts["patient_id"] = short(patient.id)[:128]
    try:
        context = parse_patient(record.facts)
    except InvalidPatientError as exc:  # pre-checked; kept so a gap cannot crash a caller
        raise FhirDataError(exc.problems) from None
    return FhirMapping(
        patient=context,
        conflicts=tuple(record.conflicts),
        notes=(*record.notes, *sorted(record.site_codes)),
        unmapped=tuple(record.unmapped),
        sources=dict(record.sources),
        ms_on_record=bool(record.ms_refs),
    )


def evaluate_fhir(
    bundle: Mapping[str, Any],
    *,
    evaluator: Evaluator | None = None,
    as_of: dt.date | None = None,
    codes: CodeTables | None = None,
) -> Recommendation:
    """Evaluate the patient a FHIR R4 Bundle (or prefetch dictionary) describes.

    Args:
        bundle: see `patient_from_fhir`.
        evaluator: the knowledge base to use; default the shipped one.
        as_of: the evaluation date for age and recency; default today.
        codes: code tables to use; default the shipped ones. With a site's own codes:
            `default_code_tables().with_site_maps(load_site_maps(["map.json"]))`.

    Raises:
        FhirDataError: the FHIR data is invalid, or resources conflict (each conflict is listed
            with the resources involved); resolve them in the record and try again.
    """
    mapping = patient_from_fhir(bundle, as_of=as_of, codes=codes)
    if mapping.conflicts:
        raise FhirDataError([f"{c.message}; correct the record" for c in mapping.conflicts])
    return (evaluator or default_evaluator()).evaluate(mapping.patient)


def _read_patient(record: Record) -> Patient | None:
    patients = list(record.of(Patient))
    ids = {p.id for p in patients}
    if len(ids) > 1:
        raise FhirDataError(
            [
                f"the data holds {len(ids)} different Patient resources "
                f"({', '.join(sorted(ref(p) for p in patients)[:5])}); send one patient's data"
            ]
        )
    if not patients:
        record.notes.append("no Patient resource: age and sex are unknown")
        return None
    patient: Patient = patients[0]
    if patient.gender in ("male", "female", "other"):
        record.set("sex", patient.gender, [ref(patient)])
    age = _age(patient.birthDate, record.as_of)
    if age is not None:
        record.set("age_years", age, [ref(patient)])
    elif patient.birthDate is not None:
        record.notes.append(
            f"{ref(patient)}: birth date too imprecise for an age on {record.as_of}"
        )
    return patient


def _age(birth: object, on: dt.date) -> int | None:
    if isinstance(birth, dt.date):
        earliest = latest = birth
    elif isinstance(birth, str) and len(birth) in (4, 7):  # YYYY or YYYY-MM
        year = int(birth[:4])
        first_month, last_month = (int(birth[5:7]),) * 2 if len(birth) == 7 else (1, 12)
        earliest = dt.date(year, first_month, 1)
        latest = dt.date(year, last_month, 28)  # the 28th exists in every month
        latest = max(latest, earliest)
    else:
        return None
    ages = {_years_between(d, on) for d in (earliest, latest)}
    age = ages.pop() if len(ages) == 1 else None
    return age if age is not None and 0 <= age <= 130 else None


def _years_between(born: dt.date, on: dt.date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
