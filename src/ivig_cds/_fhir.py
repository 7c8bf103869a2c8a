"""FHIR R4 in, `PatientContext` out: the adapter between EHR data and the engine.

Input is a FHIR R4 Bundle (searchset or collection), a single resource, or a CDS Hooks
prefetch dictionary whose values are resources, Bundles or null. Every resource the mapping
reads is parsed by the `fhir.resources.R4B` models first (the package's default is R5, which
is not what R4 EHRs send), so malformed FHIR fails with a located message, never a dump.

Nothing is guessed. A fact is set only from a resource whose code is in the code tables
(`fhir_codes/*.yaml`) and whose status says it holds; everything else stays unknown and shows
in the result's `missing_data`. When resources disagree (two MS courses, say), the field stays
unknown and the disagreement is reported with the resources that make it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.medication import Medication
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.procedure import Procedure
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.resource import Resource
from pydantic import BaseModel, ValidationError

from ivig_cds._errors import InvalidPatientError, IvigCdsError
from ivig_cds._evaluate import Evaluator, default_evaluator
from ivig_cds._fhir_codes import CodeTables, default_code_tables
from ivig_cds._patient import PatientContext, parse_patient
from ivig_cds._recommendation import Recommendation
from ivig_cds._yaml import shorten

__all__ = [
    "FhirConflict",
    "FhirDataError",
    "FhirMapping",
    "evaluate_fhir",
    "ivig_orders",
    "patient_from_fhir",
    "resources_of",
]

MAX_RESOURCES = 20_000  # far above a real chart; bounds the work one request can cause
_MAX_PROBLEMS = 10

# How long a recorded status stays current. A pregnancy lasts at most about 42 weeks, so an
# older "pregnant" answer says nothing about today; the same reasoning bounds breastfeeding and
# the postpartum period the knowledge base speaks of (the rules do not define its end; 52 weeks
# is the adapter's conservative choice and should be reviewed with the clinical lead).
PREGNANCY_STATUS_VALID_WEEKS = 42
BREASTFEEDING_STATUS_VALID_WEEKS = 26
POSTPARTUM_WINDOW_WEEKS = 52

_SPECIFIC_PHENOTYPES = ("CIS", "RRMS", "SPMS", "PPMS")
_FIRST_LINE = ("interferon_beta", "glatiramer_acetate")
_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
_ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"


class FhirDataError(IvigCdsError, ValueError):
    """The FHIR input is invalid or contradicts itself; `problems` has one line per issue.

    Lines name resources by type and id and fields by path; they never quote patient data.
    """

    def __init__(self, problems: Sequence[str], *, source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        noun = "problem" if len(self.problems) == 1 else "problems"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{where}unusable FHIR data ({len(self.problems)} {noun}):\n{lines}")


@dataclass(frozen=True, slots=True)
class FhirConflict:
    """Resources that give one patient field incompatible values; the field stays unknown."""

    field: str
    resources: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class FhirMapping:
    """What the FHIR data says about the patient, and how it was read.

    Attributes:
        patient: the facts that mapped; unknown ones are None.
        conflicts: disagreements between resources; each leaves its field unknown.
        notes: resources that were read but deliberately not used, and why.
        unmapped: relevant resources whose codes are not in the code tables.
        sources: for each field that was set, the resources that set it.
        ms_on_record: an MS-spectrum diagnosis (any course, or none named) is recorded.
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
) -> FhirMapping:
    """Map FHIR R4 data about one patient to a `PatientContext`.

    Args:
        data: a Bundle (searchset or collection), one resource, or a CDS Hooks prefetch
            dictionary of resources, Bundles or nulls.
        as_of: the evaluation date for age and recency; default today.
        codes: code tables to use; default the shipped `fhir_codes/`.

    Returns:
        The mapped patient with its conflicts, notes and provenance.

    Raises:
        FhirDataError: the data is not FHIR R4 the adapter can read (its problems listed), or
            it describes more than one patient.
    """
    resources = resources_of(data)
    return _Mapper(resources, as_of or dt.date.today(), codes or default_code_tables()).run()


def evaluate_fhir(
    bundle: Mapping[str, Any],
    *,
    evaluator: Evaluator | None = None,
    as_of: dt.date | None = None,
) -> Recommendation:
    """Evaluate the patient a FHIR R4 Bundle (or prefetch dictionary) describes.

    Args:
        bundle: see `patient_from_fhir`.
        evaluator: the knowledge base to use; default the shipped one.
        as_of: the evaluation date for age and recency; default today.

    Raises:
        FhirDataError: the FHIR data is invalid, or resources conflict (each conflict is listed
            with the resources involved); resolve them in the record and try again.
    """
    mapping = patient_from_fhir(bundle, as_of=as_of)
    if mapping.conflicts:
        raise FhirDataError([f"{c.message}; correct the record" for c in mapping.conflicts])
    return (evaluator or default_evaluator()).evaluate(mapping.patient)


# --- reading resources ----------------------------------------------------------------------


def resources_of(data: object) -> list[Resource]:
    """Parse `data` into R4B resources, flattening Bundles; see `patient_from_fhir`.

    Raises:
        FhirDataError: not a mapping, an unknown or malformed resource, an unsupported Bundle
            type, or more than `MAX_RESOURCES` resources.
    """
    if not isinstance(data, Mapping):
        raise FhirDataError([f"expected a JSON object, got {type(data).__name__}"])
    if "resourceType" in data:
        items: list[tuple[str, object]] = [("input", data)]
    else:
        items = [(f"prefetch '{_short(str(k))}'", v) for k, v in data.items() if v is not None]
    problems: list[str] = []
    found: list[Resource] = []
    for where, raw in items:
        parsed = _parse(where, raw, problems)
        if parsed is None:
            continue
        if isinstance(parsed, Bundle):
            _unbundle(where, parsed, found, problems)
        elif parsed.get_resource_type() != "OperationOutcome":  # a prefetch the EHR could not do
            found.append(parsed)
        if len(found) > MAX_RESOURCES:
            raise FhirDataError([f"more than {MAX_RESOURCES} resources; send one patient's data"])
    if problems:
        raise FhirDataError(problems[:_MAX_PROBLEMS] + _more(problems))
    return found


def _parse(where: str, raw: object, problems: list[str]) -> Resource | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a FHIR resource (a JSON object), got {_kind(raw)}")
        return None
    kind = raw.get("resourceType")
    if not isinstance(kind, str) or not kind:
        problems.append(f"{where}: no resourceType; is this FHIR JSON?")
        return None
    try:
        model = get_fhir_model_class(kind)
    except (KeyError, ValueError, AttributeError, ImportError):
        problems.append(f"{where}: '{_short(kind)}' is not a FHIR R4 resource type")
        return None
    return _validated(where, model, raw, problems)


def _validated(
    where: str, model: type[BaseModel], raw: Mapping[str, Any], problems: list[str]
) -> Resource | None:
    kind = raw["resourceType"]
    name = _ref_of(kind, raw.get("id"))
    shape = _shape_problems(raw)
    if shape:
        problems.extend(f"{where}: {name}: {problem}" for problem in shape)
        return None
    try:
        resource = model.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False)[:_MAX_PROBLEMS]:
            loc = err["loc"]
            owner = name
            if kind == "Bundle" and len(loc) > 2 and loc[0] == "entry" and loc[2] == "resource":
                owner = f"{name} entry {loc[1]} ({_entry_ref(raw, loc[1])})"
                loc = loc[3:]
            path = ".".join(_short(str(p)) for p in loc) or "resource"
            problems.append(f"{where}: {owner}: {path}: {_message(err['msg'])}")
        return None
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError):
        # fhir.resources raises these, not ValidationError, for some malformed nesting
        problems.append(f"{where}: {name}: is not FHIR R4 JSON the models can read")
        return None
    return resource  # type: ignore[return-value]  # every R4B resource model is a Resource


def _shape_problems(raw: Mapping[Any, Any]) -> list[str]:
    """What FHIR JSON forbids and the R4B models crash on or let through instead of reporting:
    keys that are not text, nested resources of no known type, and `null` inside a list (JSON
    allows it only in a primitive array that has a `_name` partner holding its extensions)."""
    problems: list[str] = []
    stack: list[tuple[object, str]] = [(raw, "")]
    while stack and len(problems) < _MAX_PROBLEMS:
        value, path = stack.pop()
        children: list[tuple[object, str]] = []
        if isinstance(value, Mapping):
            for key, child in value.items():
                if not isinstance(key, str):
                    problems.append(f"{path or 'resource'}: keys must be text")
                    continue
                at = f"{path}.{_short(key)}" if path else _short(key)
                if key == "resourceType" and path and not _is_resource_type(child):
                    shown = _short(child) if isinstance(child, str) else _kind(child)
                    problems.append(f"{at}: '{shown}' is not a FHIR R4 resource type")
                partner = key[1:] if key.startswith("_") else f"_{key}"
                if isinstance(child, list | tuple) and partner not in value and None in child:
                    problems.append(f"{at}.{child.index(None)}: null is not allowed in a list")
                children.append((child, at))
        elif isinstance(value, list | tuple):
            children = [(item, f"{path}.{i}") for i, item in enumerate(value)]
        stack.extend(reversed(children))
    return problems


def _is_resource_type(kind: object) -> bool:
    if not isinstance(kind, str) or not kind:
        return False
    try:
        get_fhir_model_class(kind)
    except (KeyError, ValueError, AttributeError, ImportError):
        return False
    return True


def _entry_ref(bundle: Mapping[str, Any], index: object) -> str:
    entries = bundle.get("entry")
    if isinstance(entries, list) and isinstance(index, int) and 0 <= index < len(entries):
        entry = entries[index]
        item = entry.get("resource") if isinstance(entry, Mapping) else None
        if isinstance(item, Mapping):
            return _ref_of(str(item.get("resourceType", "resource")), item.get("id"))
    return "resource"


def _unbundle(where: str, bundle: Bundle, found: list[Resource], problems: list[str]) -> None:
    if bundle.type not in ("searchset", "collection"):
        problems.append(
            f"{where}: Bundle type '{_short(str(bundle.type))}' is not supported; "
            "send a searchset or collection Bundle"
        )
        return
    for entry in bundle.entry or ():
        resource = entry.resource
        if resource is None or (entry.search is not None and entry.search.mode == "outcome"):
            continue
        if isinstance(resource, Bundle):
            problems.append(f"{where}: nested Bundles are not supported")
            continue
        if resource.get_resource_type() != "OperationOutcome":
            found.append(resource)


def _message(msg: str) -> str:
    return msg.removeprefix("Value error, ")


def _more(problems: list[str]) -> list[str]:
    extra = len(problems) - _MAX_PROBLEMS
    return [f"... and {extra} more"] if extra > 0 else []


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _short(text: str) -> str:
    return shorten(text)  # at most 60 characters, on one line


def _ref_of(kind: str, rid: object) -> str:
    return f"{kind}/{_short(str(rid))}" if isinstance(rid, str) and rid else f"{kind} (no id)"


def ref(resource: Resource) -> str:
    """`Type/id` of a resource, for messages and provenance."""
    return _ref_of(resource.get_resource_type(), resource.id)


# --- mapping --------------------------------------------------------------------------------


@dataclass
class _Dated:
    value: object
    when: dt.date | None
    source: str


class _Mapper:
    def __init__(self, resources: list[Resource], as_of: dt.date, codes: CodeTables) -> None:
        self.resources = resources
        self.as_of = as_of
        self.codes = codes
        self.facts: dict[str, object] = {}
        self.sources: dict[str, tuple[str, ...]] = {}
        self.conflicts: list[FhirConflict] = []
        self.notes: list[str] = []
        self.unmapped: list[str] = []
        self.medications = {
            f"#{m.id}" if m.id else "": m
            for r in resources
            for m in (getattr(r, "contained", None) or ())
            if isinstance(m, Medication)
        }
        self.medications.update(
            {f"Medication/{r.id}": r for r in resources if isinstance(r, Medication) and r.id}
        )

    def of(self, kind: type[Resource]) -> Iterator[Any]:
        return (r for r in self.resources if isinstance(r, kind))

    def run(self) -> FhirMapping:
        patient = self._patient()
        self._conditions()
        self._medications_and_allergies()
        self._pregnancy_and_lactation()
        self._edss()
        if patient is not None and patient.id:
            self.facts["patient_id"] = _short(patient.id)[:128]
        try:
            context = parse_patient(self.facts)
        except InvalidPatientError as exc:  # pre-checked; kept so a gap cannot crash a caller
            raise FhirDataError(exc.problems) from None
        ms_on_record = "ms_phenotype" in self.sources or bool(self._ms_refs)
        return FhirMapping(
            patient=context,
            conflicts=tuple(self.conflicts),
            notes=tuple(self.notes),
            unmapped=tuple(self.unmapped),
            sources=dict(self.sources),
            ms_on_record=ms_on_record,
        )

    def _set(self, name: str, value: object, sources: Iterable[str]) -> None:
        self.facts[name] = value
        self.sources[name] = tuple(sorted(set(sources)))

    def _conflict(self, name: str, sources: Iterable[str], message: str) -> None:
        refs = tuple(sorted(set(sources)))
        self.conflicts.append(FhirConflict(field=name, resources=refs, message=message))

    # Patient --------------------------------------------------------------------------------

    def _patient(self) -> Patient | None:
        patients = list(self.of(Patient))
        ids = {p.id for p in patients}
        if len(ids) > 1:
            raise FhirDataError(
                [
                    f"the data holds {len(ids)} different Patient resources "
                    f"({', '.join(sorted(ref(p) for p in patients)[:5])}); send one patient's data"
                ]
            )
        if not patients:
            self.notes.append("no Patient resource: age and sex are unknown")
            return None
        patient: Patient = patients[0]
        if patient.gender in ("male", "female", "other"):
            self._set("sex", patient.gender, [ref(patient)])
        age = self._age(patient.birthDate)
        if age is not None:
            self._set("age_years", age, [ref(patient)])
        elif patient.birthDate is not None:
            self.notes.append(f"{ref(patient)}: birthDate too imprecise for an age on {self.as_of}")
        return patient

    def _age(self, birth: object) -> int | None:
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
        ages = {_years_between(d, self.as_of) for d in (earliest, latest)}
        age = ages.pop() if len(ages) == 1 else None
        return age if age is not None and 0 <= age <= 130 else None

    # Conditions -----------------------------------------------------------------------------

    _ms_refs: list[str]

    def _conditions(self) -> None:
        phenotypes: dict[str, list[str]] = defaultdict(list)
        self._ms_refs = []
        relapses: list[str] = []
        for condition in self.of(Condition):
            name = ref(condition)
            verification = _code_in(condition.verificationStatus, _VERIFICATION)
            if verification in ("refuted", "entered-in-error"):
                continue
            diagnosis = self._match("ms_diagnosis", [condition.code])
            relapse = self._match("ms_relapse", [condition.code])
            if not diagnosis and not relapse:
                continue
            if verification in ("unconfirmed", "provisional", "differential"):
                self.notes.append(f"{name}: verificationStatus {verification}; not used")
                continue
            clinical = _code_in(condition.clinicalStatus, _CLINICAL)
            if diagnosis:
                if clinical in ("inactive", "resolved"):
                    self.notes.append(f"{name}: MS diagnosis is {clinical}; not used")
                    continue
                self._ms_refs.append(name)
                values = {e.value for e in diagnosis} & set(_SPECIFIC_PHENOTYPES)
                for value in values:
                    phenotypes[value].append(name)
            if relapse and self._relapse_ongoing(condition, clinical):
                relapses.append(name)
        if len(phenotypes) == 1:
            ((value, refs),) = phenotypes.items()
            self._set("ms_phenotype", value, refs)
        elif len(phenotypes) > 1:
            refs = sorted({r for rs in phenotypes.values() for r in rs})
            described = " and ".join(
                f"{', '.join(sorted(set(rs)))} ({value})"
                for value, rs in sorted(phenotypes.items())
            )
            self._conflict(
                "ms_phenotype", refs, f"MS course conflict: {described} name different courses"
            )
        if relapses:
            self._set("acute_relapse", True, relapses)

    def _relapse_ongoing(self, condition: Condition, clinical: str | None) -> bool:
        abated = any(
            getattr(condition, f) is not None
            for f in ("abatementDateTime", "abatementPeriod", "abatementString", "abatementAge")
        )
        if clinical is None and not abated:
            self.notes.append(f"{ref(condition)}: MS relapse without clinicalStatus; not used")
        return clinical in ("active", "recurrence", "relapse") and not abated

    def _match(self, group: str, concepts: Iterable[CodeableConcept | None]) -> list[Any]:
        found = []
        for concept in concepts:
            for coding in (concept.coding or ()) if concept is not None else ():
                entry = self.codes.lookup(group, coding.system, coding.code)
                if entry is not None:
                    found.append(entry)
        return found

    # Medications and allergies --------------------------------------------------------------

    def _drug_concepts(self, resource: Any) -> list[CodeableConcept | None]:
        concepts: list[CodeableConcept | None] = [resource.medicationCodeableConcept]
        reference: Reference | None = resource.medicationReference
        medication = self.medications.get(reference.reference or "") if reference else None
        if medication is not None:
            concepts.append(medication.code)
            concepts.extend(i.itemCodeableConcept for i in medication.ingredient or ())
        return concepts

    def _medications_and_allergies(self) -> None:
        active: dict[str, list[str]] = defaultdict(list)
        intolerant: dict[str, list[str]] = defaultdict(list)
        iv_steroid: list[str] = []
        for resource in (*self.of(MedicationStatement), *self.of(MedicationRequest)):
            self._medication_use(resource, active, intolerant, iv_steroid)
        for allergy in self.of(AllergyIntolerance):
            clinical = _code_in(allergy.clinicalStatus, _ALLERGY_CLINICAL)
            verification = _code_in(allergy.verificationStatus, _ALLERGY_VERIFICATION)
            if verification in ("refuted", "entered-in-error") or clinical in (
                "inactive",
                "resolved",
            ):
                continue
            concepts = [allergy.code, *(r.substance for r in allergy.reaction or ())]
            for drug in {e.value for e in self._match("medication", concepts)} & set(_FIRST_LINE):
                intolerant[drug].append(ref(allergy))
        self._first_line(active, intolerant)
        if not iv_steroid:
            return
        if self.facts.get("acute_relapse") is True:
            self._set("on_iv_methylprednisolone", True, iv_steroid)
        else:
            self.notes.append(
                f"{', '.join(sorted(iv_steroid))}: IV methylprednisolone without a recorded "
                "MS relapse; not used"
            )

    def _medication_use(
        self,
        resource: MedicationStatement | MedicationRequest,
        active: dict[str, list[str]],
        intolerant: dict[str, list[str]],
        iv_steroid: list[str],
    ) -> None:
        if resource.status == "entered-in-error" or (
            isinstance(resource, MedicationRequest) and resource.intent == "proposal"
        ):
            return
        drugs = {e.value for e in self._match("medication", self._drug_concepts(resource))}
        if not drugs:
            return
        name = ref(resource)
        reasons: list[CodeableConcept | None]
        if isinstance(resource, MedicationStatement):
            reasons = [*(resource.statusReason or ())]
            routes = [d.route for d in resource.dosage or ()]
        else:
            reasons = [resource.statusReason]
            routes = [d.route for d in resource.dosageInstruction or ()]
        stopped = resource.status in ("stopped", "completed", "cancelled", "on-hold")
        for drug in drugs & set(_FIRST_LINE):
            if stopped and self._match("intolerance_reason", reasons):
                intolerant[drug].append(name)
            elif resource.status == "active":
                active[drug].append(name)
        if "methylprednisolone" in drugs and resource.status == "active":
            if self._match("route", routes):
                iv_steroid.append(name)
            else:
                self.notes.append(f"{name}: methylprednisolone without an IV route; not used")

    def _first_line(
        self, active: Mapping[str, list[str]], intolerant: Mapping[str, list[str]]
    ) -> None:
        tolerated = {drug: refs for drug, refs in active.items() if drug not in intolerant}
        for drug in set(active) & set(intolerant):
            self.notes.append(
                f"{', '.join(sorted(active[drug]))}: {drug.replace('_', ' ')} is active although "
                f"{', '.join(sorted(intolerant[drug]))} records intolerance; counted as not "
                "tolerated"
            )
        if tolerated:
            self._set("first_line_dmt", "suitable", [r for rs in tolerated.values() for r in rs])
        elif intolerant:
            self._set(
                "first_line_dmt", "not_tolerated", [r for rs in intolerant.values() for r in rs]
            )

    # Pregnancy, delivery, breastfeeding -----------------------------------------------------

    def _observations(self, kind: str) -> Iterator[Observation]:
        for observation in self.of(Observation):
            if observation.status not in ("final", "amended", "corrected"):
                continue
            if any(e.value == kind for e in self._match("observation_kind", [observation.code])):
                yield observation

    def _current(self, kind: str, answers: str, weeks: int) -> list[_Dated]:
        """The latest answers to an Observation kind within `weeks` of the evaluation date."""
        dated: list[_Dated] = []
        for observation in self._observations(kind):
            name = ref(observation)
            values = {e.value for e in self._match(answers, [observation.valueCodeableConcept])}
            if not values:
                self.unmapped.append(name)
                continue
            when = _date_of(
                observation.effectiveDateTime,
                observation.effectivePeriod.end if observation.effectivePeriod else None,
                observation.effectivePeriod.start if observation.effectivePeriod else None,
                observation.effectiveInstant,
                observation.issued,
            )
            if when is None or when > self.as_of:
                self.notes.append(f"{name}: no usable effective date; not used")
                continue
            if (self.as_of - when).days > weeks * 7:
                self.notes.append(f"{name}: older than {weeks} weeks; not used")
                continue
            dated.extend(_Dated(v, when, name) for v in values if v != "unknown")
        if not dated:
            return []
        latest = max(d.when for d in dated if d.when is not None)
        return [d for d in dated if d.when == latest]

    def _pregnancy_and_lactation(self) -> None:
        status = self._current("pregnancy_status", "pregnancy_answer", PREGNANCY_STATUS_VALID_WEEKS)
        delivery = self._delivery()
        male = self.facts.get("sex") == "male"
        values = {d.value for d in status}
        refs = [d.source for d in status]
        if len(values) > 1:
            self._conflict(
                "pregnancy_status",
                refs,
                f"pregnancy status conflict: {', '.join(sorted(refs))} give different answers "
                "on the same date",
            )
            values = set()
        observed = values.pop() if values else None
        observed_on = status[0].when if status else None
        if delivery is not None and (
            observed != "pregnant" or (observed_on is not None and observed_on <= delivery.when)  # type: ignore[operator]
        ):
            weeks = (self.as_of - delivery.when).days // 7  # type: ignore[operator]
            if male:
                self._male_conflict("pregnancy_status", delivery.source, "records a delivery")
            else:
                self._set("pregnancy_status", "postpartum", [delivery.source])
                self._set("weeks_postpartum", weeks, [delivery.source])
        elif observed is not None:
            if male and observed == "pregnant":
                self._male_conflict("pregnancy_status", refs[0], "records a pregnancy")
            else:
                self._set("pregnancy_status", observed, refs)
        feeding = self._current(
            "breastfeeding", "breastfeeding_answer", BREASTFEEDING_STATUS_VALID_WEEKS
        )
        answers = {d.value for d in feeding}
        feeding_refs = [d.source for d in feeding]
        if len(answers) > 1:
            self._conflict(
                "breastfeeding",
                feeding_refs,
                f"breastfeeding conflict: {', '.join(sorted(feeding_refs))} give different "
                "answers on the same date",
            )
        elif answers:
            value = answers.pop() == "yes"
            if male and value:
                self._male_conflict("breastfeeding", feeding_refs[0], "records breastfeeding")
            else:
                self._set("breastfeeding", value, feeding_refs)

    def _male_conflict(self, name: str, source: str, what: str) -> None:
        patient = self.sources.get("sex", ("Patient",))[0]
        self._conflict(name, [patient, source], f"{patient} is male but {source} {what}")

    def _delivery(self) -> _Dated | None:
        latest: _Dated | None = None
        for procedure in self.of(Procedure):
            if procedure.status != "completed":
                continue
            if not self._match("delivery", [procedure.code]):
                continue
            name = ref(procedure)
            when = _date_of(
                procedure.performedDateTime,
                procedure.performedPeriod.end if procedure.performedPeriod else None,
                procedure.performedPeriod.start if procedure.performedPeriod else None,
            )
            if when is None or when > self.as_of:
                self.notes.append(f"{name}: delivery without a usable date; not used")
                continue
            if (self.as_of - when).days > POSTPARTUM_WINDOW_WEEKS * 7:
                continue  # an old delivery says nothing about now
            if latest is None or when > latest.when:  # type: ignore[operator]
                latest = _Dated("delivery", when, name)
        return latest

    # EDSS -----------------------------------------------------------------------------------

    def _edss(self) -> None:
        scores: list[_Dated] = []
        for observation in self._observations("edss"):
            quantity = observation.valueQuantity
            value = (
                float(quantity.value)
                if quantity is not None and quantity.value is not None
                else None
            )
            if value is None or not 0 <= value <= 10 or (value * 2) % 1:
                self.notes.append(
                    f"{ref(observation)}: not an EDSS score from 0 to 10 in steps of 0.5"
                )
                continue
            when = _date_of(observation.effectiveDateTime, observation.issued)
            scores.append(_Dated(value, when, ref(observation)))
        dated = [s for s in scores if s.when is not None]
        if dated:
            latest = max(dated, key=lambda s: s.when)  # type: ignore[arg-type, return-value]
            same_day = {s.value for s in dated if s.when == latest.when}
            if len(same_day) == 1:
                self._set("edss", latest.value, [latest.source])
            else:
                self._conflict(
                    "edss",
                    [s.source for s in dated if s.when == latest.when],
                    "EDSS conflict: different scores recorded on the same date",
                )


def _code_in(concept: CodeableConcept | None, system: str) -> str | None:
    for coding in (concept.coding or ()) if concept is not None else ():
        if coding.system == system and coding.code:
            return str(coding.code)
    return None


def _date_of(*candidates: object) -> dt.date | None:
    for value in candidates:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
    return None


def _years_between(born: dt.date, on: dt.date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


# --- orders ---------------------------------------------------------------------------------


def ivig_orders(
    resources: Iterable[Resource], codes: CodeTables | None = None
) -> list[MedicationRequest]:
    """The MedicationRequests among `resources` that order IVIG (by code, contained or not)."""
    tables = codes or default_code_tables()
    items = list(resources)
    mapper = _Mapper(items, dt.date.today(), tables)
    return [
        r
        for r in items
        if isinstance(r, MedicationRequest)
        and r.status != "entered-in-error"
        and any(e.value == "ivig" for e in mapper._match("medication", mapper._drug_concepts(r)))
    ]
