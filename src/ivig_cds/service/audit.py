"""What an auditor asks of the store: advice per tier and rule over time, how often clinicians
overrode each rule and why, and the records themselves (NDJSON, or FHIR R4 GuidanceResponse).

Aggregation happens here in Python over the rows, so that SQLite and PostgreSQL give the same
figures without dialect-specific SQL.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SummaryRow", "guidance_response", "ndjson_records", "summarize"]

_TOP_REASONS = 3
UNKNOWN_CARD = "(card not in the store)"


@dataclass
class SummaryRow:
    """Decisions and their feedback for one month, rule and tier."""

    month: str
    rule: str
    tier: str
    decisions: int = 0
    accepted: int = 0
    overridden: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def override_rate(self) -> float | None:
        answered = self.accepted + self.overridden
        return round(self.overridden / answered, 3) if answered else None

    def top_reasons(self) -> list[tuple[str, int]]:
        return self.reasons.most_common(_TOP_REASONS)

    def as_json(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "rule": self.rule,
            "tier": self.tier,
            "decisions": self.decisions,
            "accepted": self.accepted,
            "overridden": self.overridden,
            "overrideRate": self.override_rate,
            "topReasons": [{"code": c, "count": n} for c, n in self.top_reasons()],
        }


def summarize(
    decisions: Sequence[dict[str, Any]], feedback: Sequence[dict[str, Any]]
) -> list[SummaryRow]:
    """One row per (month, primary rule, tier); feedback counts under its card's decision (a
    card issued before `since` or unknown to the store counts under UNKNOWN_CARD)."""
    rows: dict[tuple[str, str, str], SummaryRow] = {}
    by_card: dict[str, tuple[str, str, str]] = {}
    for d in decisions:
        key = (_month(d["recorded_at"]), d["primary_rule"], d["tier"])
        rows.setdefault(key, SummaryRow(*key)).decisions += 1
        by_card[d["card_uuid"]] = key
    for f in feedback:
        key = by_card.get(f["card_uuid"], (_month(f["recorded_at"]), UNKNOWN_CARD, "-"))
        row = rows.setdefault(key, SummaryRow(*key))
        if f["outcome"] == "accepted":
            row.accepted += 1
        else:
            row.overridden += 1
            row.reasons[f.get("override_code") or "(no reason given)"] += 1
    return sorted(rows.values(), key=lambda r: (r.month, r.rule, r.tier))


def _month(stamp: dt.datetime) -> str:
    return stamp.strftime("%Y-%m")


def ndjson_records(
    decisions: Sequence[dict[str, Any]], feedback: Sequence[dict[str, Any]]
) -> Iterator[str]:
    """Every record as one JSON line with its `type`, decisions first, each oldest first."""
    for kind, rows in (("decision", decisions), ("feedback", feedback)):
        for row in rows:
            yield json.dumps({"type": kind, **row}, default=_json, sort_keys=True)


def _json(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot export a {type(value).__name__}")


def guidance_response(decision: dict[str, Any]) -> dict[str, Any]:
    """A decision as a FHIR R4 GuidanceResponse, validated by fhir.resources (R4B package).

    module: the deciding rule; status: `data-required` when the answer waits on missing data;
    reasonCode: the tier; outputParameters: a contained Parameters with the tier, rules and
    versions, cautions and knowledge base; dataRequirement: one per missing patient fact.
    The subject is the pseudonymous key only.
    """
    from fhir.resources.R4B.guidanceresponse import GuidanceResponse  # noqa: PLC0415 (slow)

    parameters: list[dict[str, Any]] = [
        {"name": "tier", "valueCode": decision["tier"]},
        {"name": "question", "valueCode": decision["question"]},
        {"name": "primaryRule", "valueString": decision["primary_rule"]},
        {"name": "knowledgeBaseVersion", "valueString": decision["kb_version"]},
        {"name": "knowledgeBaseHash", "valueString": decision["kb_hash"]},
        {"name": "service", "valueString": decision["service"]},
        {"name": "hook", "valueString": decision["hook"]},
    ]
    parameters += [
        {
            "name": "rule",
            "part": [
                {"name": "id", "valueString": rule["id"]},
                {"name": "version", "valueString": str(rule["version"])},
                {"name": "role", "valueCode": rule["role"]},
            ],
        }
        for rule in decision["rules"]
    ]
    parameters += [{"name": "caution", "valueString": c} for c in decision["cautions"]]
    resource: dict[str, Any] = {
        "resourceType": "GuidanceResponse",
        "id": decision["record_id"],
        "identifier": [
            {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{decision['card_uuid']}"}
        ],
        "requestIdentifier": {
            "system": "urn:ivig-cds:hook-instance",
            "value": decision["hook_instance"],
        },
        "moduleUri": f"urn:ivig-cds:rule:{decision['primary_rule']}",
        "status": "data-required" if decision["tier"] == "indeterminate" else "success",
        "subject": {
            "identifier": {
                "system": "urn:ivig-cds:pseudonymous-patient",
                "value": decision["patient_key"],
            }
        },
        "occurrenceDateTime": decision["recorded_at"].isoformat(),
        "reasonCode": [{"coding": [{"system": "urn:ivig-cds:tier", "code": decision["tier"]}]}],
        "contained": [{"resourceType": "Parameters", "id": "output", "parameter": parameters}],
        "outputParameters": {"reference": "#output"},
    }
    if decision["missing_data"]:
        resource["dataRequirement"] = [
            {"type": "Any", "mustSupport": [name]} for name in decision["missing_data"]
        ]
    validated = GuidanceResponse.model_validate(resource)
    out: dict[str, Any] = json.loads(validated.model_dump_json(exclude_none=True))
    return out
