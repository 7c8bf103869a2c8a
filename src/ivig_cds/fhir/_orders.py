"""Draft orders: which MedicationRequests order IVIG."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.resource import Resource

from ivig_cds.fhir._codes import CodeTables, default_code_tables
from ivig_cds.fhir._record import Record


def ivig_orders(
    resources: Iterable[Resource], codes: CodeTables | None = None
) -> list[MedicationRequest]:
    """The MedicationRequests among `resources` that order IVIG (by code, contained or not)."""
    items = list(resources)
    record = Record(items, dt.date.today(), codes or default_code_tables())
    return [
        r
        for r in items
        if isinstance(r, MedicationRequest)
        and r.status != "entered-in-error"
        and any(e.value == "ivig" for e in record.match("medication", record.drug_concepts(r)))
    ]
