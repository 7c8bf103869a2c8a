"""Builders for realistic FHIR R4 records in tests: each call is one resource as EHRs send it."""

from __future__ import annotations

from typing import Any

SCT = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10GM = "http://fhir.de/CodeSystem/bfarm/icd-10-gm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
LOINC = "http://loinc.org"
_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def patient(pid: str = "p", gender: str = "female", birth: str = "1985-04-02") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": gender, "birthDate": birth}


def condition(
    cid: str,
    system: str,
    code: str,
    display: str,
    *,
    recorded: str = "2020-01-01",
    clinical: str = "active",
    verification: str = "confirmed",
) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": {"coding": [{"system": _CLINICAL, "code": clinical}]},
        "verificationStatus": {"coding": [{"system": _VERIFICATION, "code": verification}]},
        "code": {"coding": [{"system": system, "code": code, "display": display}]},
        "subject": {"reference": "Patient/p"},
        "recordedDate": recorded,
    }


def statement(
    mid: str,
    system: str,
    code: str,
    display: str,
    *,
    status: str = "active",
    reason: tuple[str, str, str] | None = None,
) -> dict[str, Any]:
    """A MedicationStatement; `reason` is (system, code, display) of its statusReason."""
    resource: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": mid,
        "status": status,
        "medicationCodeableConcept": {
            "coding": [{"system": system, "code": code, "display": display}]
        },
        "subject": {"reference": "Patient/p"},
        "effectivePeriod": {"start": "2021-01-01"},
    }
    if reason is not None:
        resource["statusReason"] = [
            {"coding": [{"system": reason[0], "code": reason[1], "display": reason[2]}]}
        ]
    return resource


def observation(
    oid: str, code: str, when: str, *, answer: str | None = None, value_date: str | None = None
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": "Patient/p"},
        "effectiveDateTime": when,
    }
    if answer is not None:
        resource["valueCodeableConcept"] = {"coding": [{"system": LOINC, "code": answer}]}
    if value_date is not None:
        resource["valueDateTime"] = value_date
    return resource


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in (patient(), *resources)],
    }


INTOLERANCE = (SCT, "59037007", "Drug intolerance")
ADVERSE_REACTION = (SCT, "62014003", "Adverse reaction caused by drug")
NO_RESPONSE = (SCT, "266721009", "Absent response to treatment")
RRMS_SCT = (SCT, "426373005", "Relapsing remitting multiple sclerosis")
SPMS_SCT = (SCT, "425500002", "Secondary progressive multiple sclerosis")
PPMS_SCT = (SCT, "428700003", "Primary progressive multiple sclerosis")
MS_SCT = (SCT, "24700007", "Multiple sclerosis")
