"""Compile rule models into a durable_rules ruleset definition (plain data; no durable import).

Also defines how a set of facts is encoded for durable, because the two must agree: only the
fields some rule tests are sent, unknown values are left out (so `$nex` means "unknown"), enums
become their string values and list fields their length.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ivig_cds._rules import CautionRule, ConclusionRule, ConditionSpec, Operator

# Every fact carries this pair and every rule tests it, so no rule can match durable's own
# state object (a rule with no discriminator can loop on it).
DISCRIMINATOR = ("ivig_kind", "facts")


@dataclass(frozen=True, slots=True)
class CompiledRuleset:
    definition: dict[str, Any]
    fields: tuple[str, ...]  # the fact fields the rules read, in first-use order

    def encode(self, facts: Mapping[str, object]) -> dict[str, Any]:
        """The fact durable sees for these facts (missing or None values are left out)."""
        fact: dict[str, Any] = {DISCRIMINATOR[0]: DISCRIMINATOR[1]}
        for name in self.fields:
            value = facts.get(name)
            if value is None:
                continue
            if isinstance(value, Enum):
                value = value.value
            elif isinstance(value, tuple | list):
                value = len(value)
            fact[name] = value
        return fact


def compile_rules(rules: Sequence[ConclusionRule | CautionRule]) -> CompiledRuleset:
    """Translate rules into one durable ruleset; rule names are the rule ids."""
    definition: dict[str, Any] = {}
    fields: dict[str, None] = {}
    for rule in rules:
        for _, name, _ in rule.conditions:
            fields[name] = None
        tests: list[dict[str, Any]] = [{DISCRIMINATOR[0]: DISCRIMINATOR[1]}]
        tests += _tests(rule.when)
        if isinstance(rule, CautionRule) and rule.any_of:
            # `$or` fires once per true branch; the engine reports each rule once regardless.
            tests.append({"$or": [_all(_tests(group)) for group in rule.any_of]})
        tests += [_none_holds(group) for group in rule.unless]
        definition[rule.id] = {"all": [{"m": {"$and": tests}}]}
    return CompiledRuleset(definition, tuple(fields))


def _tests(conditions: Mapping[str, ConditionSpec]) -> list[dict[str, Any]]:
    return [_test(name, condition) for name, condition in conditions.items()]


def _all(tests: list[dict[str, Any]]) -> dict[str, Any]:
    return tests[0] if len(tests) == 1 else {"$and": tests}


def _none_holds(group: Mapping[str, ConditionSpec]) -> dict[str, Any]:
    """`not (a and b ...)` as `not a or not b ...`: durable has no negation of a test."""
    return _any([branch for name, c in group.items() for branch in _negated(name, c)])


def _any(branches: list[dict[str, Any]]) -> dict[str, Any]:
    return branches[0] if len(branches) == 1 else {"$or": branches}


def _negated(name: str, condition: ConditionSpec) -> list[dict[str, Any]]:
    """The alternatives under which one condition does not hold.

    Comparisons on an absent attribute are false in durable, `$neq` included, so an unknown
    value is its own alternative (`$nex`) wherever the condition needs a known one.
    """
    op = condition.operator
    if op is Operator.UNKNOWN:
        return [{"$ex": {name: 1}}]
    absent = {"$nex": {name: 1}}
    if op is Operator.NOT_EMPTY:
        return [absent, {"$lt": {name: 1}}]  # lists are encoded as their length
    if op is Operator.RANGE:
        outside = []
        if condition.at_least is not None:
            outside.append({"$lt": {name: condition.at_least}})
        if condition.at_most is not None:
            outside.append({"$gt": {name: condition.at_most}})
        return [absent, *outside]
    others = [{"$neq": {name: v}} for v in condition.values]
    return [absent, _all(others)]


def _test(name: str, condition: ConditionSpec) -> dict[str, Any]:
    op = condition.operator
    if op is Operator.UNKNOWN:
        return {"$nex": {name: 1}}
    if op is Operator.NOT_EMPTY:
        return {"$gte": {name: 1}}
    if op is Operator.RANGE:
        # Only validated numbers reach durable, so its numeric comparisons are safe here.
        bounds = []
        if condition.at_least is not None:
            bounds.append({"$gte": {name: condition.at_least}})
        if condition.at_most is not None:
            bounds.append({"$lte": {name: condition.at_most}})
        return _all(bounds)
    branches = [{name: v} for v in condition.values]
    # `$or` fires once per true branch; the engine reports each rule once regardless.
    return branches[0] if len(branches) == 1 else {"$or": branches}
