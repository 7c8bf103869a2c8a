"""What the service reads about the patient: the prefetch templates it asks for, the data a
request brings (or the one configured FHIR server gives), and the IVIG draft orders.

Prefetch is the only data source unless the service is configured with a FHIR server, and then
only that server is ever called, with the request's own authorization.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

import httpx

from ivig_cds.fhir import (
    CodeTables,
    DraftOrder,
    FhirDataError,
    default_code_tables,
    read_draft_orders,
)
from ivig_cds.service.errors import ApiError
from ivig_cds.service.wire import HookRequest

__all__ = ["REQUIRED_PREFETCH", "gather", "ivig_draft_orders", "prefetch_templates"]

_FETCH_TIMEOUT_SECONDS = 5.0
_P = "{{context.patientId}}"

# Without these the service cannot tell whether the patient has MS at all.
REQUIRED_PREFETCH = {"patient": "Patient", "conditions": "Condition"}


def prefetch_templates(codes: CodeTables | None = None) -> dict[str, str]:
    """The prefetch the services ask for, by key, as FHIR query templates (the observation
    and procedure codes from `codes`, default the shipped tables)."""
    codes = codes or default_code_tables()
    observed = ",".join(f"{e.system}|{e.code}" for e in codes.entries("observation_kind"))
    deliveries = ",".join(f"{e.system}|{e.code}" for e in codes.entries("delivery"))
    return {
        "patient": f"Patient/{_P}",
        "conditions": f"Condition?patient={_P}",
        "observations": f"Observation?patient={_P}&code={observed}",
        "medicationStatements": f"MedicationStatement?patient={_P}",
        "medicationRequests": f"MedicationRequest?patient={_P}",
        # IVIG given in the last weeks (ivig_in_use)
        "medicationAdministrations": f"MedicationAdministration?patient={_P}",
        "allergies": f"AllergyIntolerance?patient={_P}",
        "procedures": f"Procedure?patient={_P}&code={deliveries}",
    }


def ivig_draft_orders(
    context: Mapping[str, Any], hook: str, codes: CodeTables | None = None
) -> list[DraftOrder]:
    """The IVIG MedicationRequests in `draftOrders` (for order-select, selected), read
    leniently with `codes`; orders whose reason names a non-MS indication get no MS card."""
    drafts = context.get("draftOrders")
    if drafts is None:
        raise ApiError(400, f"context.draftOrders is required for {hook}")
    try:
        found = [o for o in read_draft_orders(drafts, codes=codes).ivig if not o.other_indication]
    except FhirDataError as exc:
        raise ApiError(
            400, "context.draftOrders is not a usable FHIR Bundle", exc.problems
        ) from None
    selections = context.get("selections")
    if hook == "order-select" and isinstance(selections, list) and selections:
        chosen = {s for s in selections if isinstance(s, str)}
        found = [o for o in found if o.reference in chosen]
    return sorted(found, key=lambda o: o.reference)


async def gather(
    hook: HookRequest, patient_id: str, templates: Mapping[str, str], allowed_server: str | None
) -> dict[str, Any]:
    """The prefetch to map: what was sent, plus what the configured FHIR server gives for the
    missing keys. Answers 412 when required data cannot be had."""
    prefetch = {k: v for k, v in (hook.prefetch or {}).items() if _usable(v)}
    missing = [key for key in templates if key not in prefetch]
    missing_required = [
        key
        for key in REQUIRED_PREFETCH
        if key in missing and not _provides(prefetch, REQUIRED_PREFETCH[key])
    ]
    if not missing_required:
        return prefetch
    if allowed_server is None:
        raise ApiError(
            412,
            "required prefetch is missing and this service fetches nothing itself",
            [f"prefetch '{k}' ({templates[k]}) is missing or null" for k in missing_required],
        )
    server = (hook.fhirServer or "").rstrip("/")
    if server != allowed_server or hook.fhirAuthorization is None:
        raise ApiError(
            412,
            "required prefetch is missing and the request gives no usable fhirServer and "
            "fhirAuthorization for the configured FHIR server",
            [f"prefetch '{k}' is missing or null" for k in missing_required],
        )
    auth = hook.fhirAuthorization
    headers = {
        "Authorization": f"{auth.token_type} {auth.access_token}",
        "Accept": "application/fhir+json",
    }
    async with httpx.AsyncClient(timeout=_FETCH_TIMEOUT_SECONDS, follow_redirects=False) as client:
        for key in missing:
            query = templates[key].replace(_P, urllib.parse.quote(patient_id, safe=""))
            try:
                response = await client.get(f"{allowed_server}/{query}", headers=headers)
                response.raise_for_status()
                prefetch[key] = response.json()
            except (httpx.HTTPError, ValueError):
                if key in REQUIRED_PREFETCH:
                    raise ApiError(
                        412, f"the FHIR server did not return the required '{key}' data"
                    ) from None
    return prefetch


def _usable(value: object) -> bool:
    """A prefetch value the client filled: not null, not an OperationOutcome for a failed query."""
    return isinstance(value, Mapping) and value.get("resourceType") not in (
        None,
        "OperationOutcome",
    )


def _provides(prefetch: Mapping[str, Any], kind: str) -> bool:
    """Whether a prefetch value under another key (another service's template) holds `kind`."""
    for value in prefetch.values():
        if value.get("resourceType") == kind:
            return True
        if value.get("resourceType") == "Bundle":
            entries = value.get("entry")
            if isinstance(entries, list) and any(
                isinstance(e, Mapping)
                and isinstance(e.get("resource"), Mapping)
                and e["resource"].get("resourceType") == kind
                for e in entries
            ):
                return True
    return False
