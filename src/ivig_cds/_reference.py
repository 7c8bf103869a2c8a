"""A plain-Python matcher with the same meaning as the compiled durable ruleset.

It is the oracle for differential tests and the baseline the benchmarks compare durable with, and
it answers "could this rule fire if we knew more?" for `missing_data`, which durable cannot. Rule
models are flattened into tuples once, so matching is a few set lookups per condition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ivig_cds._rules import CautionRule, ConclusionRule, ConditionSpec, Operator


@dataclass(frozen=True, slots=True)
class Check:
    """One condition of one rule, ready to test a fact value."""

    field: str
    operator: Operator
    flags: frozenset[bool]  # the bool values `equals`/`in` accept
    others: frozenset[str | int]  # every other value they accept
    low: float | None = None  # `at_least`, inclusive
    high: float | None = None  # `at_most`, inclusive

    @classmethod
    def of(cls, field: str, condition: ConditionSpec) -> Check:
        values = condition.values
        return cls(
            field=field,
            operator=condition.operator,
            flags=frozenset(v for v in values if isinstance(v, bool)),
            others=frozenset(v for v in values if not isinstance(v, bool)),
            low=condition.at_least,
            high=condition.at_most,
        )

    def holds(self, value: object) -> bool:
        if self.operator is Operator.UNKNOWN:
            return value is None
        if value is None:
            return False
        if self.operator is Operator.NOT_EMPTY:
            return isinstance(value, tuple | list) and len(value) > 0
        # bool is an int in Python; a rule's `true` must not match the number 1, nor 1 `true`.
        if isinstance(value, bool):
            return value in self.flags
        if self.operator is Operator.RANGE:
            return (
                isinstance(value, int | float)
                and (self.low is None or value >= self.low)
                and (self.high is None or value <= self.high)
            )
        return isinstance(value, str | int | float) and value in self.others


def checks_of(conditions: Mapping[str, ConditionSpec]) -> tuple[Check, ...]:
    return tuple(Check.of(name, c) for name, c in conditions.items())


def all_hold(checks: tuple[Check, ...], facts: Mapping[str, object]) -> bool:
    # A loop, not all(<generator>): half the cost, and this is the benchmarks baseline.
    for check in checks:  # noqa: SIM110
        if not check.holds(facts.get(check.field)):
            return False
    return True


@dataclass(frozen=True, slots=True)
class ReferenceRule:
    id: str
    checks: tuple[Check, ...]
    alternatives: tuple[tuple[Check, ...], ...] = ()  # a caution's `any_of`: one must hold
    exceptions: tuple[tuple[Check, ...], ...] = ()  # `unless`: none may hold

    @classmethod
    def of(cls, rule: ConclusionRule | CautionRule) -> ReferenceRule:
        groups = rule.any_of if isinstance(rule, CautionRule) else ()
        return cls(
            rule.id,
            checks_of(rule.when),
            tuple(checks_of(g) for g in groups),
            tuple(checks_of(g) for g in rule.unless),
        )

    def fires(self, facts: Mapping[str, object]) -> bool:
        if not all_hold(self.checks, facts):
            return False
        if any(all_hold(group, facts) for group in self.exceptions):
            return False
        if not self.alternatives:
            return True
        return any(all_hold(group, facts) for group in self.alternatives)

    def blocking_unknowns(self, facts: Mapping[str, object]) -> tuple[str, ...] | None:
        """The unknown fields that alone keep this rule from firing; None if facts rule it out.

        Only the conjunction `when` is analysed (conclusions, the only rules asked, have no
        alternatives); an `unless` group that already holds rules the rule out.
        """
        if any(all_hold(group, facts) for group in self.exceptions):
            return None
        unknown: list[str] = []
        for check in self.checks:
            value = facts.get(check.field)
            if value is None and check.operator is not Operator.UNKNOWN:
                unknown.append(check.field)
            elif not check.holds(value):
                return None
        return tuple(unknown)


class ReferenceMatcher:
    """The rules a set of facts fires, computed in plain Python; same interface as durable's."""

    def __init__(self, rules: Sequence[ConclusionRule | CautionRule]) -> None:
        self.rules = {rule.id: ReferenceRule.of(rule) for rule in rules}
        self._all = tuple(self.rules.values())

    def match(self, facts: Mapping[str, object]) -> frozenset[str]:
        return frozenset([rule.id for rule in self._all if rule.fires(facts)])


def matches(rule: ConclusionRule | CautionRule, facts: Mapping[str, object]) -> bool:
    """Whether one rule fires; slower than a `ReferenceMatcher` built once, but needs none."""
    return ReferenceRule.of(rule).fires(facts)
