"""The comparison as plain text, in a clinician's words: the matrix, then each group of changes.

Tiers read as their labels (`TIER_LABELS`), missing facts by their names in words, cautions and
findings by rule id and title (from the knowledge base that has them); rule ids stay, as every
surface shows them. Lines are yielded one at a time, so a population's changes stream out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ivig_cds import _wording
from ivig_cds._knowledge_base import KnowledgeBase
from ivig_cds.diff._sides import Side
from ivig_cds.diff._tally import Group, Tally

NO_ANSWER = "No answer"
UNIT_WORDS = {"patient": ("patient", "patients"), "dose": ("IVIG dose", "IVIG doses")}
ASPECT_WORDS = {
    "tier": "tier",
    "primary_rule": "deciding rule",
    "certainty": "certainty",
    "cautions": "cautions",
    "missing_data": "missing data",
    "secondary_rules": "other findings",
}
_LIST_WORDS = {
    "cautions": ("caution", "cautions"),
    "missing_data": ("missing fact", "missing facts"),
    "secondary_rules": ("other finding", "other findings"),
}


def tier_words(tier: str | None) -> str:
    """A tier's label, or "No answer"."""
    return NO_ANSWER if tier is None else _wording.tier_label(tier)


def count_words(n: int, unit: str) -> str:
    one, many = UNIT_WORDS.get(unit, (unit, unit + "s"))
    return f"{n:,} {one if n == 1 else many}"


def side_line(side: Side) -> str:
    where = "the shipped knowledge base" if side.dirs == (None, None) else str(side.kb.rules_dir)
    return (
        f"{side.role}: {side.kb.manifest.name} {side.kb.version}, content hash "
        f"{side.kb.content_hash} ({where})"
    )


def rule_words(rule_id: str | None, kb: KnowledgeBase) -> str:
    """A rule id with its title in the knowledge base that holds it: "K7 (title)"."""
    if rule_id is None:
        return "no rule"
    try:
        return f"{rule_id} ({kb.rule(rule_id).title})"
    except KeyError:
        return rule_id


def name_words(aspect: str, name: str) -> str:
    """One member of a list aspect: a missing fact in words, a rule as its id."""
    return _wording.field_label(name) if aspect == "missing_data" else name


def header(tally: Tally, old: Side, new: Side, *, same: bool) -> Iterator[str]:
    yield "Comparing two knowledge bases: which answers change, and why."
    yield f"  {side_line(old)}"
    yield f"  {side_line(new)}"
    if same:
        yield "  Both are the same knowledge base (same content hash): no answer can change."
    for unit in tally.units():
        yield ""
        yield (
            f"{count_words(tally.compared(unit), unit)} compared: "
            f"{tally.changed(unit):,} with a changed answer, {tally.tier_changed(unit):,} of "
            "them in tier."
        )
        aspects = tally.summary()[unit]["aspects"]
        if aspects:
            changed = ", ".join(
                f"{ASPECT_WORDS[a]} {aspects[a]:,}" for a in ASPECT_WORDS if a in aspects
            )
            yield f"  What changed, {UNIT_WORDS[unit][1]}: {changed}"
    if tally.error_count:
        yield ""
        yield f"{tally.error_count:,} inputs could not be compared: the comparison is incomplete."


def matrix(tally: Tally, unit: str) -> Iterator[str]:
    """Old tier (rows) x new tier (columns), numbered so the columns stay narrow."""
    tiers = tally.tiers(unit)
    if not tiers:
        return
    labels = [f"{i}  {tier_words(t)}" for i, t in enumerate(tiers, 1)]
    width = max(len(label) for label in labels)
    cells = [[tally.matrix[(unit, old, new)] for new in tiers] for old in tiers]
    cell = max(6, *(len(f"{n:,}") + 2 for row in cells for n in row))
    yield f"Old tier (rows) by new tier (columns), {UNIT_WORDS[unit][1]}:"
    yield " " * (width + 2) + "".join(f"{i:>{cell}}" for i in range(1, len(tiers) + 1))
    for label, row in zip(labels, cells, strict=True):
        shown = "".join(f"{(f'{n:,}' if n else '.'):>{cell}}" for n in row)
        yield f"  {label:<{width}}{shown}"
    yield "  (rows and columns are numbered alike; the diagonal kept its tier; '.' is none)"


def transition_words(group: Group) -> str:
    """A group's transition: "Insufficient evidence → Not recommended"."""
    _, old, new = group.key
    stays = " (tier unchanged)" if old == new else ""
    return f"{tier_words(old)} → {tier_words(new)}{stays}"


def group_heading(group: Group) -> str:
    return f"{transition_words(group)}: {count_words(group.count, group.key[0])}"


def group_counts(group: Group, old: Side, new: Side) -> Iterator[str]:
    """What changed within a group, most frequent first."""
    rules = "; ".join(
        f"{a or 'no rule'} → {b or 'no rule'} ({n:,})"
        if a == b
        else f"{rule_words(a, old.kb)} → {rule_words(b, new.kb)} ({n:,})"
        for (a, b), n in _top(group.rules)
    )
    yield f"  decided by: {rules}"
    if group.certainty:
        shown = "; ".join(
            f"{_certainty(a)} → {_certainty(b)} ({n:,})" for (a, b), n in _top(group.certainty)
        )
        yield f"  certainty: {shown}"
    for aspect, (_, many) in _LIST_WORDS.items():
        for verb, counts, kb in (
            ("added", group.added, new.kb),
            ("removed", group.removed, old.kb),
        ):
            if aspect in counts:
                names = "; ".join(
                    f"{rule_words(x, kb) if aspect != 'missing_data' else name_words(aspect, x)}"
                    f" ({n:,})"
                    for x, n in _top(counts[aspect])
                )
                yield f"  {many} {verb}: {names}"


def _top(counter: Mapping[Any, int]) -> list[tuple[Any, int]]:
    return sorted(counter.items(), key=lambda item: (-item[1], str(item[0])))


def _certainty(level: str | None) -> str:
    return "not graded" if level is None else _wording.certainty_phrase(level)


def where_words(record: Mapping[str, Any]) -> str:
    """Where a changed item is: file (and line), patient, and for a dose which one and when."""
    where = str(record["source"])
    if record.get("line") is not None:
        where += f", line {record['line']}"
    if record.get("patient"):
        where += f" (patient {record['patient']})"
    dose = record.get("dose")
    if dose:
        where += f", IVIG {dose['kind']} {dose['resource']} on {dose['date'] or 'no date'}"
    return where


def change_words(record: Mapping[str, Any]) -> str:
    """What changed for one item: the deciding rule of each side, then each other change."""
    old, new = record["old"], record["new"]
    parts = [f"decided by {old['primary_rule'] or 'no rule'} → {new['primary_rule'] or 'no rule'}"]
    if "certainty" in record["changed"]:
        parts.append(f"certainty {_certainty(old['certainty'])} → {_certainty(new['certainty'])}")
    for aspect, (one, many) in _LIST_WORDS.items():
        for verb in ("added", "removed"):
            names = record[verb].get(aspect)
            if names:
                words = ", ".join(name_words(aspect, n) for n in names)
                parts.append(f"{one if len(names) == 1 else many} {verb}: {words}")
    for side, answer in (("old", old), ("new", new)):
        if answer.get("note"):
            parts.append(f"{side}: {answer['note']}")
    return "; ".join(parts)


def item_line(record: Mapping[str, Any]) -> str:
    """One changed patient or dose on one line: where it is, and what changed."""
    return f"  - {where_words(record)}: {change_words(record)}"


def render_text(
    tally: Tally,
    old: Side,
    new: Side,
    *,
    same: bool,
    summary_only: bool = False,
    list_errors: bool = True,
) -> Iterator[str]:
    """The whole text report, line by line; `list_errors` False leaves the inputs that could
    not be compared to standard error (where the command always reports them)."""
    yield from header(tally, old, new, same=same)
    for unit in tally.units():
        yield ""
        yield from matrix(tally, unit)
    groups = tally.ordered_groups()
    if groups:
        yield ""
        yield "Changed answers, by transition (old → new):"
    for group in groups:
        yield ""
        yield group_heading(group)
        yield from group_counts(group, old, new)
        if not summary_only:
            for record in tally.records(group):
                yield item_line(record)
    if tally.errors and list_errors:
        yield ""
        yield "Inputs that could not be compared:"
        for error in tally.errors:
            yield f"  - {error}"
        if tally.error_count > len(tally.errors):
            yield f"  ... and {tally.error_count - len(tally.errors):,} more"
