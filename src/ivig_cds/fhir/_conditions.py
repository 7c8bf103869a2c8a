"""Conditions: the MS course (`ms_phenotype`) and an ongoing relapse (`acute_relapse`).

Real records keep every diagnosis made over the years (MS, then CIS, RRMS, SPMS, all still
active), so the course is read from the whole history: natural history orders the courses
CIS → RRMS → SPMS, and the most advanced one on record wins; PPMS stands apart (with a
relapsing course beside it, the record conflicts). A code of the MS family that the tables do
not know is never dropped silently: it is reported, and the course is then left unknown,
because it might name a later course than the ones that mapped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.condition import Condition

from ivig_cds.fhir._codes import ICD10_SYSTEMS
from ivig_cds.fhir._parse import ref, short
from ivig_cds.fhir._record import Record, code_in

_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_SNOMED = "http://snomed.info/sct"
_ICD11 = "http://id.who.int/icd/release/11/mms"
_MS_GROUPS = ("ms_diagnosis", "ms_relapse")
_RELAPSING_ORDER = ("CIS", "RRMS", "SPMS")  # the natural history of relapsing-onset MS
# SNOMED CT concepts that name MS without diagnosing it in this patient.
_NOT_A_DIAGNOSIS = ("family history", "suspected", "screening", "fh:", "history of", "at risk")


def read_conditions(record: Record) -> None:
    """Set `ms_phenotype` and `acute_relapse` from confirmed, current Conditions."""
    courses: dict[str, list[str]] = defaultdict(list)
    unmapped: list[str] = []
    relapses: list[str] = []
    mentioned = False  # any MS-family code at all, even one not used
    for condition in record.of(Condition):
        name = ref(condition)
        verification = code_in(condition.verificationStatus, _VERIFICATION)
        diagnosis = record.match("ms_diagnosis", [condition.code])
        relapse = record.match("ms_relapse", [condition.code])
        family = _unmapped_ms_codes(record, condition.code)
        if verification in ("refuted", "entered-in-error") or not (diagnosis or relapse or family):
            continue
        mentioned = True
        if verification in ("unconfirmed", "provisional", "differential"):
            record.notes.append(f"{name}: diagnosis not confirmed ({verification}); not used")
            continue
        clinical = code_in(condition.clinicalStatus, _CLINICAL)
        if diagnosis or family:
            if clinical in ("inactive", "resolved"):
                record.notes.append(f"{name}: MS diagnosis is {clinical}; not used")
                continue
            record.ms_refs.append(name)
            if family:
                record.unmapped.append(
                    f"{name}: MS-family code {', '.join(family)} is not in the code tables"
                )
                unmapped.append(name)
            for value in {str(e.value) for e in diagnosis}:
                courses[value].append(name)
        else:
            record.ms_refs.append(name)  # a relapse of MS is MS on record
        if relapse and _relapse_ongoing(record, condition, clinical):
            relapses.append(name)
    if record.ms_refs:
        _choose_course(record, courses, unmapped)
    elif not mentioned:
        _no_ms(record)
    if relapses:
        record.set("acute_relapse", True, relapses)


def _no_ms(record: Record) -> None:
    """No MS-family code among the record's diagnoses (not even one not used): not MS (C12).
    Data with no Condition at all says nothing about diagnoses (they may not have been sent),
    so the course then stays unknown."""
    conditions = sum(1 for _ in record.of(Condition))
    if not conditions:
        record.notes.append("no Condition resources in the data: the MS course is unknown")
        return
    record.set("ms_phenotype", "not_ms", [])
    read = f"{conditions} Condition resource{'s' if conditions != 1 else ''} read"
    record.notes.append(f"no MS diagnosis on record ({read}): the patient is taken not to have MS")


def _choose_course(record: Record, courses: dict[str, list[str]], unmapped: list[str]) -> None:
    """The course the whole history supports, or none, with the reason in the notes."""
    named = {value: sorted(set(refs)) for value, refs in courses.items() if value != "unspecified"}
    relapsing = [value for value in _RELAPSING_ORDER if value in named]
    if "PPMS" in named and relapsing:
        refs = sorted({r for rs in named.values() for r in rs})
        described = " and ".join(
            f"{', '.join(named[value])} ({value})" for value in [*relapsing, "PPMS"]
        )
        record.conflict(
            "ms_phenotype",
            refs,
            f"MS course conflict: {described} name different courses (primary progressive MS "
            "does not follow a relapsing course)",
        )
        return
    if unmapped:
        record.notes.append(
            f"MS course left unknown: {', '.join(sorted(set(unmapped)))} carries an MS code "
            "that is not in the code tables and may name a later course"
        )
        return
    if "PPMS" in named:
        record.set("ms_phenotype", "PPMS", named["PPMS"])
        return
    if not relapsing:
        return  # MS on record, no course named
    latest = relapsing[-1]
    if latest == "CIS" and "unspecified" in courses:
        record.notes.append(
            f"MS course left unknown: {', '.join(sorted(set(courses['unspecified'])))} "
            f"confirms MS beside the CIS diagnosis in {', '.join(named['CIS'])}, so the patient "
            "is past CIS; no code names the course"
        )
        return
    record.set("ms_phenotype", latest, named[latest])
    if len(relapsing) > 1:
        earlier = "; ".join(f"{', '.join(named[v])} ({v})" for v in relapsing[:-1])
        record.notes.append(
            f"MS course {latest}, from {', '.join(named[latest])}: the most advanced course on "
            f"record (CIS → RRMS → SPMS), whatever the dates; earlier courses still active: "
            f"{earlier}"
        )


def _unmapped_ms_codes(record: Record, concept: CodeableConcept | None) -> list[str]:
    """Codings that name MS but are not in the tables: ICD-10 G35*, ICD-11 8A40*, or a SNOMED
    CT code whose display names multiple sclerosis (not a family history, suspicion or
    screening concept). Other demyelinating diseases (NMOSD, ADEM, CIDP) do not match."""
    found = []
    for coding in _codings(concept):
        if any(record.codes.lookup(g, coding.system, coding.code) for g in _MS_GROUPS):
            continue
        if names_ms_family(coding.system, coding.code, coding.display):
            found.append(f"{short(coding.system or '')}|{short(coding.code or '')}")
    return found


def names_ms_family(system: str | None, code: str | None, display: str | None) -> bool:
    """The MS-family test of `_unmapped_ms_codes` for one coding (also used to tell which
    resources of a bulk export the mapping could read)."""
    system, code, display = system or "", (code or "").strip().upper(), (display or "").lower()
    return (
        (system in ICD10_SYSTEMS and code.startswith("G35"))
        or (system == _ICD11 and code.startswith("8A40"))
        or (
            system == _SNOMED
            and "multiple sclerosis" in display
            and not any(word in display for word in _NOT_A_DIAGNOSIS)
        )
    )


def _codings(concept: CodeableConcept | None) -> Iterable[Any]:
    return (concept.coding or ()) if concept is not None else ()


def _relapse_ongoing(record: Record, condition: Condition, clinical: str | None) -> bool:
    abated = any(
        getattr(condition, f) is not None
        for f in ("abatementDateTime", "abatementPeriod", "abatementString", "abatementAge")
    )
    if clinical is None and not abated:
        record.notes.append(f"{ref(condition)}: MS relapse with no clinical status; not used")
    return clinical in ("active", "recurrence", "relapse") and not abated
