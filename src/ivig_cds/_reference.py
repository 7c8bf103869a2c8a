"""A plain-Python matcher with the same meaning as the compiled durable ruleset.

It is the oracle for differential tests, and it answers "could this rule fire if we knew more?"
for `missing_data`, which durable cannot.
"""

from __future__ import annotations

from collections.abc import Mapping

from ivig_cds._rules import CautionRule, ConclusionRule, ConditionSpec, Operator


def condition_holds(condition: ConditionSpec, value: object) -> bool:
    op = condition.operator
    if op is Operator.UNKNOWN:
        return value is None
    if value is None:
        return False
    if op is Operator.NOT_EMPTY:
        return isinstance(value, tuple | list) and len(value) > 0
    return any(_same(value, v) for v in condition.values)


def _same(value: object, expected: object) -> bool:
    # bool is an int in Python; a rule's `true` must not match the number 1, nor 1 match `true`.
    return isinstance(value, bool) == isinstance(expected, bool) and value == expected


def matches(rule: ConclusionRule | CautionRule, facts: Mapping[str, object]) -> bool:
    return all(condition_holds(c, facts.get(name)) for name, c in rule.when.items())


def blocking_unknowns(rule: ConclusionRule, facts: Mapping[str, object]) -> tuple[str, ...] | None:
    """The unknown fields that alone keep `rule` from firing, or None if known facts rule it out."""
    unknown: list[str] = []
    for name, condition in rule.when.items():
        value = facts.get(name)
        if value is None and condition.operator is not Operator.UNKNOWN:
            unknown.append(name)
        elif not condition_holds(condition, value):
            return None
    return tuple(unknown)
