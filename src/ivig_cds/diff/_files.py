"""Patient files and FHIR Bundles: read as `evaluate` reads them, evaluated once per side.

Files and folders are found and read by `cli.patient_files` (the same formats, limits and
located errors as `ivig-cds evaluate`). A FHIR Bundle is mapped with each side's own record
windows (knowledge-base data the adapter reads), once when both sides hold the same windows.
A file that cannot be read is an input error; a side that gives no answer for a valid patient
(a gap in its rules) is an answer of its own, "no answer", and is compared like any other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ivig_cds._errors import EngineError
from ivig_cds._patient import PatientContext
from ivig_cds.cli.patient_files import (
    MAX_FHIR_BYTES,
    PatientFileError,
    PatientSource,
    Problem,
    read_document,
    read_patient,
)
from ivig_cds.diff._answer import Answer, Compared
from ivig_cds.diff._sides import Side
from ivig_cds.diff._tally import InputError, Tally

Stdin = Callable[[], bytes]


def compare_files(
    sources: Sequence[PatientSource],
    old: Side,
    new: Side,
    tally: Tally,
    stdin: Stdin,
    *,
    fhir: bool = False,
    as_of: dt.date | None = None,
) -> None:
    """Compare each patient file (or FHIR Bundle, with `fhir`) into `tally`."""
    for source in sources:
        try:
            if fhir:
                item = _bundle(source, old, new, stdin, as_of or dt.date.today())
            else:
                patient = read_patient(source, stdin)
                item = _both(source.name, patient, patient, old, new)
        except PatientFileError as exc:
            tally.add_error(InputError(exc.source, one_line(exc)))
            continue
        tally.add(item)


def one_line(error: PatientFileError) -> str:
    """A file's problems on one line: what is wrong, then each problem where it is."""
    problems = "; ".join(str(p) for p in error.problems)
    return f"{error.summary}: {problems}" if problems else error.summary


def _both(
    name: str, old_patient: PatientContext, new_patient: PatientContext, old: Side, new: Side
) -> Compared:
    return Compared(
        unit="patient",
        source=name,
        patient=new_patient.patient_id or old_patient.patient_id,
        old=_answer(old, old_patient),
        new=_answer(new, new_patient),
        context=new_patient.model_dump(mode="json", exclude_none=True),
    )


def _answer(side: Side, patient: PatientContext) -> Answer:
    try:
        return Answer.of(side.evaluator.evaluate(patient))
    except EngineError as exc:  # a gap in this side's rules: its messages carry no patient
        return Answer.unanswered(str(exc))


def _bundle(source: PatientSource, old: Side, new: Side, stdin: Stdin, day: dt.date) -> Compared:
    document = read_document(source, stdin, max_bytes=MAX_FHIR_BYTES)
    if not isinstance(document.data, dict):
        raise PatientFileError(
            source.name, "is not a FHIR Bundle", [Problem("expected a JSON object")]
        )
    old_patient = _mapped(source, document.data, old, day)
    new_patient = (
        old_patient if new.windows == old.windows else _mapped(source, document.data, new, day)
    )
    return _both(source.name, old_patient, new_patient, old, new)


def _mapped(
    source: PatientSource, data: Mapping[str, Any], side: Side, day: dt.date
) -> PatientContext:
    from ivig_cds.fhir import patient_from_fhir  # noqa: PLC0415 (FHIR models load on use)

    try:
        mapping = patient_from_fhir(data, as_of=day, windows=side.windows)
    except ValueError as exc:  # FhirDataError: its problems name the resource and field
        raise PatientFileError(
            source.name, "is not a usable FHIR Bundle", [Problem(str(exc))]
        ) from None
    if mapping.conflicts:
        problems = [Problem(f"{c.message}; correct the record") for c in mapping.conflicts]
        raise PatientFileError(source.name, "is not a usable FHIR Bundle", problems)
    return mapping.patient
