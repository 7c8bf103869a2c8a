"""Parse only what the mapping reads: a resource's JSON cut down to the fields the readers use.

Validating a whole resource with the R4B models is most of the adapter's cost per resource
(narratives, identifiers, encounters, notes, extensions...), and none of that is read. A bulk
export maps millions of resources, so it validates only the top-level fields below: the ones
the readers (`_conditions`, `_medications`, `_observations`, `_mapping`, `_record`) touch, plus
those the models require. The mapping result is the same (a test maps every example and a
generated population both ways); problems in fields that are never read go unreported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_ALWAYS = ("resourceType", "id", "contained", "subject", "patient")  # `contained`: Record
_MEDICATION = ("status", "medicationCodeableConcept", "medicationReference", "statusReason")

READ_FIELDS: Mapping[str, frozenset[str]] = {
    kind: frozenset((*_ALWAYS, *fields))
    for kind, fields in {
        "Patient": ("gender", "birthDate"),
        "Condition": (
            "code",
            "clinicalStatus",
            "verificationStatus",
            "abatementDateTime",
            "abatementPeriod",
            "abatementString",
            "abatementAge",
        ),
        "MedicationStatement": (*_MEDICATION, "dosage", "effectiveDateTime", "effectivePeriod"),
        "MedicationRequest": (*_MEDICATION, "intent", "dosageInstruction", "authoredOn"),
        "MedicationAdministration": (*_MEDICATION, "effectiveDateTime", "effectivePeriod"),
        "AllergyIntolerance": ("code", "clinicalStatus", "verificationStatus", "reaction"),
        "Observation": (
            "status",
            "code",
            "valueQuantity",
            "valueCodeableConcept",
            "valueDateTime",
            "effectiveDateTime",
            "effectivePeriod",
            "effectiveInstant",
            "issued",
        ),
        "Procedure": ("status", "code", "performedDateTime", "performedPeriod"),
        "Medication": ("code", "ingredient"),
    }.items()
}
"""Per resource type, the top-level fields kept (with their `_field` extension partners)."""


def project(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """`raw` with only the fields the mapping reads; other resource types are returned whole."""
    fields = READ_FIELDS.get(raw.get("resourceType"))  # type: ignore[arg-type]
    if fields is None:
        return raw
    return {k: v for k, v in raw.items() if k in fields or (k[:1] == "_" and k[1:] in fields)}
