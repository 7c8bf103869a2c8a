"""Counting a comparison as it streams: the transition matrix, the changed items by group, errors.

Every compared item counts in the matrix of its unit (patients, doses): old tier x new tier.
A changed item also goes to its group, the (unit, old tier, new tier) it belongs to: the group
counts what changed in it (deciding rules, cautions, missing data, certainty) and keeps its
records on disk, one file per group in input order, so that a population of any size is
grouped without being held in memory.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ivig_cds._vocabulary import Tier
from ivig_cds.diff._answer import LISTS, Compared, ordered, public

GroupKey = tuple[str, str | None, str | None]
"""(unit, old tier, new tier); a tier None is no answer."""
UNITS: tuple[str, ...] = ("patient", "dose")
TIER_ORDER = tuple(t.value for t in Tier)
KEPT_ERRORS = 1_000  # error messages kept for the outputs; all are counted


@dataclass(frozen=True, slots=True)
class InputError:
    """An input that could not be compared: its file (and line), and why."""

    source: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}, line {self.line}"
        return f"{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "line": self.line, "error": self.message}


@dataclass
class Group:
    """The changed items of one transition, and what changed in them."""

    key: GroupKey
    count: int = 0
    aspects: Counter[str] = field(default_factory=Counter)
    rules: Counter[tuple[str | None, str | None]] = field(default_factory=Counter)
    certainty: Counter[tuple[str | None, str | None]] = field(default_factory=Counter)
    added: dict[str, Counter[str]] = field(default_factory=dict)
    removed: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def anchor(self) -> str:
        """The HTML id of the group's section."""
        unit, old, new = self.key
        return f"{unit}-{old or 'none'}-to-{new or 'none'}".replace("_", "-")

    def add(self, record: dict[str, Any]) -> None:
        self.count += 1
        self.aspects.update(record["changed"])
        old, new = record["old"], record["new"]
        self.rules[(old["primary_rule"], new["primary_rule"])] += 1
        if "certainty" in record["changed"]:
            self.certainty[(old.get("certainty"), new.get("certainty"))] += 1
        for name in LISTS:
            if name in record["added"]:
                self.added.setdefault(name, Counter()).update(record["added"][name])
            if name in record["removed"]:
                self.removed.setdefault(name, Counter()).update(record["removed"][name])

    def to_json(self) -> dict[str, Any]:
        unit, old, new = self.key
        return {
            "unit": unit,
            "old_tier": old,
            "new_tier": new,
            "count": self.count,
            "aspects": dict(sorted(self.aspects.items())),
            "rules": [
                {"old": a, "new": b, "count": n} for (a, b), n in _by_count(self.rules.items())
            ],
            "certainty": [
                {"old": a, "new": b, "count": n} for (a, b), n in _by_count(self.certainty.items())
            ],
            "added": {k: dict(_by_count(v.items())) for k, v in sorted(self.added.items())},
            "removed": {k: dict(_by_count(v.items())) for k, v in sorted(self.removed.items())},
        }


def _by_count(items: Any) -> list[Any]:
    return sorted(items, key=lambda item: (-item[1], str(item[0])))


class Tally:
    """The comparison so far. Use as a context manager: its group files live in `folder`."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self.matrix: Counter[GroupKey] = Counter()
        self.groups: dict[GroupKey, Group] = {}
        self.errors: list[InputError] = []
        self.error_count = 0
        self._files: dict[GroupKey, IO[str]] = {}
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Tally:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def add(self, item: Compared) -> None:
        """Count one compared item; keep its record if it changed."""
        change = item.change()
        if change is None:
            self.count(item.unit, *item.transition)
        else:
            self.add_changed(item.spool(change))

    def count(self, unit: str, old: str | None, new: str | None, n: int = 1) -> None:
        """Count items that did not change (no record kept)."""
        self.matrix[(unit, old, new)] += n

    def add_changed(self, line: str, *, counted: bool = False) -> None:
        """Keep one changed item, given as its spooled line (`Compared.spool`), and count it
        in the matrix unless it is `counted` already."""
        record = json.loads(line)
        key: GroupKey = (record["unit"], record["old"]["tier"], record["new"]["tier"])
        if not counted:
            self.matrix[key] += 1
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(key)
            path = self._folder / f"group-{len(self._files)}.ndjson"
            self._files[key] = self._stack.enter_context(path.open("w+", encoding="utf-8"))
        group.add(record)
        self._files[key].write(line + "\n")

    def add_error(self, error: InputError) -> None:
        self.error_count += 1
        if len(self.errors) < KEPT_ERRORS:
            self.errors.append(error)

    # --- reading -----------------------------------------------------------------------------

    def units(self) -> list[str]:
        """The units compared, patients first."""
        present = {unit for unit, _, _ in self.matrix}
        return [u for u in UNITS if u in present]

    def tiers(self, unit: str) -> list[str | None]:
        """Every tier seen on either side for a unit, in the vocabulary's order."""
        seen = {t for u, old, new in self.matrix if u == unit for t in (old, new)}
        return ordered(list(seen), TIER_ORDER)

    def ordered_groups(self, unit: str | None = None) -> list[Group]:
        """Groups with a tier change first (old tier, then new, in the vocabulary's order),
        then the groups whose tier stayed but something else changed."""
        rank = {t: i for i, t in enumerate(ordered([*TIER_ORDER, None], TIER_ORDER))}

        def key(group: Group) -> tuple[int, int, int, int]:
            u, old, new = group.key
            return (UNITS.index(u), old == new, rank.get(old, 99), rank.get(new, 99))

        chosen = [g for g in self.groups.values() if unit is None or g.key[0] == unit]
        return sorted(chosen, key=key)

    def records(self, group: Group, *, internal: bool = False) -> Iterator[dict[str, Any]]:
        """The group's changed items, in input order; `internal` keeps the patient context."""
        handle = self._files[group.key]
        handle.flush()
        handle.seek(0)
        try:
            for line in handle:
                record = json.loads(line)
                yield record if internal else public(record)
        finally:  # also when the reader stops early: the next item is appended at the end
            handle.seek(0, 2)

    def compared(self, unit: str) -> int:
        return sum(n for (u, _, _), n in self.matrix.items() if u == unit)

    def changed(self, unit: str) -> int:
        return sum(g.count for g in self.groups.values() if g.key[0] == unit)

    def tier_changed(self, unit: str) -> int:
        return sum(
            g.count for g in self.groups.values() if g.key[0] == unit and g.key[1] != g.key[2]
        )

    def summary(self) -> dict[str, Any]:
        """Counts per unit and the matrix cells (every item, changed or not)."""
        units: dict[str, Any] = {}
        for unit in self.units():
            aspects: Counter[str] = Counter()
            for group in self.ordered_groups(unit):
                aspects.update(group.aspects)
            units[unit] = {
                "compared": self.compared(unit),
                "changed": self.changed(unit),
                "tier_changed": self.tier_changed(unit),
                "aspects": {a: aspects[a] for a in sorted(aspects)},
                "matrix": [
                    {
                        "old_tier": old,
                        "new_tier": new,
                        "count": self.matrix[(unit, old, new)],
                        "changed": self.groups[(unit, old, new)].count
                        if (unit, old, new) in self.groups
                        else 0,
                    }
                    for old in self.tiers(unit)
                    for new in self.tiers(unit)
                    if self.matrix[(unit, old, new)]
                ],
            }
        return units
