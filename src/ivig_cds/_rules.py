"""The rule models: what a YAML file in `rules/` may say, checked when it is read.

Conditions are a deliberately small language (equals, one of, unknown, not empty) so that every
rule can be audited by reading it, compiled to durable_rules, and re-evaluated by the plain
Python reference matcher with the same meaning.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ivig_cds._evidence import EVIDENCE_ID_PATTERN
from ivig_cds._vocabulary import CertaintyLevel, IntendedUse, Tier

RULE_ID_PATTERN = r"^[CK][0-9]{1,2}[a-z]?$"
SUMMARY_MAX = 140  # a CDS Hooks card summary must stay under 140 characters

Scalar = str | bool | int
# Tiers that weigh evidence; `indeterminate` and `not_applicable` make no claim to be certain of.
_JUDGED_TIERS = frozenset(Tier) - {Tier.INDETERMINATE, Tier.NOT_APPLICABLE}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Operator(StrEnum):
    EQUALS = "equals"
    IN = "in"
    UNKNOWN = "unknown"
    NOT_EMPTY = "not_empty"


def _shorthand(value: Any) -> Any:
    """`field: RRMS` is shorthand for `field: {equals: RRMS}`."""
    return value if isinstance(value, dict) else {"equals": value}


class ConditionSpec(_Frozen):
    equals: Scalar | None = None
    in_: tuple[Scalar, ...] | None = Field(default=None, alias="in", min_length=1)
    unknown: Literal[True] | None = None
    not_empty: Literal[True] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [
            name
            for name in ("equals", "in_", "unknown", "not_empty")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "a condition takes exactly one of: a value, 'in: [..]', 'unknown: true', "
                "'not_empty: true'"
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
        return Operator.EQUALS

    @property
    def values(self) -> tuple[Scalar, ...]:
        if self.in_ is not None:
            return self.in_
        return () if self.equals is None else (self.equals,)


Condition = Annotated[ConditionSpec, BeforeValidator(_shorthand)]


class Certainty(_Frozen):
    level: CertaintyLevel
    reason: str = Field(min_length=1, max_length=240, description="Why, in one line.")


class Provenance(_Frozen):
    """Where a rule comes from, kept as data so that audits can read it."""

    spec: str = Field(min_length=1, description="The knowledge-spec item(s) it encodes.")
    seeds: tuple[str, ...] = Field(min_length=1)
    reviewed: dt.date


class _Rule(_Frozen):
    id: str = Field(
        pattern=RULE_ID_PATTERN, description="Stable: C for conclusions, K for cautions."
    )
    version: int = Field(ge=1, description="Raised whenever the rule's meaning changes.")
    title: str = Field(min_length=1, max_length=120)
    when: dict[str, Condition] = Field(description="All must hold; fields of the patient context.")
    evidence: tuple[Annotated[str, Field(pattern=EVIDENCE_ID_PATTERN)], ...] = ()
    provenance: Provenance


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
    certainty: Certainty | None = None

    @model_validator(mode="after")
    def _evidence_backed(self) -> Self:
        if not self.when:
            raise ValueError("a conclusion needs at least one condition under 'when'")
        if len(set(self.questions)) != len(self.questions):
            raise ValueError("'questions' lists a question twice")
        if self.tier is not Tier.INDETERMINATE and not self.evidence:
            raise ValueError(f"a '{self.tier}' conclusion must cite evidence")
        if self.tier in _JUDGED_TIERS and self.certainty is None:
            raise ValueError(f"a '{self.tier}' conclusion must declare its certainty")
        return self

    @property
    def missing_fields(self) -> tuple[str, ...]:
        """Fields whose absence this rule reports (its `unknown: true` conditions)."""
        return tuple(f for f, c in self.when.items() if c.operator is Operator.UNKNOWN)


class CautionRule(_Rule):
    """A caution attached to results that meet its conditions (no conditions: always)."""

    kind: Literal["caution"]
    text: str = Field(min_length=1)

    @model_validator(mode="after")
    def _evidence_backed(self) -> Self:
        if not self.evidence:
            raise ValueError("a caution must cite evidence")
        return self


Rule = Annotated[ConclusionRule | CautionRule, Field(discriminator="kind")]


class Manifest(_Frozen):
    """`rules/knowledge-base.yaml`: the knowledge base's own identity."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    title: str = Field(min_length=1)
    version: str = Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")
    released: dt.date
    source: str = Field(min_length=1)
