"""The comparison as one self-contained HTML page, in the report's style, for a committee.

The page carries the report's stylesheet (read from `ivig_cds.report`) and every drawing
inline, runs no script and fetches nothing. Its matrix links each cell with changes to its
group; in each group, a changed patient shows both answers side by side, each with the
patient's path through that knowledge base's decision flow, drawn by the report's own
functions (`question_flow`, `patient_facts`, `patient_path`, `draw_flow`) as the patient page
draws it. Where no patient context is at hand (a Bulk Data export, whose audit keeps only its
judgements), each side is shown as text: tier, deciding rule, missing data.

The first `PATHS_PER_GROUP` items of a group are drawn; the next ones, up to `ROWS_PER_GROUP`,
are listed in a table; the JSON and NDJSON forms hold every item.
"""

# ruff: noqa: PLC0415  # the report's drawing loads only when a page is written

from __future__ import annotations

import importlib.resources
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from ivig_cds import _wording
from ivig_cds._errors import IvigCdsError
from ivig_cds._patient_input import parse_patient
from ivig_cds._recommendation import Recommendation
from ivig_cds._vocabulary import TIER_MEANINGS, Tier
from ivig_cds.diff import _text
from ivig_cds.diff._sides import Side
from ivig_cds.diff._tally import Group, Tally

PATHS_PER_GROUP = 20
ROWS_PER_GROUP = 500


@dataclass(frozen=True)
class SideView:
    """One side of a changed item, as the page shows it."""

    role: str
    version: str
    tier: str | None
    decided_by: str
    certainty: str | None
    cautions: list[tuple[str, str, bool]]  # rule id, title, added or removed on this side
    missing: list[str]
    note: str | None
    svg: Markup | None


@dataclass(frozen=True)
class ItemView:
    record: Mapping[str, Any]
    where: str
    sides: tuple[SideView, SideView]


def _environment() -> Environment:
    from ivig_cds.report.words import TIER_COLOURS

    env = Environment(
        loader=PackageLoader("ivig_cds.diff", "templates"),
        autoescape=select_autoescape(["html"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals.update(
        tier_word=_text.tier_words,
        tier_colour=lambda tier: TIER_COLOURS.get(Tier(tier), "#5f6368") if tier else "#5f6368",
        tier_meaning=lambda tier: TIER_MEANINGS[Tier(tier)] if tier else "",
        transition_words=_text.transition_words,
        count_words=_text.count_words,
        unit_words=_text.UNIT_WORDS,
        aspect_words=_text.ASPECT_WORDS,
    )
    return env


def _report_css() -> Markup:
    """The report's stylesheet, read from its package (trusted text, so not escaped)."""
    css = importlib.resources.files("ivig_cds.report").joinpath("templates", "style.css")
    return Markup(css.read_text(encoding="utf-8"))


def render_html(tally: Tally, old: Side, new: Side, *, same: bool, as_of: str | None = None) -> str:
    """The whole page."""
    groups = tally.ordered_groups()
    return (
        _environment()
        .get_template("diff.html")
        .render(
            css=_report_css(),
            old=old,
            new=new,
            same=same,
            as_of=as_of,
            tally=tally,
            summary=tally.summary(),
            groups=groups,
            matrices={unit: _matrix(tally, unit) for unit in tally.units()},
            items={g.key: list(_items(tally, g, old, new)) for g in groups},
            counts={g.key: list(_text.group_counts(g, old, new)) for g in groups},
            rows={g.key: _rows(tally, g) for g in groups},
            paths_per_group=PATHS_PER_GROUP,
            rows_per_group=ROWS_PER_GROUP,
            side_line=_text.side_line,
        )
    )


def _matrix(tally: Tally, unit: str) -> dict[str, Any]:
    tiers = tally.tiers(unit)
    cells = []
    for old in tiers:
        row = []
        for new in tiers:
            group = tally.groups.get((unit, old, new))
            row.append(
                {
                    "count": tally.matrix[(unit, old, new)],
                    "changed": group.count if group else 0,
                    "anchor": group.anchor if group else None,
                }
            )
        cells.append((old, row))
    return {"tiers": tiers, "rows": cells}


def _items(tally: Tally, group: Group, old: Side, new: Side) -> Iterator[ItemView]:
    for n, record in enumerate(tally.records(group, internal=True)):
        if n >= PATHS_PER_GROUP:
            return
        prefix = f"{group.anchor}-{n}"
        sides = (
            _side(record, "old", old, prefix),
            _side(record, "new", new, prefix),
        )
        yield ItemView(record, _text.where_words(record), sides)


def _rows(tally: Tally, group: Group) -> list[str]:
    rows = []
    for n, record in enumerate(tally.records(group)):
        if n < PATHS_PER_GROUP:
            continue
        if n >= ROWS_PER_GROUP:
            break
        rows.append(f"{_text.where_words(record)}: {_text.change_words(record)}")
    return rows


def _side(record: Mapping[str, Any], role: str, side: Side, prefix: str) -> SideView:
    answer = record[role]
    marked = set(record["added" if role == "new" else "removed"].get("cautions", ()))
    recommendation, svg = _drawn(record.get("context"), side, f"{prefix}-{role}")
    if recommendation is not None:
        decided = _wording.decided_by(recommendation)
        level = recommendation.certainty.level if recommendation.certainty else None
        certainty = _wording.certainty_phrase(level) if level else None
    else:
        decided = _text.rule_words(answer["primary_rule"], side.kb)
        certainty = (
            _wording.certainty_phrase(answer["certainty"]) if answer.get("certainty") else None
        )
    cautions = [
        (rule_id, _title(side, rule_id), rule_id in marked)
        for rule_id in answer.get("cautions", ())
    ]
    return SideView(
        role=role,
        version=side.label,
        tier=answer["tier"],
        decided_by=decided,
        certainty=certainty,
        cautions=cautions,
        missing=[_wording.missing_question(name) for name in answer.get("missing_data", ())],
        note=answer.get("note"),
        svg=svg,
    )


def _title(side: Side, rule_id: str) -> str:
    try:
        return side.kb.rule(rule_id).title
    except KeyError:
        return ""


def _drawn(
    context: Mapping[str, Any] | None, side: Side, element_id: str
) -> tuple[Recommendation | None, Markup | None]:
    """This side's recommendation for the patient, and their path through its flow."""
    if context is None:
        return None, None
    from ivig_cds.report.flow import patient_facts, patient_path, question_flow
    from ivig_cds.report.svg import draw_flow

    try:
        patient = parse_patient(context)
        result = side.evaluator.evaluate(patient)
    except IvigCdsError:  # no answer from this side: shown as text
        return None, None
    flow = question_flow(side.kb, result.question.intended_use)
    try:
        path = patient_path(flow, patient_facts(patient, result.question), result.primary_rule)
    except ValueError:  # the deciding rule is not a step of this question's flow
        return result, None
    svg = draw_flow(flow, path=path, element_id=element_id)
    return result, Markup(svg)  # ElementTree escaped its text
