"""Conditions: thrombotic risk factors (`thromboembolic_risk_factors`, knowledge spec v3).

A risk factor is venous thromboembolism (deep vein thrombosis, pulmonary embolism, or a history
of either) or a thrombophilia, coded as in the `thromboembolic_risk` table. History counts: a
deep vein thrombosis resolved years ago is still a risk factor, so active, recurrent, inactive,
remitted and resolved Conditions are all read; refuted or entered-in-error ones are not, and
unconfirmed ones are noted and not used. The list is set only when a factor is found: no factor
on record is not "none" (the project never guesses), so the field then stays unknown. A code
that looks thrombotic but is not in the table is reported as unmapped, never dropped silently.
"""

from __future__ import annotations

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.condition import Condition

from ivig_cds.fhir._codes import ICD10_SYSTEMS
from ivig_cds.fhir._parse import ref, short
from ivig_cds.fhir._record import Record, code_in

GROUP = "thromboembolic_risk"
_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_SNOMED = "http://snomed.info/sct"
# ICD-10 families of venous thromboembolism and thrombophilia (compared without the dot):
# pulmonary embolism, phlebitis and thrombophlebitis, portal vein thrombosis, other venous
# thrombosis, primary and other thrombophilia, personal history of venous thrombosis, and the
# obstetric venous thromboses.
_ICD10_FAMILIES = ("I26", "I80", "I81", "I82", "D685", "D686", "Z8671", "O223", "O871", "O882")
_SNOMED_WORDS = (
    "venous thrombosis",
    "vein thrombosis",
    "thromboembolism",
    "pulmonary embol",
    "thrombophilia",
    "factor v leiden",
    "antiphospholipid",
    "prothrombin gene",
    "antithrombin",
    "protein c deficiency",
    "protein s deficiency",
)
# SNOMED CT concepts that name a thrombosis without recording one in this patient.
_NOT_A_FACTOR = (
    "family history",
    "fh:",
    "suspected",
    "screening",
    "at risk",
    "risk of",
    "no history",
)
MAX_FACTORS = 50  # the patient context's limit
_PAST = {"inactive": "inactive", "remission": "in remission", "resolved": "resolved"}


def read_thrombotic_risk(record: Record) -> None:
    """Set `thromboembolic_risk_factors` from Conditions whose codes are in the table."""
    factors: set[str] = set()
    refs: list[str] = []
    for condition in record.of(Condition):
        entries = record.match(GROUP, [condition.code])
        unmapped = [] if entries else _unmapped_codes(record, condition.code)
        if not entries and not unmapped:
            continue
        name = ref(condition)
        verification = code_in(condition.verificationStatus, _VERIFICATION)
        if verification in ("refuted", "entered-in-error"):
            continue
        if verification in ("unconfirmed", "provisional", "differential"):
            record.notes.append(
                f"{name}: thrombotic risk factor not confirmed ({verification}); not used"
            )
            continue
        if unmapped:
            record.unmapped.append(
                f"{name}: {', '.join(unmapped)} looks like venous thromboembolism or a "
                "thrombophilia but is not in the code tables; not used as a risk factor"
            )
            continue
        clinical = code_in(condition.clinicalStatus, _CLINICAL)
        suffix = f" ({_PAST[clinical]})" if clinical in _PAST else ""
        factors.add(f"{entries[0].display}{suffix}")
        refs.append(name)
    if not factors:
        return
    listed = sorted(factors, key=lambda f: (f.casefold(), f))
    if len(listed) > MAX_FACTORS:
        record.notes.append(
            f"{len(listed)} thrombotic risk factors on record; the first {MAX_FACTORS} "
            "(alphabetically) are listed"
        )
    record.set("thromboembolic_risk_factors", listed[:MAX_FACTORS], refs)


def _unmapped_codes(record: Record, concept: CodeableConcept | None) -> list[str]:
    found = []
    for coding in (concept.coding or ()) if concept is not None else ():
        if record.codes.lookup(GROUP, coding.system, coding.code):
            continue
        if names_thrombotic_family(coding.system, coding.code, coding.display):
            found.append(f"{short(coding.system or '')}|{short(coding.code or '')}")
    return found


def names_thrombotic_family(system: str | None, code: str | None, display: str | None) -> bool:
    """Whether a coding looks like venous thromboembolism or a thrombophilia (the test for
    reporting a code as unmapped; also used to tell which resources of a bulk export the
    mapping reads)."""
    system, display = system or "", (display or "").lower()
    code = (code or "").strip().upper().replace(".", "")
    if system in ICD10_SYSTEMS:
        return code.startswith(_ICD10_FAMILIES)
    return (
        system == _SNOMED
        and any(word in display for word in _SNOMED_WORDS)
        and not any(word in display for word in _NOT_A_FACTOR)
    )
