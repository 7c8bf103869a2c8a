"""What is compared: one answer per knowledge base, in a compact form, and what differs.

An `Answer` keeps what a committee asks about when a knowledge base changes: the tier, the
rule that decided it, the certainty, the cautions, the missing data and the other findings. It
is built from a whole `Recommendation` (patient files, FHIR Bundles), from `batch`'s audit line
(NDJSON) or from the population audit's judgement (tier, rule and missing data only: the other
aspects are then None, "not recorded", and never count as changed).

A `Compared` item is one patient (or one IVIG dose, judged as of its date) with both answers;
its `record()` is the JSON line every output format is built from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ivig_cds._recommendation import Recommendation

Unit = Literal["patient", "dose"]
ASPECTS = ("tier", "primary_rule", "certainty", "cautions", "missing_data", "secondary_rules")
"""The parts of an answer compared, in the order they are reported."""
LISTS = ("cautions", "missing_data", "secondary_rules")
"""The aspects that are sets of ids or names: changes to them are reported as added/removed."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One knowledge base's answer for one patient or dose.

    `tier` None means no answer: the knowledge base left a gap, the evaluation failed, or a dose
    had no date to judge it at (`note` says which). A list aspect that is None was not recorded
    by the input's reading (population audit: cautions, certainty, secondary findings).
    """

    tier: str | None
    primary_rule: str | None
    certainty: str | None = None
    cautions: tuple[str, ...] | None = None
    missing_data: tuple[str, ...] = ()
    secondary_rules: tuple[str, ...] | None = None
    note: str | None = None

    @classmethod
    def of(cls, rec: Recommendation) -> Answer:
        """The compact form of a whole recommendation."""
        return cls(
            tier=rec.tier.value,
            primary_rule=rec.primary_rule,
            certainty=rec.certainty.level.value if rec.certainty else None,
            cautions=tuple(c.rule_id for c in rec.cautions),
            missing_data=rec.missing_data,
            secondary_rules=tuple(f.rule_id for f in rec.findings if f.role == "secondary"),
        )

    @classmethod
    def from_compact(cls, line: Mapping[str, Any]) -> Answer:
        """From `batch`'s audit line (`ivig_cds._records`' compact result)."""
        return cls(
            tier=line["tier"],
            primary_rule=line["primary_rule"],
            certainty=line["certainty"],
            cautions=tuple(line["cautions"]),
            missing_data=tuple(line["missing_data"]),
            secondary_rules=tuple(line["secondary_rules"]),
        )

    @classmethod
    def from_judged(cls, judged: Mapping[str, Any]) -> Answer:
        """From the population audit's judgement of a patient now or of one dose."""
        cautions = judged.get("cautions")
        return cls(
            tier=judged.get("tier"),
            primary_rule=judged.get("primary_rule"),
            certainty=judged.get("certainty"),
            cautions=None if cautions is None else tuple(cautions),
            missing_data=tuple(judged.get("missing_data") or ()),
            note=judged.get("note") or judged.get("error"),
        )

    @classmethod
    def unanswered(cls, note: str) -> Answer:
        """No answer from this knowledge base, and why (never a patient value)."""
        return cls(tier=None, primary_rule=None, note=note)

    def to_json(self) -> dict[str, Any]:
        """Every aspect recorded; the ones not recorded are left out."""
        data: dict[str, Any] = {"tier": self.tier, "primary_rule": self.primary_rule}
        if self.certainty is not None or self.cautions is not None:
            data["certainty"] = self.certainty
        for name in LISTS:
            value = getattr(self, name)
            if value is not None:
                data[name] = list(value)
        if self.note is not None:
            data["note"] = self.note
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Answer:
        def listed(name: str) -> tuple[str, ...] | None:
            value = data.get(name)
            return None if value is None else tuple(value)

        return cls(
            tier=data["tier"],
            primary_rule=data["primary_rule"],
            certainty=data.get("certainty"),
            cautions=listed("cautions"),
            missing_data=listed("missing_data") or (),
            secondary_rules=listed("secondary_rules"),
            note=data.get("note"),
        )


@dataclass(frozen=True, slots=True)
class Change:
    """How two answers differ: the aspects that changed, and for lists what came and went."""

    changed: tuple[str, ...]
    added: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    removed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "changed": list(self.changed),
            "added": {k: list(v) for k, v in self.added.items()},
            "removed": {k: list(v) for k, v in self.removed.items()},
        }


def compare(old: Answer, new: Answer) -> Change | None:
    """What changed from `old` to `new`; None when the answers agree on every recorded aspect.

    An aspect recorded on one side only (it cannot be, for the same input) is not compared.
    """
    changed: list[str] = []
    added: dict[str, tuple[str, ...]] = {}
    removed: dict[str, tuple[str, ...]] = {}
    for aspect in ASPECTS:
        before, after = getattr(old, aspect), getattr(new, aspect)
        if aspect in LISTS:
            if before is None or after is None:
                continue
            plus = tuple(x for x in after if x not in before)
            minus = tuple(x for x in before if x not in after)
            if plus:
                added[aspect] = plus
            if minus:
                removed[aspect] = minus
            if plus or minus:
                changed.append(aspect)
        elif aspect == "certainty" and (old.cautions is None or new.cautions is None):
            continue  # not recorded by this reading (population audit)
        elif before != after:
            changed.append(aspect)
    if not changed:
        return None
    return Change(tuple(changed), added, removed)


@dataclass(frozen=True, slots=True)
class Compared:
    """One patient, or one IVIG dose of a patient, with the answer of each knowledge base.

    Attributes:
        unit: "patient", or "dose" (an IVIG administration or order judged as of its date).
        source: the file (or export) it came from.
        line: its line in an NDJSON input.
        patient: the patient's identifier, if the input gave one (a pseudonym for an export).
        dose: for a dose, its `kind`, `resource` (Type/id) and `date`.
        context: the patient context evaluated, kept only to draw both paths on the HTML page
            (never written to the JSON outputs).
    """

    unit: Unit
    source: str
    old: Answer
    new: Answer
    line: int | None = None
    patient: str | None = None
    dose: Mapping[str, Any] | None = None
    context: Mapping[str, Any] | None = None

    @property
    def transition(self) -> tuple[str | None, str | None]:
        return self.old.tier, self.new.tier

    def change(self) -> Change | None:
        return compare(self.old, self.new)

    def record(self, change: Change | None = None) -> dict[str, Any]:
        """The public JSON record: where it came from, both answers, what changed."""
        found = change if change is not None else self.change()
        data: dict[str, Any] = {"unit": self.unit, "source": self.source}
        if self.line is not None:
            data["line"] = self.line
        data["patient"] = self.patient
        if self.dose is not None:
            data["dose"] = dict(self.dose)
        data["old"] = self.old.to_json()
        data["new"] = self.new.to_json()
        data.update(found.to_json() if found else Change(()).to_json())
        return data

    def spool(self, change: Change | None = None) -> str:
        """One line holding the record and the context, for `from_spool`."""
        data = self.record(change)
        if self.context is not None:
            data["context"] = self.context
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_spool(cls, line: str | Mapping[str, Any]) -> Compared:
        data = json.loads(line) if isinstance(line, str) else line
        return cls(
            unit=data["unit"],
            source=data["source"],
            old=Answer.from_json(data["old"]),
            new=Answer.from_json(data["new"]),
            line=data.get("line"),
            patient=data.get("patient"),
            dose=data.get("dose"),
            context=data.get("context"),
        )


def public(record: Mapping[str, Any]) -> dict[str, Any]:
    """A spooled record without the internal patient context."""
    return {k: v for k, v in record.items() if k != "context"}


def transition_key(old: str | None, new: str | None) -> str:
    """A transition as one string (`second_line>not_recommended`; `-` for no answer)."""
    return f"{old or '-'}>{new or '-'}"


def parse_transition(key: str) -> tuple[str | None, str | None]:
    old, new = key.split(">")
    return (None if old == "-" else old), (None if new == "-" else new)


def ordered(values: Sequence[str | None], order: Sequence[str]) -> list[str | None]:
    """Tiers in the vocabulary's order, unknown ones after, no answer last."""
    rank = {v: i for i, v in enumerate(order)}
    return sorted(values, key=lambda v: (v is None, rank.get(v or "", len(order)), v or ""))
