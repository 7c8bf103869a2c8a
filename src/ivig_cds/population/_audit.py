"""One patient's resources in, one audit line out: the mapping, the tier now, and each IVIG
dose judged as of its own date.

`PatientAuditor` is a plain, picklable callable (like `RecordEvaluator` for `batch`), so every
engine runs the very same code on its groups: DuckDB in this process, Spark in its executors.
Its output for a patient depends only on that patient's resources in export order, which is
what makes the engines' `results.ndjson` byte-identical.

A dose "as the record stood then" is judged on the resources dated on or before the dose
(`recorded_on`; undated resources and the Patient count as always there), mapped as of that
date; the tier "now" is judged the same way as of `--as-of`. The export only holds each
resource's latest version, so a medication now recorded as stopped was stopped then too:
statuses are as exported.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from fhir.resources.R4B.resource import Resource

from ivig_cds._errors import EngineError, IvigCdsError
from ivig_cds._evaluate import Evaluator
from ivig_cds._records import evaluator_for
from ivig_cds.fhir import (
    CodeTables,
    FhirDataError,
    FhirMapping,
    for_mapping,
    ivig_given,
    patient_from_resources,
    site_code_tables,
)
from ivig_cds.population._export import parse_date

Row = tuple[int, int, str]
"""One staged resource: file index, line number, the line's JSON text."""

# Which dates say a resource was on record, first found wins (recorded before clinical dates).
_RECORDED_ON = {
    "Condition": ("recordedDate", "onsetDateTime", "onsetPeriod.start"),
    "Observation": ("effectiveDateTime", "effectivePeriod.start", "effectiveInstant", "issued"),
    "MedicationStatement": ("dateAsserted", "effectiveDateTime", "effectivePeriod.start"),
    "MedicationRequest": ("authoredOn",),
    "MedicationAdministration": ("effectiveDateTime", "effectivePeriod.start"),
    "Procedure": ("performedDateTime", "performedPeriod.start"),
    "AllergyIntolerance": ("recordedDate", "onsetDateTime"),
}
_DOSE = {"MedicationAdministration": "administration", "MedicationRequest": "order"}
_NOT_GIVEN = ("entered-in-error", "not-done", "cancelled")
_NOT_ORDERS = ("proposal", "plan")
JUDGED_CACHE = 4096
"""Distinct patient contexts whose judgement each process remembers (0: none). A judgement
depends only on the context (its patient id aside), `ivig_ordered` and the knowledge base, and
many patients and doses share a context: each is evaluated once. Bounded: memory stays flat."""
_judged: dict[tuple[object, ...], dict[str, Any]] = {}


class PatientOutcome(NamedTuple):
    """What became of one patient: the results line (None without MS on record), the facts
    the summary counts, the resources that could not be read, and the lines used per file."""

    key: str
    result: str | None
    tally: str
    errors: tuple[tuple[int, int, str], ...]
    used: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class PatientAuditor:
    """`(key, rows) -> PatientOutcome` for one knowledge base and evaluation date.

    Attributes:
        as_of: the date of the tier "now" (the export's date unless the caller chose).
        knowledge_base: its rules and evidence folders; (None, None) for the shipped one.
        code_maps: site code map files (`--codes`), read once per process; paths rather
            than tables, so that the auditor pickles small (executors must read them).
    """

    as_of: dt.date
    knowledge_base: tuple[Path | None, Path | None] = (None, None)
    code_maps: tuple[str, ...] = ()

    def __call__(self, key: str, rows: Sequence[Row]) -> PatientOutcome:
        evaluator = evaluator_for(*self.knowledge_base)
        codes = site_code_tables(self.code_maps) if self.code_maps else None
        errors: list[tuple[int, int, str]] = []
        used: dict[int, int] = {}
        parsed: list[tuple[Resource, dict[str, Any]]] = []
        for file_index, line, text in rows:
            raw = json.loads(text)
            try:
                resource = for_mapping(raw, codes)
            except FhirDataError as exc:
                problems = "; ".join(p.removeprefix("input: ") for p in exc.problems)
                errors.append((file_index, line, f"invalid FHIR: {problems}"))
                continue
            if raw.get("resourceType") != "Medication":  # shared: counted once, when staged
                used[file_index] = used.get(file_index, 0) + 1
            if resource is not None:
                parsed.append((resource, raw))
        try:
            mapping = patient_from_resources(
                _on_record(parsed, self.as_of), as_of=self.as_of, codes=codes
            )
        except FhirDataError as exc:  # more than one Patient resource with this id cannot be
            problems = "; ".join(exc.problems)  # (grouped by id); kept for safety
            errors.extend((f, line, f"patient not mapped: {problems}") for f, line, _ in rows)
            return PatientOutcome(key, None, _tally(None, None, []), tuple(errors), ())
        if not mapping.ms_on_record:
            phenotype = mapping.patient.ms_phenotype
            tally = _tally(phenotype.value if phenotype else None, None, [])
            return PatientOutcome(key, None, tally, tuple(errors), tuple(sorted(used.items())))
        now = _judge_once(evaluator, mapping)
        ivig = {id(r) for r in ivig_given((r for r, _ in parsed), codes)}
        doses = [
            _dose(evaluator, raw, parsed, codes)
            for r, raw in parsed
            if id(r) in ivig and _was_given(raw)
        ]
        doses.sort(key=lambda d: (d["date"] or "", d["resource"]))
        result = {
            "patient": key,
            "phenotype": now["phenotype"],
            "tier": now["tier"],
            "primary_rule": now["primary_rule"],
            "certainty": now["certainty"],
            "cautions": now["cautions"],
            "missing_data": now["missing_data"],
            "conflicts": [c.message for c in mapping.conflicts],
            "notes": list(mapping.notes),
            "unmapped": list(mapping.unmapped),
            "ivig": doses,
            "unreadable_resources": len(errors),
        }
        text = json.dumps(result, separators=(",", ":"), ensure_ascii=False)
        tally = _tally(now["phenotype"], now, doses)
        return PatientOutcome(key, text, tally, tuple(errors), tuple(sorted(used.items())))


def _judge_once(
    evaluator: Evaluator, mapping: FhirMapping, *, ivig_ordered: bool = False
) -> dict[str, Any]:
    """`_judge`, remembered per (knowledge base content, context without its patient id,
    ivig_ordered): keyed by content, never by object identity, so a new evaluator at an old
    address cannot be handed another knowledge base's answers."""
    if JUDGED_CACHE <= 0:
        return _judge(evaluator, mapping, ivig_ordered=ivig_ordered)
    context = mapping.patient
    key = (
        evaluator.knowledge_base.content_hash,
        ivig_ordered,
        *(v for k, v in context if k != "patient_id"),
    )
    judged = _judged.get(key)
    if judged is None:
        judged = _judge(evaluator, mapping, ivig_ordered=ivig_ordered)
        if "error" in judged:
            return judged
        if len(_judged) >= JUDGED_CACHE:
            del _judged[next(iter(_judged))]  # the oldest
        _judged[key] = judged
    return {**judged, "cautions": [*judged["cautions"]], "missing_data": [*judged["missing_data"]]}


def _judge(
    evaluator: Evaluator, mapping: FhirMapping, *, ivig_ordered: bool = False
) -> dict[str, Any]:
    phenotype = mapping.patient.ms_phenotype
    try:
        rec = evaluator.evaluate(mapping.patient, ivig_ordered=ivig_ordered)
    except (EngineError, IvigCdsError) as exc:  # messages never carry the patient
        return {
            "phenotype": None,
            "tier": None,
            "primary_rule": None,
            "certainty": None,
            "cautions": [],
            "missing_data": [],
            "error": str(exc),
        }
    return {
        "phenotype": phenotype.value if phenotype else None,
        "tier": rec.tier.value,
        "primary_rule": rec.primary_rule,
        "certainty": rec.certainty.level.value if rec.certainty else None,
        "cautions": [c.rule_id for c in rec.cautions],
        "missing_data": list(rec.missing_data),
    }


def _was_given(raw: dict[str, Any]) -> bool:
    """An IVIG administration or order that counts as a dose: not cancelled, not done or
    entered in error, and for an order not a mere proposal or plan."""
    if raw.get("status") in _NOT_GIVEN:
        return False
    return not (raw["resourceType"] == "MedicationRequest" and raw.get("intent") in _NOT_ORDERS)


def _dose(
    evaluator: Evaluator,
    raw: dict[str, Any],
    parsed: list[tuple[Resource, dict[str, Any]]],
    codes: CodeTables | None,
) -> dict[str, Any]:
    kind = raw["resourceType"]
    day = recorded_on(raw)
    dose: dict[str, Any] = {
        "kind": _DOSE[kind],
        "resource": f"{kind}/{raw.get('id', '')}",
        "date": day.isoformat() if day else None,
        "tier": None,
        "primary_rule": None,
        "certainty": None,
        "cautions": [],
        "missing_data": [],
    }
    if day is None:
        dose["note"] = "no date: not judged"
        return dose
    # The decision to give this dose: the record before it (so "IVIG in use" means earlier
    # doses), judged as an IVIG order is (the rules ask what matters before IVIG is given).
    before = [r for r in _on_record(parsed, day) if r.id != raw.get("id") or _kind(r) != kind]
    try:
        mapping = patient_from_resources(before, as_of=day, codes=codes)
    except FhirDataError:
        dose["note"] = "record not mappable at that date"
        return dose
    judged = _judge_once(evaluator, mapping, ivig_ordered=True)
    dose.update(
        tier=judged["tier"],
        primary_rule=judged["primary_rule"],
        certainty=judged["certainty"],
        cautions=judged["cautions"],
        missing_data=judged["missing_data"],
    )
    return dose


def _kind(resource: Resource) -> str:
    return str(resource.get_resource_type())


def _on_record(parsed: list[tuple[Resource, dict[str, Any]]], day: dt.date) -> list[Resource]:
    """The resources on record by `day`: dated then or before, or undated."""
    return [r for r, data in parsed if (on := recorded_on(data)) is None or on <= day]


def recorded_on(raw: dict[str, Any]) -> dt.date | None:
    """The date a resource entered the record, as far as it says; None when it does not."""
    for path in _RECORDED_ON.get(raw.get("resourceType", ""), ()):
        value: Any = raw
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        day = parse_date(value)
        if day is not None:
            return day
    return None


def _tally(phenotype: str | None, now: dict[str, Any] | None, doses: Iterable[Any]) -> str:
    """The facts `summary.json` counts, compact (the engines ship them to the driver)."""
    return json.dumps(
        {
            "ms": now is not None,
            "phenotype": phenotype,
            "tier": now["tier"] if now else None,
            "missing": now["missing_data"] if now else [],
            "doses": [[d["kind"], d["tier"], d["missing_data"]] for d in doses],
        },
        separators=(",", ":"),
    )
