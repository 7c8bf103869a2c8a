"""What the service writes down: one record per card returned, one per feedback item.

Records are plain rows (the store's column names) with a random `record_id`, so that a record
replayed from the journal into the store is inserted once however often the replay is retried.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import OrderedDict, deque
from typing import Any, Protocol

from ivig_cds._recommendation import Recommendation
from ivig_cds.service.wire import Feedback

__all__ = ["Recorder", "StoreUnavailableError", "decision_row", "feedback_row"]


class StoreUnavailableError(Exception):
    """Neither the store nor the journal could take a record."""


class Recorder(Protocol):
    """Where records go: the store, the journal while it is away, or memory only."""

    def record(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Write `rows` durably before returning, or raise StoreUnavailableError."""
        ...

    def known_cards(self, card_uuids: list[str]) -> set[str]:
        """Which of these card uuids this service has issued (as far as it can tell)."""
        ...

    def state(self) -> str:
        """`writing`, `journalling`, `memory` (store off) or `unavailable`."""
        ...


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def decision_row(
    rec: Recommendation,
    *,
    card_uuid: str,
    service: str,
    hook: str,
    hook_instance: str,
    patient_key: str,
    order: str | None,
) -> dict[str, Any]:
    """The decision record for a card: no patient identifier, only its keyed hash."""
    return {
        "record_id": str(uuid.uuid4()),
        "recorded_at": now(),
        "service": service,
        "hook": hook,
        "hook_instance": hook_instance,
        "card_uuid": card_uuid,
        "tier": rec.tier.value,
        "question": rec.question.intended_use.value,
        "primary_rule": rec.primary_rule,
        "rules": [{"id": f.rule_id, "version": f.version, "role": f.role} for f in rec.findings],
        "cautions": [c.rule_id for c in rec.cautions],
        "missing_data": list(rec.missing_data),
        "kb_version": rec.knowledge_base.version,
        "kb_hash": rec.knowledge_base.content_hash,
        "patient_key": patient_key,
        "order_ref": order,
    }


def feedback_row(item: Feedback, *, service: str, known_card: bool) -> dict[str, Any]:
    """The feedback record for one item. A free-text userComment is not kept: it may name
    the patient."""
    reason = item.overrideReason.reason if item.overrideReason else None
    return {
        "record_id": str(uuid.uuid4()),
        "recorded_at": now(),
        "service": service,
        "card_uuid": item.card,
        "known_card": known_card,
        "outcome": item.outcome,
        "outcome_timestamp": item.outcomeTimestamp,
        "override_system": reason.system if reason else None,
        "override_code": reason.code if reason else None,
        "accepted_suggestions": [
            {"id": s.get("id")} for s in item.acceptedSuggestions or [] if isinstance(s, dict)
        ],
    }


class MemoryRecorder:
    """Records kept in this process only (`--store none`): lost on restart, by choice."""

    def __init__(self, limit: int = 10_000) -> None:
        self.rows: dict[str, deque[dict[str, Any]]] = {
            "decisions": deque(maxlen=limit),
            "feedback": deque(maxlen=limit),
        }
        self._cards: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def record(self, table: str, rows: list[dict[str, Any]]) -> None:
        self.rows[table].extend(rows)
        if table == "decisions":
            for row in rows:
                self._cards[row["card_uuid"]] = None
                if len(self._cards) > self._limit:
                    self._cards.popitem(last=False)

    def known_cards(self, card_uuids: list[str]) -> set[str]:
        return {u for u in card_uuids if u in self._cards}

    def state(self) -> str:
        return "memory"
