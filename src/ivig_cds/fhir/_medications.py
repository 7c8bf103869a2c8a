"""Medications and allergies: first-line therapy status and IV methylprednisolone."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement

from ivig_cds.fhir._parse import ref
from ivig_cds.fhir._record import Record, code_in

_FIRST_LINE = ("interferon_beta", "glatiramer_acetate")
_ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
_ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"


def read_medications(record: Record) -> None:
    """Set `first_line_dmt` and `on_iv_methylprednisolone` from medications and allergies."""
    active: dict[str, list[str]] = defaultdict(list)
    intolerant: dict[str, list[str]] = defaultdict(list)
    iv_steroid: list[str] = []
    for resource in (*record.of(MedicationStatement), *record.of(MedicationRequest)):
        _medication_use(record, resource, active, intolerant, iv_steroid)
    for allergy in record.of(AllergyIntolerance):
        clinical = code_in(allergy.clinicalStatus, _ALLERGY_CLINICAL)
        verification = code_in(allergy.verificationStatus, _ALLERGY_VERIFICATION)
        if verification in ("refuted", "entered-in-error") or clinical in (
            "inactive",
            "resolved",
        ):
            continue
        concepts = [allergy.code, *(r.substance for r in allergy.reaction or ())]
        for drug in {e.value for e in record.match("medication", concepts)} & set(_FIRST_LINE):
            intolerant[drug].append(ref(allergy))
    _first_line(record, active, intolerant)
    if not iv_steroid:
        return
    if record.facts.get("acute_relapse") is True:
        record.set("on_iv_methylprednisolone", True, iv_steroid)
    else:
        record.notes.append(
            f"{', '.join(sorted(iv_steroid))}: IV methylprednisolone without a recorded "
            "MS relapse; not used"
        )


def _medication_use(
    record: Record,
    resource: MedicationStatement | MedicationRequest,
    active: dict[str, list[str]],
    intolerant: dict[str, list[str]],
    iv_steroid: list[str],
) -> None:
    if resource.status == "entered-in-error" or (
        isinstance(resource, MedicationRequest) and resource.intent == "proposal"
    ):
        return
    drugs = {e.value for e in record.match("medication", record.drug_concepts(resource))}
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
        if stopped and record.match("intolerance_reason", reasons):
            intolerant[drug].append(name)
        elif resource.status == "active":
            active[drug].append(name)
    if "methylprednisolone" in drugs and resource.status == "active":
        if record.match("route", routes):
            iv_steroid.append(name)
        else:
            record.notes.append(f"{name}: methylprednisolone without an IV route; not used")


def _first_line(
    record: Record, active: Mapping[str, list[str]], intolerant: Mapping[str, list[str]]
) -> None:
    tolerated = {drug: refs for drug, refs in active.items() if drug not in intolerant}
    for drug in set(active) & set(intolerant):
        record.notes.append(
            f"{', '.join(sorted(active[drug]))}: {drug.replace('_', ' ')} is active although "
            f"{', '.join(sorted(intolerant[drug]))} records intolerance; counted as not "
            "tolerated"
        )
    if tolerated:
        record.set("first_line_dmt", "suitable", [r for rs in tolerated.values() for r in rs])
    elif intolerant:
        record.set("first_line_dmt", "not_tolerated", [r for rs in intolerant.values() for r in rs])
