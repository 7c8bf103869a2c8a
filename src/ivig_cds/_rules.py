"""The rule models: what a YAML file in `rules/` may say, checked when it is read.

Conditions are a deliberately small language (equals, one of, unknown, not empty, a numeric
bound) so that every rule can be audited by reading it, compiled to durable_rules, and
re-evaluated by the plain Python reference matcher with the same meaning. A conclusion is one
conjunction, so that each one is a single path a reader can follow; a caution may also name
alternative situations (`any_of`), because one warning can have several triggers. Any rule may
name situations it must not fire in (`unless`), because the sources themselves carve such
exceptions out ("first-line therapy came first", except where they call it contraindicated).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ivig_cds._evidence import EVIDENCE_ID_PATTERN
from ivig_cds._vocabulary import CertaintyLevel, IntendedUse, Tier

RULE_ID_PATTERN = r"^[CK][0-9]{1,2}[a-z]?$"
SUMMARY_MAX = 140  # a CDS Hooks card summary must stay under 140 characters

Scalar = str | bool | int
Number = Annotated[int | float, Field(allow_inf_nan=False)]
# Tiers that weigh evidence; the others make no claim about IVIG to be certain of.
_JUDGED_TIERS = frozenset(Tier) - {Tier.INDETERMINATE, Tier.OUTSIDE_EVIDENCE, Tier.NOT_APPLICABLE}
# Tiers that claim nothing about IVIG from the evidence, so cite none.
_UNSOURCED_TIERS = frozenset({Tier.INDETERMINATE, Tier.OUTSIDE_EVIDENCE})
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Operator(StrEnum):
    EQUALS = "equals"
    IN = "in"
    UNKNOWN = "unknown"
    NOT_EMPTY = "not_empty"
    RANGE = "range"  # at_least and/or at_most, both inclusive


def _shorthand(value: Any) -> Any:
    """`field: RRMS` is shorthand for `field: {equals: RRMS}`."""
    return value if isinstance(value, dict) else {"equals": value}


class ConditionSpec(_Frozen):
    equals: Scalar | None = None
    in_: tuple[Scalar, ...] | None = Field(default=None, alias="in", min_length=1)
    unknown: Literal[True] | None = None
    not_empty: Literal[True] | None = None
    at_least: Number | None = None
    at_most: Number | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [
            name
            for name in ("equals", "in_", "unknown", "not_empty", "at_least")
            if getattr(self, name) is not None
        ]
        if self.at_most is not None and "at_least" not in given:
            given.append("at_most")
        if len(given) != 1:
            raise ValueError(
                "a condition takes exactly one of: a value, 'in: [..]', 'unknown: true', "
                "'not_empty: true', or a bound ('at_least: n', 'at_most: n', or both)"
            )
        for bound in (self.at_least, self.at_most):
            if isinstance(bound, bool):
                raise ValueError("'at_least' and 'at_most' take a number, not true or false")
        if self.at_least is not None and self.at_most is not None and self.at_least > self.at_most:
            raise ValueError(
                f"'at_least: {self.at_least}' is above 'at_most: {self.at_most}'; "
                "no value can satisfy both"
            )
        return self

    @property
    def operator(self) -> Operator:
        if self.in_ is not None:
            return Operator.IN
        if self.unknown:
            return Operator.UNKNOWN
        if self.not_empty:
            return Operator.NOT_EMPTY
        if self.at_least is not None or self.at_most is not None:
            return Operator.RANGE
        return Operator.EQUALS

    @property
    def values(self) -> tuple[Scalar, ...]:
        if self.in_ is not None:
            return self.in_
        return () if self.equals is None else (self.equals,)

    def example(self) -> Scalar | float | None:
        """One value that satisfies the condition, for asking "could this rule fire?"."""
        if self.operator is Operator.RANGE:
            return self.at_least if self.at_least is not None else self.at_most
        return self.values[0] if self.values else None

    def describe(self) -> str:
        """The condition in plain words, after the field's name ("is one of RRMS, CIS")."""
        op = self.operator
        if op is Operator.UNKNOWN:
            return "is unknown"
        if op is Operator.NOT_EMPTY:
            return "is not empty"
        if op is Operator.RANGE:
            low, high = self.at_least, self.at_most
            if low is not None and high is not None:
                return f"is from {low} to {high}"
            return f"is at least {low}" if low is not None else f"is at most {high}"
        shown = [("true" if v else "false") if isinstance(v, bool) else str(v) for v in self.values]
        if op is Operator.IN:
            return f"is one of {', '.join(shown)}"
        return f"= {shown[0]}"


Condition = Annotated[ConditionSpec, BeforeValidator(_shorthand)]
Conditions = dict[str, Condition]


class Certainty(_Frozen):
    level: CertaintyLevel
    reason: str = Field(min_length=1, max_length=240, description="Why, in one line.")


class Passage(_Frozen):
    """A place in a seed document a rule rests on: the file, a short verbatim excerpt, and the
    work it is printed in."""

    seed: str = Field(min_length=1, pattern=r"^[^/\\]+$")
    quote: str = Field(min_length=8, max_length=400)
    work: str | None = Field(
        default=None,
        pattern=EVIDENCE_ID_PATTERN,
        description="The evidence entry (work) the quote is printed in, where a document "
        "holds several, so that a quote is shown under its work's name.",
    )


class Provenance(_Frozen):
    """Where a rule comes from, kept as data so that audits can read it.

    `clinical_judgement` marks, with its reason, what a rule says beyond its sources; the
    traceability audit accepts that and nothing else that no passage or evidence supports.
    """

    spec: str = Field(min_length=1, description="The knowledge-spec item(s) it encodes.")
    passages: tuple[Passage, ...] = Field(min_length=1)
    clinical_judgement: str | None = Field(
        default=None,
        min_length=1,
        description="What goes beyond the sources and why a clinician would expect it.",
    )
    reviewed: dt.date

    @property
    def seeds(self) -> tuple[str, ...]:
        """The seed files the passages come from, in first-quoted order."""
        return tuple(dict.fromkeys(p.seed for p in self.passages))


class _Rule(_Frozen):
    id: str = Field(
        pattern=RULE_ID_PATTERN, description="Stable: C for conclusions, K for cautions."
    )
    version: int = Field(ge=1, description="Raised whenever the rule's meaning changes.")
    title: str = Field(min_length=1, max_length=120)
    when: Conditions = Field(description="All must hold; fields of the patient context.")
    unless: tuple[Conditions, ...] = Field(
        default=(),
        description="Situations the rule does not fire in: it fires only if no group holds.",
    )
    evidence: tuple[Annotated[str, Field(pattern=EVIDENCE_ID_PATTERN)], ...] = ()
    provenance: Provenance

    @model_validator(mode="after")
    def _unless_groups_not_empty(self) -> Self:
        if any(not group for group in self.unless):
            raise ValueError("'unless' holds an empty group, which would always hold")
        return self

    @property
    def conditions(self) -> tuple[tuple[tuple[str | int, ...], str, ConditionSpec], ...]:
        """Every condition with its location in the rule file (`when.x`, `unless.0.y`)."""
        found: list[tuple[tuple[str | int, ...], str, ConditionSpec]]
        found = [(("when", name), name, c) for name, c in self.when.items()]
        for i, group in enumerate(self.unless):
            found += [(("unless", i, name), name, c) for name, c in group.items()]
        return tuple(found)


class ConclusionRule(_Rule):
    """A conclusion: in this situation, for these questions, the evidence puts IVIG in `tier`."""

    kind: Literal["conclusion"]
    questions: tuple[IntendedUse, ...] = Field(min_length=1)
    precedence: int = Field(
        ge=0, le=999, description="Lower wins when several conclusions answer the same question."
    )
    tier: Tier
    summary: str = Field(min_length=1, max_length=SUMMARY_MAX)
    rationale: str = Field(min_length=1)
    certainty: Certainty

    @model_validator(mode="after")
    def _evidence_backed(self) -> Self:
        if not self.when:
            raise ValueError("a conclusion needs at least one condition under 'when'")
        if len(set(self.questions)) != len(self.questions):
            raise ValueError("'questions' lists a question twice")
        if self.tier not in _UNSOURCED_TIERS and not self.evidence:
            raise ValueError(f"a '{self.tier}' conclusion must cite evidence")
        graded = self.certainty.level is not CertaintyLevel.NOT_GRADED
        if self.tier in _JUDGED_TIERS and not graded:
            raise ValueError(
                f"a '{self.tier}' conclusion weighs evidence and must grade its certainty "
                "(high, moderate, low or very_low)"
            )
        if self.tier not in _JUDGED_TIERS and graded:
            raise ValueError(
                f"a '{self.tier}' conclusion makes no claim about IVIG; "
                "its certainty level is 'not_graded'"
            )
        return self

    @property
    def missing_fields(self) -> tuple[str, ...]:
        """Fields whose absence this rule reports (its `unknown: true` conditions)."""
        return tuple(f for f, c in self.when.items() if c.operator is Operator.UNKNOWN)


CautionDisplay = Literal["caution", "first", "standing"]


class CautionNote(_Frozen):
    """A sentence added to a caution when its conditions hold, naming what in the record led to
    it. `{field}` in the text is replaced by the patient's value (a list: its items)."""

    when: Conditions = Field(min_length=1)
    text: str = Field(min_length=1, max_length=400)

    @model_validator(mode="after")
    def _placeholders_known(self) -> Self:
        for name in _PLACEHOLDER.findall(self.text):
            condition = self.when.get(name)
            if condition is None or condition.operator is Operator.UNKNOWN:
                raise ValueError(
                    f"the text names {{{name}}}, which needs a condition on '{name}' under "
                    "this note's 'when' that makes it known"
                )
        return self

    def filled(self, facts: Mapping[str, object]) -> str:
        """The text with each `{field}` replaced by its value in `facts`."""
        return _PLACEHOLDER.sub(lambda m: _shown(facts.get(m.group(1))), self.text)


def _shown(value: object) -> str:
    if isinstance(value, tuple | list):
        return "; ".join(str(v) for v in value)
    if isinstance(value, StrEnum):
        return value.value.replace("_", " ")
    return str(value)


class CautionRule(_Rule):
    """A caution attached to results that meet its conditions (no conditions: always).

    `any_of` lists alternative situations: besides `when`, at least one group must hold.
    `notes` add what in this patient's record the caution rests on (its trigger, the recorded
    values), so that a clinician sees why it is shown.
    A caution may cite no work when it speaks about the knowledge base itself or is clinical
    judgement; its provenance passages still say what it rests on.
    """

    kind: Literal["caution"]
    any_of: tuple[Conditions, ...] = ()
    text: str = Field(min_length=1)
    notes: tuple[CautionNote, ...] = ()
    display: CautionDisplay = Field(
        default="caution",
        description="'first': leads the result (a card's summary starts with it); 'standing': "
        "shown apart, as a standing statement about this tool; else among the cautions.",
    )

    @model_validator(mode="after")
    def _groups_not_empty(self) -> Self:
        if any(not group for group in self.any_of):
            raise ValueError("'any_of' holds an empty group, which would always hold")
        return self

    @property
    def conditions(self) -> tuple[tuple[tuple[str | int, ...], str, ConditionSpec], ...]:
        """Every condition with its location in the file (`when.x`, `any_of.0.y`, ...)."""
        found = list(super().conditions)
        for i, group in enumerate(self.any_of):
            found += [(("any_of", i, name), name, c) for name, c in group.items()]
        for i, note in enumerate(self.notes):
            found += [(("notes", i, "when", name), name, c) for name, c in note.when.items()]
        return tuple(found)


Rule = Annotated[ConclusionRule | CautionRule, Field(discriminator="kind")]


class NotAsked(_Frozen):
    """A fact not reported as missing in a situation where asking for it makes no sense."""

    field: str = Field(min_length=1)
    when: Conditions = Field(min_length=1)
    clinical_judgement: str = Field(min_length=1, description="Why it is not asked.")


class Asked(_Frozen):
    """A fact reported as missing in a situation where no rule's precedence would ask for it
    (thrombotic risk before IVIG is given, say). It is asked only while it is unknown."""

    field: str = Field(min_length=1)
    when: Conditions = Field(min_length=1)
    reason: str = Field(min_length=1, description="Why a clinician needs it here.")


class Manifest(_Frozen):
    """`rules/knowledge-base.yaml`: the knowledge base's own identity."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    title: str = Field(min_length=1)
    version: str = Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")
    released: dt.date
    source: str = Field(min_length=1)
    not_asked: tuple[NotAsked, ...] = ()
    asked: tuple[Asked, ...] = ()
