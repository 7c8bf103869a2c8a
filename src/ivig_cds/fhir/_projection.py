"""Parse only what the mapping reads: resources it cannot use are not validated, and the
others are cut down to the fields the readers use.

Validating a whole resource with the R4B models is most of the adapter's cost per resource
(narratives, identifiers, encounters, notes, extensions...), and none of that is read. A bulk
export maps millions of resources, so it validates only the top-level fields below: the ones
the readers (`_conditions`, `_thrombosis`, `_medications`, `_ivig_use`, `_observations`,
`_mapping`, `_record`) touch, plus those the models require. The mapping result is the same
(a test maps every example and a generated population both ways); problems in fields that are
never read go unreported.

Most of a chart (vital signs, comorbidities, other drugs) carries no code of the tables and no
MS-family or thrombotic-family code: the mapping reads past such a resource without using it,
so `for_mapping` does not validate it at all (a Condition stays, as an empty stand-in: "no MS
on record" counts the Conditions read).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.resource import Resource

from ivig_cds.fhir._codes import GROUP_VALUES, CodeTables, default_code_tables
from ivig_cds.fhir._conditions import names_ms_family
from ivig_cds.fhir._parse import resources_of
from ivig_cds.fhir._thrombosis import names_thrombotic_family

CODING_MEMO = 50_000  # codings whose answer is remembered per code tables (0: none)
STAND_IN_TEMPLATE = True  # False: build each stand-in afresh (the plain path, for tests)
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
        "MedicationRequest": (
            *_MEDICATION,
            "intent",
            "dosageInstruction",
            "authoredOn",
            "dispenseRequest",
        ),
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


def for_mapping(raw: Mapping[str, Any], codes: CodeTables | None = None) -> Resource | None:
    """`raw` parsed for `patient_from_resources`, or None when the mapping would not use it.

    A resource is parsed (its read fields, see `project`) when any coding in it is in the code
    tables or names the MS or thrombotic family, when it refers to or contains a Medication, or
    when it is a Patient; a Condition that is not is an empty stand-in with its id.

    Raises:
        FhirDataError: a resource the mapping reads is not valid FHIR R4.
    """
    if raw.get("resourceType") == "Patient" or _readable(raw, codes or default_code_tables()):
        return resources_of(project(raw))[0]
    if raw.get("resourceType") == "Condition":
        rid = raw.get("id")
        return stand_in(rid if isinstance(rid, str) else None)
    return None


@functools.cache
def _stand_in_template() -> Condition:
    template: Condition = Condition.model_construct(id=None)  # type: ignore[call-arg]
    return template


def stand_in(rid: str | None) -> Condition:
    """An empty Condition with id `rid`, never validated (`subject` may go): equal to
    `Condition.model_construct(id=rid)`, copied from a template (a tenth of the cost)."""
    if not STAND_IN_TEMPLATE:
        built: Condition = Condition.model_construct(id=rid)  # type: ignore[call-arg]
        return built
    return _stand_in_template().model_copy(update={"id": rid})


def _readable(raw: Mapping[str, Any], codes: CodeTables) -> bool:
    if "contained" in raw or "medicationReference" in raw:
        return True
    for coding in _codings(raw):
        system, code = coding.get("system"), coding.get("code")
        if not isinstance(system, str | None) or not isinstance(code, str | None):
            return True  # malformed: parse it, so that the problem is reported
        display = coding.get("display")
        text = display if isinstance(display, str) else None
        if _coding_read(codes, system, code, text):
            return True
    return False


def _coding_read(codes: CodeTables, system: str | None, code: str | None, text: str | None) -> bool:
    """Whether the mapping reads a coding: in the code tables, or of the MS or thrombotic
    family. An export repeats a few thousand codings millions of times: each answer is
    remembered per code tables (`CODING_MEMO` of them at most, then forgotten)."""
    if CODING_MEMO <= 0:
        return _read(codes, system, code, text)
    memo = _memo_of(codes)
    key = (system, code, text)
    found = memo.get(key)
    if found is None:
        found = _read(codes, system, code, text)
        if len(memo) >= CODING_MEMO:
            memo.clear()
        memo[key] = found
    return found


_MEMOS: dict[int, tuple[CodeTables, dict[tuple[str | None, ...], bool]]] = {}


def _memo_of(codes: CodeTables) -> dict[tuple[str | None, ...], bool]:
    held = _MEMOS.get(id(codes))
    if held is None or held[0] is not codes:
        if len(_MEMOS) >= 8:  # a process uses one or two code tables: keep it small
            _MEMOS.clear()
        held = _MEMOS[id(codes)] = (codes, {})  # the tables held: their id stays theirs
    return held[1]


def _read(codes: CodeTables, system: str | None, code: str | None, text: str | None) -> bool:
    return (
        any(codes.lookup(g, system, code) for g in GROUP_VALUES)
        or names_ms_family(system, code, text)
        or names_thrombotic_family(system, code, text)
    )


_LEAVES = (str, int, float, type(None))  # JSON scalars: nothing to walk into


def _codings(value: object) -> Iterator[Mapping[str, Any]]:
    """Every coding in a resource, at any depth (scalars in objects are not stacked: a third
    of the walk's cost, run on every resource of an export)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, child in item.items():
                if not isinstance(child, _LEAVES):
                    if key == "coding" and isinstance(child, list):
                        yield from (c for c in child if isinstance(c, Mapping))
                    stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
