"""IVIG already being given (`ivig_in_use`, knowledge spec v3).

IVIG is in use when the record shows it given within the `ivig_in_use` record window (8 weeks,
knowledge-base data) before the evaluation date, or ordered with the order still active:

- a MedicationAdministration completed or in progress, dated within the window;
- a MedicationStatement that is active, or completed, stopped or on hold with its effective
  date (the end of its period) within the window;
- a MedicationRequest whose status is active (an order or plan, not a proposal or option) and
  whose validity or dosage period has not ended before the window, or has no end.

The drug is read as `ivig_given` reads it (the resource's code, or its Medication's, contained
or referenced, or that Medication's ingredients). Nothing else sets the field: no IVIG on
record, or only older records, leaves it unknown, with a note naming the latest older record.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement

from ivig_cds.fhir._parse import ref
from ivig_cds.fhir._record import Record, date_of

_GIVEN = ("completed", "in-progress")
_STATEMENT_PAST = ("completed", "stopped", "on-hold")
_NOT_ORDERED = ("proposal", "option")


class _Reading:
    """What the IVIG records say, resource by resource."""

    def __init__(self, record: Record, weeks: int) -> None:
        self.record = record
        self.weeks = weeks
        self.since = record.as_of - dt.timedelta(weeks=self.weeks)
        self.in_use: list[str] = []
        self.given_before: list[tuple[dt.date, str]] = []
        self.ended_before: list[tuple[dt.date, str]] = []
        self.unread: list[str] = []  # notes for records whose dates cannot be used

    def given(self, name: str, span: tuple[dt.date | None, dt.date | None]) -> None:
        """An IVIG dose given over `span` (first and last day; either may be unknown)."""
        first, last = span[0] or span[1], span[1] or span[0]
        if first is None or last is None:
            self.unread.append(f"{name}: IVIG without a usable date; not counted as in use")
        elif first > self.record.as_of:
            self.unread.append(
                f"{name}: IVIG dated after {self.record.as_of}; not counted as in use"
            )
        elif last >= self.since:
            self.in_use.append(name)
        else:
            self.given_before.append((last, name))


def read_ivig_use(record: Record) -> None:
    """Set `ivig_in_use` from IVIG administrations, statements and active orders (not at all
    under a knowledge base whose record windows have no `ivig_in_use` window)."""
    window = record.windows.ivig_in_use
    if window is None:
        return
    reading = _Reading(record, window.weeks)
    for administration in record.of(MedicationAdministration):
        if _is_ivig(record, administration) and administration.status in _GIVEN:
            reading.given(ref(administration), _span(administration))
    for statement in record.of(MedicationStatement):
        if not _is_ivig(record, statement):
            continue
        if statement.status == "active":
            reading.in_use.append(ref(statement))
        elif statement.status in _STATEMENT_PAST:
            reading.given(ref(statement), _span(statement))
    for request in record.of(MedicationRequest):
        if (
            _is_ivig(record, request)
            and request.status == "active"
            and request.intent not in _NOT_ORDERED
        ):
            _order(reading, request)
    _conclude(reading)


def _order(reading: _Reading, request: MedicationRequest) -> None:
    ends = [_end_of(request.dispenseRequest, "validityPeriod")]
    ends += [_end_of(getattr(d.timing, "repeat", None), "boundsPeriod") for d in _dosages(request)]
    known = [end for end in ends if end is not None]
    if not known or max(known) >= reading.since:
        reading.in_use.append(ref(request))
    else:
        reading.ended_before.append((max(known), ref(request)))


def _conclude(reading: _Reading) -> None:
    record = reading.record
    if reading.in_use:
        record.set("ivig_in_use", True, reading.in_use)
        return
    record.notes.extend(sorted(reading.unread))
    before = f"over {reading.weeks} weeks before {record.as_of}"
    if reading.given_before:
        day, name = _latest(reading.given_before)
        record.notes.append(f"{name}: IVIG last given on {day} ({before}); not counted as in use")
    if reading.ended_before:
        day, name = _latest(reading.ended_before)
        record.notes.append(f"{name}: IVIG order ended on {day} ({before}); not counted as in use")


def _latest(dated: list[tuple[dt.date, str]]) -> tuple[dt.date, str]:
    """The latest record; on the same day, the first reference alphabetically."""
    return min(dated, key=lambda item: (-item[0].toordinal(), item[1]))


def _is_ivig(record: Record, resource: Any) -> bool:
    if resource.status == "entered-in-error":
        return False
    return any(
        e.value == "ivig" for e in record.match("medication", record.drug_concepts(resource))
    )


def _span(
    resource: MedicationAdministration | MedicationStatement,
) -> tuple[dt.date | None, dt.date | None]:
    """(first, last) day of the resource's effective date or period."""
    period = resource.effectivePeriod
    if period is not None:
        return date_of(period.start), date_of(period.end)
    day = date_of(resource.effectiveDateTime)
    return day, day


def _end_of(holder: Any, field: str) -> dt.date | None:
    period = getattr(holder, field, None) if holder is not None else None
    return date_of(period.end) if period is not None else None


def _dosages(request: MedicationRequest) -> list[Any]:
    return [d for d in request.dosageInstruction or () if d.timing is not None]
