"""Draw a decision flow as SVG, in code, so the picture is generated from the rules.

Layout: the steps run down the left column in precedence order (a step's `unless` groups
under its conditions, each starting "unless" or "or"); "yes" leads right to the
conclusion the step reaches (tier as a coloured band *and* its word, rule, certainty), "no"
leads down to the next step. Text is wrapped by character count, with widths chosen for the
widest common sans-serif fonts, so boxes never clip. A patient's path is marked with classes
(`on-path`, `off-path`) and `data-rule` attributes, which the stylesheet and the browser tests
read.
"""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

from ivig_cds.report.flow import Flow, PatientPath, Step
from ivig_cds.report.words import QUESTION_WORDS, TIER_COLOURS, TIER_WORDS, certainty_words

WIDTH = 940
DEC_X, DEC_W = 16, 470
OUT_X, OUT_W = 572, 352
DEC_CHARS, OUT_CHARS = 64, 44
LINE = 18
PAD = 12
GAP = 34  # vertical room for a "no" arrow
NO_X = DEC_X + 36  # where "no" arrows run down
YES_DY = 30  # where the "yes" arrow leaves a step, from its top
_CONJUNCTIONS = frozenset({"and", "unless", "or"})  # drawn in bold at a clause's start


@dataclass(frozen=True, slots=True)
class _Row:
    step: Step
    ask_lines: tuple[tuple[str, bool], ...]  # (text, starts a new condition)
    title_lines: tuple[str, ...]
    y: float
    height: float


def draw_flow(
    flow: Flow,
    *,
    path: PatientPath | None = None,
    link: Callable[[str], str] | None = None,
    element_id: str | None = None,
) -> str:
    """The flow as an inline `<svg>` element (a string), titled and described for readers.

    Args:
        flow: the question's steps.
        path: a patient's path to highlight, or None for the plain flow.
        link: rule id -> URL of its page; None draws no links (a self-contained page).
        element_id: prefix for the ids of the title and description elements.
    """
    prefix = element_id or f"flow-{flow.question.value}"
    rows = _layout(flow)
    end_y = (rows[-1].y + rows[-1].height + GAP) if rows else 90.0
    height = end_y + 64
    on_path = set(path.on_path) if path is not None else set()
    primary = path.primary_rule if path is not None else None

    svg = ET.Element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "class": "flow" + (" with-path" if path is not None else ""),
            "viewBox": f"0 0 {WIDTH} {height:.0f}",
            "width": str(WIDTH),
            "height": f"{height:.0f}",
            "role": "img" if link is None else "group",
            "aria-labelledby": f"{prefix}-title {prefix}-desc",
            "data-question": flow.question.value,
        },
    )
    ET.SubElement(svg, "title", {"id": f"{prefix}-title"}).text = (
        f"Decision flow: {QUESTION_WORDS[flow.question].lower()}"
        + (f", with this patient's path to rule {primary}" if primary else "")
    )
    ET.SubElement(svg, "desc", {"id": f"{prefix}-desc"}).text = describe(flow, path)
    _arrowheads(svg, prefix)

    start = ET.SubElement(svg, "g", {"class": "node start" + _path_class(path, True)})
    _rect(start, (DEC_X, 16, DEC_W, 44), "start-box", radius=22)
    _text(
        start,
        DEC_X + DEC_W / 2,
        43,
        f"Question: {QUESTION_WORDS[flow.question]}",
        "start-text",
        anchor="middle",
    )
    first_y = rows[0].y if rows else end_y
    _edge(
        svg,
        [(NO_X, 60), (NO_X, first_y)],
        "edge start-edge" + _path_class(path, True),
        prefix=prefix,
    )

    for index, row in enumerate(rows):
        rule = row.step.rule
        here = rule.id in on_path
        _decision(svg, row, path, here, rule.id == primary)
        _outcome(svg, row, path, rule.id == primary, link)
        yes_y = row.y + YES_DY
        _edge(
            svg,
            [(DEC_X + DEC_W, yes_y), (OUT_X, yes_y)],
            "edge yes" + _path_class(path, rule.id == primary),
            label=("yes", (DEC_X + DEC_W + OUT_X) / 2, yes_y - 6),
            rule=rule.id,
            prefix=prefix,
        )
        next_y = rows[index + 1].y if index + 1 < len(rows) else end_y
        passed = here and rule.id != primary
        _edge(
            svg,
            [(NO_X, row.y + row.height), (NO_X, next_y)],
            "edge no" + _path_class(path, passed),
            label=("no", NO_X + 10, row.y + row.height + GAP / 2 + 4),
            rule=rule.id,
            prefix=prefix,
        )

    end = ET.SubElement(svg, "g", {"class": "node end" + _path_class(path, False)})
    _rect(end, (DEC_X, end_y, DEC_W, 44), "end-box", radius=8)
    _text(
        end,
        DEC_X + PAD,
        end_y + 27,
        "None of these applies: no result (a gap in the knowledge base)",
        "end-text",
    )
    return ET.tostring(svg, encoding="unicode", short_empty_elements=True)


def describe(flow: Flow, path: PatientPath | None = None) -> str:
    """The whole flow in sentences: the diagram's text alternative."""
    parts = [
        f"Decision flow for the question: {QUESTION_WORDS[flow.question].lower()}. "
        "The steps are checked in order; the first whose conditions all hold sets the tier."
    ]
    for step in flow.steps:
        rule = step.rule
        asks = " and ".join(a.words for a in step.asks) or "always"
        unless = "; or ".join(" and ".join(a.words for a in group) for group in step.unless)
        if unless:
            asks += f", unless {unless}"
        certainty = certainty_words(rule.certainty.level)
        parts.append(
            f"Step {step.number}: if {asks}, then rule {rule.id}, {rule.title}: "
            f"{TIER_WORDS[rule.tier]} (certainty {certainty})."
        )
    parts.append("If no step applies, there is no result: a gap in the knowledge base.")
    if path is not None:
        parts.append(
            f"This patient passed through {len(path.on_path)} step(s) and reached rule "
            f"{path.primary_rule}."
        )
    return " ".join(parts)


def _layout(flow: Flow) -> list[_Row]:
    rows: list[_Row] = []
    y = 60.0 + GAP
    for step in flow.steps:
        clauses = [ask.words if i == 0 else f"and {ask.words}" for i, ask in enumerate(step.asks)]
        for g, group in enumerate(step.unless):
            words = " and ".join(ask.words for ask in group)
            clauses.append(f"{'unless' if g == 0 else 'or'} {words}")
        ask_lines: list[tuple[str, bool]] = []
        for text in clauses:
            wrapped = textwrap.wrap(text, DEC_CHARS, break_on_hyphens=False) or [text]
            ask_lines += [(line, j == 0) for j, line in enumerate(wrapped)]
        if not step.asks:
            ask_lines.insert(0, ("always (no condition)", True))
        title_lines = tuple(
            textwrap.wrap(f"{step.rule.id} · {step.rule.title}", OUT_CHARS, break_on_hyphens=False)
        )
        dec_h = PAD + 16 + LINE * len(ask_lines) + PAD
        out_h = PAD + 20 + LINE * len(title_lines) + LINE + PAD
        height = float(max(dec_h, out_h, 2 * YES_DY))
        rows.append(_Row(step, tuple(ask_lines), title_lines, y, height))
        y += height + GAP
    return rows


def _decision(
    svg: ET.Element, row: _Row, path: PatientPath | None, here: bool, decides: bool
) -> None:
    rule = row.step.rule
    classes = "node decision" + _path_class(path, here)
    group = ET.SubElement(svg, "g", {"class": classes, "data-rule": rule.id})
    ET.SubElement(group, "title").text = f"Step {row.step.number}: does rule {rule.id} apply?"
    _rect(group, (DEC_X, row.y, DEC_W, row.height), "decision-box", radius=6)
    badge = f"STEP {row.step.number}"
    if path is not None and here:
        badge += " · YES, APPLIES" if decides else " · NO"
    _text(group, DEC_X + PAD, row.y + PAD + 10, badge, "step-label")
    y = row.y + PAD + 16 + 13
    for text, new in row.ask_lines:
        conj = text.split(" ", 1)[0] if new else ""
        joined = conj in _CONJUNCTIONS and " " in text
        line = _text(group, DEC_X + PAD, y, "" if joined else text, "ask")
        if joined:
            ET.SubElement(line, "tspan", {"class": "conj"}).text = conj
            ET.SubElement(line, "tspan").text = text[len(conj) :]
        y += LINE


def _outcome(
    svg: ET.Element,
    row: _Row,
    path: PatientPath | None,
    decides: bool,
    link: Callable[[str], str] | None,
) -> None:
    rule = row.step.rule
    parent: ET.Element = svg
    if link is not None:
        parent = ET.SubElement(svg, "a", {"href": link(rule.id), "class": "rule-link"})
    classes = f"node outcome tier-{rule.tier.value}" + _path_class(path, decides)
    group = ET.SubElement(parent, "g", {"class": classes, "data-rule": rule.id})
    certainty = certainty_words(rule.certainty.level)
    ET.SubElement(
        group, "title"
    ).text = f"Rule {rule.id}: {rule.title}. {TIER_WORDS[rule.tier]}; certainty {certainty}."
    _rect(group, (OUT_X, row.y, OUT_W, row.height), "outcome-box", radius=6)
    band = ET.SubElement(
        group,
        "rect",
        {
            "x": str(OUT_X),
            "y": f"{row.y:.0f}",
            "width": "8",
            "height": f"{row.height:.0f}",
            "fill": TIER_COLOURS[rule.tier],
            "class": "tier-band",
        },
    )
    band.set("rx", "3")
    x = OUT_X + 8 + PAD
    tier = _text(group, x, row.y + PAD + 13, TIER_WORDS[rule.tier], "tier-word")
    tier.set("fill", TIER_COLOURS[rule.tier])
    y = row.y + PAD + 20 + 14
    for line in row.title_lines:
        _text(group, x, y, line, "rule-title")
        y += LINE
    _text(group, x, y, f"Certainty: {certainty}", "certainty")


def _path_class(path: PatientPath | None, on: bool) -> str:
    if path is None:
        return ""
    return " on-path" if on else " off-path"


def _rect(
    parent: ET.Element, box: tuple[float, float, float, float], cls: str, *, radius: int
) -> None:
    x, y, w, h = box
    ET.SubElement(
        parent,
        "rect",
        {
            "x": f"{x:.0f}",
            "y": f"{y:.0f}",
            "width": f"{w:.0f}",
            "height": f"{h:.0f}",
            "rx": str(radius),
            "class": cls,
        },
    )


def _text(
    parent: ET.Element, x: float, y: float, text: str, cls: str, *, anchor: str = "start"
) -> ET.Element:
    element = ET.SubElement(
        parent, "text", {"x": f"{x:.0f}", "y": f"{y:.0f}", "class": cls, "text-anchor": anchor}
    )
    element.text = text
    return element


def _arrowheads(svg: ET.Element, prefix: str) -> None:
    defs = ET.SubElement(svg, "defs")
    for name in ("arrow", "arrow-on"):
        marker = ET.SubElement(
            defs,
            "marker",
            {
                "id": f"{prefix}-{name}",
                "viewBox": "0 0 10 10",
                "refX": "9",
                "refY": "5",
                "markerWidth": "9",
                "markerHeight": "9",
                "markerUnits": "userSpaceOnUse",
                "orient": "auto-start-reverse",
            },
        )
        ET.SubElement(marker, "path", {"d": "M 0 0 L 10 5 L 0 10 z", "class": f"head {name}"})


def _edge(
    svg: ET.Element,
    points: list[tuple[float, float]],
    cls: str,
    *,
    label: tuple[str, float, float] | None = None,
    rule: str | None = None,
    prefix: str,
) -> None:
    attributes = {"class": cls}
    if rule is not None:
        attributes["data-rule"] = rule
    group = ET.SubElement(svg, "g", attributes)
    d = " ".join(f"{'M' if i == 0 else 'L'} {x:.0f} {y:.0f}" for i, (x, y) in enumerate(points))
    marker = "arrow-on" if "on-path" in cls else "arrow"
    ET.SubElement(
        group,
        "path",
        {"d": d, "class": "edge-line", "marker-end": f"url(#{prefix}-{marker})"},
    )
    if label is not None:
        text, x, y = label
        _text(group, x, y, text, "edge-label", anchor="middle" if text == "yes" else "start")
