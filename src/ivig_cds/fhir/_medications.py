"""Medications and allergies: first-line therapy per class, later therapies, IV steroids.

Approved first-line therapy is two classes (knowledge spec v3): interferon-beta (any product)
and glatiramer acetate. Each is judged on its own and passed on as `first_line_by_class`:
suitable while in use, its exclusion reason when stopped for one (or recorded as an allergy or
intolerance), unknown when never recorded or stopped without a reason. The adapter never sets
`first_line_dmt`: the core derives first-line therapy as a whole from the classes, so one class
stopped for intolerance while the other was never tried leaves the whole unknown (noted).
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

_CLASSES = {"interferon_beta": "interferon-beta", "glatiramer_acetate": "glatiramer acetate"}
_ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
_ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
_STOPPED = ("stopped", "completed", "cancelled", "on-hold")
# When a class has two exclusion reasons, the value whose finding is the more cautious stands
# (C02b, ineffective, has the lower certainty); the core orders the classes' reasons the same
# way when it derives the whole.
_REASON_ORDER = ("ineffective", "not_tolerated")


@dataclass
class _Class:
    """What the record says about one first-line class."""

    active: list[str] = field(default_factory=list)
    excluded: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    stopped_without_reason: list[str] = field(default_factory=list)


def read_medications(record: Record) -> None:
    """Set `first_line_by_class`, `other_dmt_in_use` and `on_iv_methylprednisolone`."""
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
    """Judge each class on its own and pass the classes on (`first_line_by_class`); the core
    derives first-line therapy as a whole from them (knowledge spec v3)."""
    by_class: dict[str, str] = {}
    refs: dict[str, list[str]] = {}
    for drug, seen in classes.items():
        reasons = sorted(seen.excluded, key=_REASON_ORDER.index)
        if reasons:
            by_class[drug] = reasons[0]
            refs[drug] = [r for rs in seen.excluded.values() for r in rs]
            if len(reasons) > 1:
                record.notes.append(
                    f"{_CLASSES[drug]} is recorded both {' and '.join(map(_words, reasons))} "
                    f"({', '.join(sorted(set(refs[drug])))}); counted as {_words(reasons[0])}, "
                    "the more cautious finding"
                )
            if seen.active:
                record.notes.append(
                    f"{', '.join(sorted(seen.active))}: {_CLASSES[drug]} is active although "
                    f"{', '.join(sorted(set(refs[drug])))} records it {_words(reasons[0])}; "
                    f"counted as {_words(reasons[0])}"
                )
        elif seen.active:
            by_class[drug] = "suitable"
            refs[drug] = seen.active
    if not by_class:
        return  # nothing on record about first-line therapy
    record.set("first_line_by_class", by_class, [r for rs in refs.values() for r in rs])
    for drug, sources in refs.items():
        record.sources[f"first_line_by_class.{drug}"] = tuple(sorted(set(sources)))
    if "suitable" in by_class.values():
        return
    described = "; ".join(f"{_CLASSES[d]} {_words(r)}" for d, r in sorted(by_class.items()))
    open_classes = [_CLASSES[d] for d in classes if d not in by_class]
    if open_classes:
        record.notes.append(
            f"first-line therapy as a whole left unknown: {described} "
            f"({', '.join(sorted({r for rs in refs.values() for r in rs}))}), but "
            f"{' and '.join(open_classes)} is unaccounted for (never recorded, or stopped "
            "without a reason); the whole is judged over both classes"
        )
    elif len(set(by_class.values())) > 1:
        whole = sorted(set(by_class.values()), key=_REASON_ORDER.index)[0]
        record.notes.append(
            f"first-line therapy as a whole counts as {_words(whole)}: both classes are "
            f"excluded for different reasons ({described}), and the more cautious finding "
            "is used"
        )


def _words(reason: str) -> str:
    return reason.replace("_", " ")
