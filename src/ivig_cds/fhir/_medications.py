"""Medications and allergies: first-line therapy as a whole, later therapies, IV steroids.

`first_line_dmt` describes approved first-line therapy as a whole, judged per class
(knowledge spec v2): interferon beta (any product) and glatiramer acetate. One class stopped
for intolerance while the other was never tried is not "first-line therapy not tolerated":
the field is set only when the two classes together settle it, and otherwise left unknown
with a note naming the class that is unaccounted for.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement

from ivig_cds.fhir._parse import ref
from ivig_cds.fhir._record import Record, code_in

_CLASSES = {"interferon_beta": "interferon beta", "glatiramer_acetate": "glatiramer acetate"}
_ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
_ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
_STOPPED = ("stopped", "completed", "cancelled", "on-hold")
# When the two classes were excluded for different reasons, the value whose finding is the
# more cautious stands (C02b, ineffective, has the lower certainty).
_REASON_ORDER = ("ineffective", "not_tolerated")


@dataclass
class _Class:
    """What the record says about one first-line class."""

    active: list[str] = field(default_factory=list)
    excluded: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    stopped_without_reason: list[str] = field(default_factory=list)


def read_medications(record: Record) -> None:
    """Set `first_line_dmt`, `other_dmt_in_use` and `on_iv_methylprednisolone`."""
    classes = {name: _Class() for name in _CLASSES}
    other_dmt: list[str] = []
    iv_steroid: list[str] = []
    for resource in (*record.of(MedicationStatement), *record.of(MedicationRequest)):
        _medication_use(record, resource, classes, other_dmt, iv_steroid)
    for allergy in record.of(AllergyIntolerance):
        clinical = code_in(allergy.clinicalStatus, _ALLERGY_CLINICAL)
        verification = code_in(allergy.verificationStatus, _ALLERGY_VERIFICATION)
        if verification in ("refuted", "entered-in-error") or clinical in ("inactive", "resolved"):
            continue
        concepts = [allergy.code, *(r.substance for r in allergy.reaction or ())]
        for drug in {e.value for e in record.match("medication", concepts)} & set(_CLASSES):
            classes[drug].excluded["not_tolerated"].append(ref(allergy))
    _first_line(record, classes)
    if other_dmt:
        record.set("other_dmt_in_use", True, other_dmt)
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
    classes: dict[str, _Class],
    other_dmt: list[str],
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
    stop = {str(e.value) for e in record.match("stop_reason", reasons)}
    for drug in drugs & set(_CLASSES):
        _count_use(classes[drug], name, resource.status, stop)
    if "other_dmt" in drugs and resource.status == "active":
        other_dmt.append(name)
    if "methylprednisolone" in drugs and resource.status == "active":
        if record.match("route", routes):
            iv_steroid.append(name)
        else:
            record.notes.append(f"{name}: methylprednisolone without an IV route; not used")


def _count_use(seen: _Class, name: str, status: object, stop: set[str]) -> None:
    if status in _STOPPED and stop:
        for reason in stop:
            seen.excluded[reason].append(name)
    elif status in _STOPPED:
        seen.stopped_without_reason.append(name)
    elif status == "active":
        seen.active.append(name)


def _first_line(record: Record, classes: dict[str, _Class]) -> None:
    """Judge each class, then first-line therapy as a whole (spec v2)."""
    usable: list[str] = []
    excluded: dict[str, str] = {}  # class -> reason
    refs: list[str] = []
    open_classes: list[str] = []
    for drug, seen in classes.items():
        label = _CLASSES[drug]
        reasons = sorted(seen.excluded, key=_REASON_ORDER.index)
        if reasons:
            reason = reasons[0]
            excluded[drug] = reason
            refs.extend(r for rs in seen.excluded.values() for r in rs)
            if seen.active:
                record.notes.append(
                    f"{', '.join(sorted(seen.active))}: {label} is active although "
                    f"{', '.join(sorted({r for rs in seen.excluded.values() for r in rs}))} "
                    f"records it {_words(reason)}; counted as {_words(reason)}"
                )
        elif seen.active:
            usable.extend(seen.active)
        else:
            open_classes.append(drug)
    if usable:
        record.set("first_line_dmt", "suitable", usable)
        return
    if not excluded:
        return  # nothing on record about first-line therapy
    if not open_classes:
        values = sorted(set(excluded.values()), key=_REASON_ORDER.index)
        record.set("first_line_dmt", values[0], refs)
        if len(values) > 1:
            described = "; ".join(f"{_CLASSES[d]} {_words(r)}" for d, r in sorted(excluded.items()))
            record.notes.append(
                f"first_line_dmt {values[0]}: both first-line classes are excluded ({described}); "
                f"the more cautious value is used"
            )
        return
    described = "; ".join(f"{_CLASSES[d]} {_words(r)}" for d, r in sorted(excluded.items()))
    missing = " and ".join(_CLASSES[d] for d in open_classes)
    record.notes.append(
        f"first_line_dmt left unknown: {described} ({', '.join(sorted(set(refs)))}), but "
        f"{missing} is unaccounted for (never recorded, or stopped without a reason); "
        "first-line therapy as a whole is judged over both classes"
    )


def _words(reason: str) -> str:
    return reason.replace("_", " ")
