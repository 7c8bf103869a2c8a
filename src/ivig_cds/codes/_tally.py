"""Every code seen in the resources the adapter reads, with its patients and resources.

A resource counts once for each code it carries: a Condition's code, a Procedure's code, an
Observation's code and coded value, an AllergyIntolerance's code and reaction substances, a
Medication's code and ingredients, and a MedicationRequest/-Statement/-Administration's
medication code or the code and ingredients of the Medication it names (contained, or in the
same Bundle or export). A Medication resource counts as a resource of its own, with no patient.
Patients are told apart by the subject's (or the allergy's patient) reference.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ivig_cds.codes._words import Match, relevant, relevant_code

Resource = dict[str, Any]

KINDS: Mapping[str, str] = {
    "Condition": "condition",
    "Medication": "medication",
    "MedicationRequest": "medication",
    "MedicationStatement": "medication",
    "MedicationAdministration": "medication",
    "Observation": "observation",
    "AllergyIntolerance": "allergy",
    "Procedure": "procedure",
}
"""The resource types read, and the kind of code each carries."""

_USES = ("MedicationRequest", "MedicationStatement", "MedicationAdministration")


@dataclass(frozen=True, slots=True)
class Seen:
    """One coding as found: its kind, system and code, its display and its concept's text."""

    kind: str
    system: str
    code: str
    display: str | None
    text: str | None


@dataclass
class CodeCount:
    """What was seen of one (kind, system, code)."""

    patients: set[str] = field(default_factory=set)
    resources: int = 0
    mapped_by_other_code: int = 0  # resources that map through another of their codes
    displays: Counter[str] = field(default_factory=Counter)
    match: Match | None = None

    @property
    def display(self) -> str | None:
        """The display seen most often (the first of equals), else the text."""
        return self.displays.most_common(1)[0][0] if self.displays else None


@dataclass
class Tally:
    """The counts of one coverage run; `mapped(system, code)` tells a mapped code."""

    mapped: Callable[[str, str], bool]
    codes: dict[tuple[str, str, str], CodeCount] = field(default_factory=dict)
    patients: set[str] = field(default_factory=set)
    resources: int = 0

    def add(self, resource: Resource, medications: Mapping[str, Resource]) -> None:
        """Count the codes of one resource (of a type in `KINDS`; others are passed over)."""
        kind = KINDS.get(str(resource.get("resourceType")))
        if kind is None:
            return
        self.resources += 1
        patient = patient_of(resource)
        if patient is not None:
            self.patients.add(patient)
        seen = {(s.kind, s.system, s.code): s for s in codings(resource, medications)}
        maps = any(self.mapped(system, code) for _, system, code in seen)
        for key, coding in seen.items():
            count = self.codes.setdefault(key, CodeCount())
            count.resources += 1
            if patient is not None:
                count.patients.add(patient)
            if coding.display or coding.text:
                count.displays[str(coding.display or coding.text)] += 1
            if self.mapped(key[1], key[2]):
                continue
            if count.match is None:
                count.match = relevant_code(coding.system, coding.code) or relevant(
                    kind, coding.display, coding.text
                )
            count.mapped_by_other_code += maps


def codings(resource: Resource, medications: Mapping[str, Resource]) -> list[Seen]:
    """The codings of `resource` that the adapter reads, in the order it reads them."""
    kind_name = str(resource.get("resourceType"))
    kind = KINDS[kind_name]
    concepts: list[object] = []
    if kind_name in ("Condition", "Procedure"):
        concepts = [resource.get("code")]
    elif kind_name == "Observation":
        concepts = [resource.get("code"), resource.get("valueCodeableConcept")]
    elif kind_name == "AllergyIntolerance":
        concepts = [resource.get("code")]
        concepts += [r.get("substance") for r in _dicts(resource.get("reaction"))]
    elif kind_name == "Medication":
        concepts = _medication_concepts(resource)
    elif kind_name in _USES:
        concepts = [resource.get("medicationCodeableConcept")]
        named = _named_medication(resource, medications)
        if named is not None:
            concepts += _medication_concepts(named)
    return [seen for concept in concepts for seen in _seen(kind, concept)]


def _medication_concepts(medication: Resource) -> list[object]:
    ingredients = [i.get("itemCodeableConcept") for i in _dicts(medication.get("ingredient"))]
    return [medication.get("code"), *ingredients]


def _named_medication(resource: Resource, medications: Mapping[str, Resource]) -> Resource | None:
    holder = resource.get("medicationReference")
    reference = holder.get("reference") if isinstance(holder, dict) else None
    if not isinstance(reference, str):
        return None
    if reference.startswith("#"):
        for contained in _dicts(resource.get("contained")):
            if (
                contained.get("resourceType") == "Medication"
                and contained.get("id") == reference[1:]
            ):
                return contained
        return None
    return medications.get(reference)


def _seen(kind: str, concept: object) -> Iterable[Seen]:
    if not isinstance(concept, dict):
        return
    text = concept.get("text") if isinstance(concept.get("text"), str) else None
    for coding in _dicts(concept.get("coding")):
        code = coding.get("code")
        if not isinstance(code, str) or not code.strip():
            continue
        system = coding.get("system")
        display = coding.get("display")
        yield Seen(
            kind,
            system if isinstance(system, str) else "",
            code.strip(),
            display if isinstance(display, str) else None,
            text,
        )


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def patient_of(resource: Resource) -> str | None:
    """`Patient/<id>` of the subject (an AllergyIntolerance's patient), if it names one."""
    holder = resource.get(
        "patient" if resource.get("resourceType") == "AllergyIntolerance" else "subject"
    )
    reference = holder.get("reference") if isinstance(holder, dict) else None
    if not isinstance(reference, str):
        return None
    parts = reference.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
        return f"Patient/{parts[-1]}"
    return None
