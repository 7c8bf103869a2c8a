"""Draft orders (CDS Hooks `draftOrders`), read leniently for the one thing that matters here.

EHRs, and the CDS Hooks specification's own examples, send draft orders that a strict FHIR R4
parser rejects: `doseQuantity` directly in a dosage, `doseAndRate` as an object, a
NutritionOrder without `intent`, a Bundle without `type`. None of that is used here, so none of
it may block the answer. Each MedicationRequest is read for its id, status, intent, medication
codes and reason; what cannot be read is reported, and a draft order that is not about IVIG
never stops the others from being answered.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.resource import Resource

from ivig_cds.fhir._codes import CodeTables, default_code_tables
from ivig_cds.fhir._parse import FhirDataError, ref_of, short
from ivig_cds.fhir._record import Record

_MAX_ORDERS = 1000


@dataclass(frozen=True, slots=True)
class DraftOrder:
    """A draft IVIG MedicationRequest and the clinical question its reason names.

    Attributes:
        reference: `MedicationRequest/id`.
        status, intent: as sent (None when absent or not text).
        question: `acute_relapse` when the reason is an MS relapse, `disease_modifying` when it
            is MS itself, None when the reason names neither (the record decides).
        other_indication: the reason names an indication outside this knowledge base (CIDP,
            Guillain-Barré syndrome, immunodeficiency) and no MS reason: no MS card.
    """

    reference: str
    status: str | None
    intent: str | None
    question: str | None
    other_indication: bool


@dataclass(frozen=True, slots=True)
class DraftOrders:
    """The IVIG orders among the draft orders, and what could not be read (never blocking)."""

    ivig: tuple[DraftOrder, ...]
    problems: tuple[str, ...]


def read_draft_orders(draft_orders: object, *, codes: CodeTables | None = None) -> DraftOrders:
    """Find the IVIG MedicationRequests in a CDS Hooks `draftOrders` value.

    Args:
        draft_orders: a Bundle (any or no `type`) of draft orders, or one resource.
        codes: code tables to use; default the shipped ones.

    Raises:
        FhirDataError: `draft_orders` is not a JSON object with resources in it (the only
            failure; a malformed order is reported in `problems` instead).
    """
    tables = codes or default_code_tables()
    resources, problems = _resources(draft_orders)
    contained_conditions = {
        f"Condition/{r['id']}": r
        for r in resources
        if r.get("resourceType") == "Condition" and isinstance(r.get("id"), str)
    }
    found = []
    for index, resource in enumerate(resources):
        if resource.get("resourceType") != "MedicationRequest":
            continue  # a NutritionOrder, ServiceRequest...: not about IVIG
        order = _read_order(index, resource, tables, contained_conditions, problems)
        if order is not None:
            found.append(order)
    return DraftOrders(ivig=tuple(found), problems=tuple(problems))


def ivig_orders(
    resources: Iterable[Resource], codes: CodeTables | None = None
) -> list[MedicationRequest]:
    """The MedicationRequests among parsed `resources` that order IVIG (by code, contained or
    not)."""
    return [
        r
        for r in ivig_given(resources, codes)
        if isinstance(r, MedicationRequest) and r.status != "entered-in-error"
    ]


def ivig_given(
    resources: Iterable[Resource], codes: CodeTables | None = None
) -> list[MedicationRequest | MedicationAdministration]:
    """The MedicationRequests and MedicationAdministrations among parsed `resources` whose
    drug is IVIG: by their own code, or their Medication's (contained, or one of
    `resources`) or its ingredients'; whatever their status."""
    items = list(resources)
    record = Record(items, dt.date.today(), codes or default_code_tables())
    return [
        r
        for r in items
        if isinstance(r, MedicationRequest | MedicationAdministration)
        and any(e.value == "ivig" for e in record.match("medication", record.drug_concepts(r)))
    ]


def _resources(data: object) -> tuple[list[Mapping[str, Any]], list[str]]:
    if not isinstance(data, Mapping):
        raise FhirDataError(
            [f"draftOrders: expected a FHIR Bundle (a JSON object), got {_kind(data)}"]
        )
    if data.get("resourceType") != "Bundle":
        if isinstance(data.get("resourceType"), str):
            return [data], []
        raise FhirDataError(["draftOrders: no resourceType; expected a FHIR Bundle"])
    entries = data.get("entry", [])
    if not isinstance(entries, list):
        raise FhirDataError(["draftOrders: Bundle.entry must be a list"])
    resources: list[Mapping[str, Any]] = []
    problems: list[str] = []
    for i, entry in enumerate(entries[:_MAX_ORDERS]):
        item = entry.get("resource") if isinstance(entry, Mapping) else None
        if isinstance(item, Mapping) and isinstance(item.get("resourceType"), str):
            resources.append(item)
        else:
            problems.append(f"draftOrders entry {i}: no resource with a resourceType; skipped")
    if len(entries) > _MAX_ORDERS:
        problems.append(f"draftOrders: more than {_MAX_ORDERS} entries; the rest were skipped")
    return resources, problems


def _read_order(
    index: int,
    resource: Mapping[str, Any],
    tables: CodeTables,
    conditions: Mapping[str, Mapping[str, Any]],
    problems: list[str],
) -> DraftOrder | None:
    name = ref_of("MedicationRequest", resource.get("id"))
    if name.endswith("(no id)"):
        name = f"MedicationRequest (draftOrders entry {index}, no id)"
    status = _text(resource.get("status"))
    if status == "entered-in-error":
        return None
    contained = {
        f"#{c['id']}": c
        for c in _list(resource.get("contained"))
        if isinstance(c, Mapping) and isinstance(c.get("id"), str)
    }
    codings = list(_concept_codings(name, "medicationCodeableConcept", resource, problems))
    medication = resource.get("medicationReference")
    target = medication.get("reference") if isinstance(medication, Mapping) else None
    if isinstance(target, str) and target in contained:
        med = contained[target]
        codings.extend(
            _concept_codings(name, f"contained {short(target)}.code", med, problems, "code")
        )
        for i, ingredient in enumerate(_list(med.get("ingredient"))):
            if isinstance(ingredient, Mapping):
                codings.extend(
                    _concept_codings(
                        name, f"ingredient {i}", ingredient, problems, "itemCodeableConcept"
                    )
                )
    if not any(_value(tables, "medication", c) == "ivig" for c in codings):
        return None
    reasons = list(_concept_list_codings(name, resource.get("reasonCode"), problems))
    for i, reason in enumerate(_list(resource.get("reasonReference"))):
        target = reason.get("reference") if isinstance(reason, Mapping) else None
        condition = (
            contained.get(target) or conditions.get(target) if isinstance(target, str) else None
        )
        if condition is None:
            problems.append(
                f"{name}: reasonReference {i} is not a Condition in the request; reason not read"
            )
            continue
        reasons.extend(_concept_codings(name, f"reasonReference {i}", condition, problems, "code"))
    relapse = any(tables.lookup("ms_relapse", s, c) for s, c in reasons)
    ms = any(tables.lookup("ms_diagnosis", s, c) for s, c in reasons)
    other = any(tables.lookup("other_indication", s, c) for s, c in reasons)
    question = "acute_relapse" if relapse else "disease_modifying" if ms else None
    return DraftOrder(
        reference=name,
        status=status,
        intent=_text(resource.get("intent")),
        question=question,
        other_indication=other and question is None,
    )


def _concept_list_codings(
    name: str, concepts: object, problems: list[str]
) -> Iterator[tuple[str, str]]:
    for i, concept in enumerate(_list(concepts)):
        yield from _concept_codings(name, f"reasonCode {i}", {"c": concept}, problems, "c")


def _concept_codings(
    name: str,
    where: str,
    holder: Mapping[str, Any],
    problems: list[str],
    key: str | None = None,
) -> Iterator[tuple[str, str]]:
    """(system, code) pairs of the CodeableConcept at `holder[key or where]`; a coding that is
    not an object with text system and code is reported, not guessed."""
    concept = holder.get(key or where)
    if concept is None:
        return
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    if not isinstance(codings, list):
        problems.append(f"{name}: {where} has no list of codings; not read")
        return
    for i, coding in enumerate(codings):
        system = coding.get("system") if isinstance(coding, Mapping) else None
        code = coding.get("code") if isinstance(coding, Mapping) else None
        if isinstance(system, str) and isinstance(code, str):
            yield system, code
        else:
            problems.append(f"{name}: {where} coding {i} has no text system and code; not read")


def _value(tables: CodeTables, group: str, coding: tuple[str, str]) -> str | None:
    entry = tables.lookup(group, *coding)
    return None if entry is None else entry.value


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: object) -> str | None:
    return short(value) if isinstance(value, str) else None


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__
