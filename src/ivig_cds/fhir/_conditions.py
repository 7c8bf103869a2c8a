"""Conditions: the MS course (`ms_phenotype`) and an ongoing relapse (`acute_relapse`)."""

from __future__ import annotations

from collections import defaultdict

from fhir.resources.R4B.condition import Condition

from ivig_cds.fhir._parse import ref
from ivig_cds.fhir._record import Record, code_in

_SPECIFIC_PHENOTYPES = ("CIS", "RRMS", "SPMS", "PPMS")
_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def read_conditions(record: Record) -> None:
    """Set `ms_phenotype` and `acute_relapse` from confirmed, current Conditions."""
    phenotypes: dict[str, list[str]] = defaultdict(list)
    relapses: list[str] = []
    for condition in record.of(Condition):
        name = ref(condition)
        verification = code_in(condition.verificationStatus, _VERIFICATION)
        if verification in ("refuted", "entered-in-error"):
            continue
        diagnosis = record.match("ms_diagnosis", [condition.code])
        relapse = record.match("ms_relapse", [condition.code])
        if not diagnosis and not relapse:
            continue
        if verification in ("unconfirmed", "provisional", "differential"):
            record.notes.append(f"{name}: verificationStatus {verification}; not used")
            continue
        clinical = code_in(condition.clinicalStatus, _CLINICAL)
        if diagnosis:
            if clinical in ("inactive", "resolved"):
                record.notes.append(f"{name}: MS diagnosis is {clinical}; not used")
                continue
            record.ms_refs.append(name)
            values = {e.value for e in diagnosis} & set(_SPECIFIC_PHENOTYPES)
            for value in values:
                phenotypes[value].append(name)
        if relapse and _relapse_ongoing(record, condition, clinical):
            relapses.append(name)
    if len(phenotypes) == 1:
        ((value, refs),) = phenotypes.items()
        record.set("ms_phenotype", value, refs)
    elif len(phenotypes) > 1:
        refs = sorted({r for rs in phenotypes.values() for r in rs})
        described = " and ".join(
            f"{', '.join(sorted(set(rs)))} ({value})" for value, rs in sorted(phenotypes.items())
        )
        record.conflict(
            "ms_phenotype", refs, f"MS course conflict: {described} name different courses"
        )
    if relapses:
        record.set("acute_relapse", True, relapses)


def _relapse_ongoing(record: Record, condition: Condition, clinical: str | None) -> bool:
    abated = any(
        getattr(condition, f) is not None
        for f in ("abatementDateTime", "abatementPeriod", "abatementString", "abatementAge")
    )
    if clinical is None and not abated:
        record.notes.append(f"{ref(condition)}: MS relapse without clinicalStatus; not used")
    return clinical in ("active", "recurrence", "relapse") and not abated
