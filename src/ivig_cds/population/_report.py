"""`report.html`: the audit for people, from `summary.json` alone, in one self-contained page.

Charts are SVG drawn here and embedded as `data:` images, so the page fetches nothing and
shows the same offline, in a mail client or an archive. Tiers and facts are shown in words
(`ivig_cds._wording`); `summary.json` keeps their codes.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ivig_cds._vocabulary import Tier
from ivig_cds._wording import field_label, tier_label

_COLOURS: Mapping[str, str] = {
    Tier.SECOND_LINE: "#2e7d32",
    Tier.NOT_FIRST_LINE: "#9e9d24",
    Tier.INSUFFICIENT_EVIDENCE: "#ef6c00",
    Tier.NOT_RECOMMENDED: "#c62828",
    Tier.INDETERMINATE: "#6a1b9a",
    Tier.OUTSIDE_EVIDENCE: "#00838f",
    Tier.NOT_APPLICABLE: "#757575",
}
# What the summary counts besides tiers.
_OTHER_LABELS: Mapping[str, str] = {
    "undated": "No date: not judged",
    "not_evaluated": "Not evaluated",
}


def label(tier: str) -> str:
    """A tier code of the summary in words ("Outside the evidence")."""
    if tier in _OTHER_LABELS:
        return _OTHER_LABELS[tier]
    return tier_label(tier)


def bar_chart(
    title: str, bars: Sequence[tuple[str, int]], words: Mapping[str, str] | None = None
) -> str:
    """A horizontal bar chart as SVG text; tier-named bars take the tier's colour.

    `words` gives the label shown for a bar's key (its tier's label, say); else the key."""
    width, label_w, row_h = 640, 230, 26
    height = 40 + row_h * max(1, len(bars))
    top = max((n for _, n in bars), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="13">',
        f'<text x="0" y="18" font-weight="bold">{html.escape(title)}</text>',
    ]
    if not bars:
        parts.append('<text x="0" y="50">none</text>')
    for i, (key, n) in enumerate(bars):
        y = 30 + i * row_h
        bar = int((width - label_w - 70) * n / top)
        colour = _COLOURS.get(key, "#1565c0")
        shown = (words or {}).get(key, key)
        parts += [
            f'<text x="{label_w - 6}" y="{y + 16}" text-anchor="end">{html.escape(shown)}</text>',
            f'<rect x="{label_w}" y="{y + 4}" width="{max(bar, 1)}" height="{row_h - 8}" '
            f'fill="{colour}"/>',
            f'<text x="{label_w + bar + 6}" y="{y + 16}">{n:,}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def _image(svg: str, alt: str) -> str:
    data = base64.b64encode(svg.encode()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/svg+xml;base64,{data}">'


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_report(summary: dict[str, Any]) -> str:
    """The page for a `summary.json` dictionary."""
    ivig = summary["ivig"]
    tiers: dict[str, int] = {}
    for row in summary["by_phenotype_and_tier"]:
        tiers[row["tier"]] = tiers.get(row["tier"], 0) + row["patients"]
    doses = list(ivig["doses_by_tier"].items())
    dose_missing = [(m["fact"], m["count"]) for m in ivig["missing_data_when_indeterminate"]]
    missing = [(m["fact"], m["count"]) for m in summary["missing_data_when_indeterminate"]]
    tier_words = {code: label(code) for code, _ in (*doses, *tiers.items())}
    fact_words = {fact: field_label(fact) for fact, _ in (*dose_missing, *missing)}
    total_doses = sum(n for _, n in doses)
    flagged = ivig["doses_unsupported"]
    outside = ivig.get("doses_outside_evidence", 0)  # absent from summaries before 3.0.0
    files = [
        (
            f["name"],
            f["read"],
            f["used"],
            f["skipped"],
            f["errors"],
            "yes" if f["balanced"] else "NO",
        )
        for f in summary["files"]
    ]
    unsupported = " or ".join(
        f"<em>{html.escape(label(t).lower())}</em>"
        for t in (Tier.NOT_RECOMMENDED, Tier.INSUFFICIENT_EVIDENCE)
    )
    body = [
        "<h1>IVIG stewardship audit</h1>",
        f"<p>Tiers as of {html.escape(summary['as_of'])} "
        f"({html.escape(summary['as_of_source'])}); each IVIG dose judged as of its own date "
        "from the record as it stood then.</p>",
        f"<p>{_count(summary['patients'], 'patient')} in the export, "
        f"{summary['patients_with_ms']:,} with an MS-family diagnosis on record.</p>"
        if summary["patients"]
        else "<p>No patients in this export.</p>",
        "<h2>IVIG given, by what the sources said at the time of the dose</h2>",
    ]
    if not total_doses:
        body.append("<p>No IVIG doses in this export.</p>")
    else:
        body += [
            f"<p><strong>{flagged:,} of {total_doses:,} {_doses(total_doses)}</strong> "
            f"{'was' if flagged == 1 else 'were'} given where the sources say {unsupported}, "
            "or where the decision was <em>indeterminate</em> for lack of data.</p>",
            _review(outside),
            _image(
                bar_chart("IVIG doses by tier at the dose date", doses, tier_words),
                "IVIG doses by tier",
            ),
            _table(
                ["kind", "tier at the dose date", "doses"],
                [(d["kind"], label(d["tier"]), d["doses"]) for d in ivig["doses_by_kind_and_tier"]],
            ),
            _image(
                bar_chart(
                    "Missing facts behind indeterminate doses", dose_missing[:10], fact_words
                ),
                "missing facts behind indeterminate doses",
            ),
        ]
    body.append("<h2>Patients with MS, by tier today</h2>")
    if not summary["patients_with_ms"]:
        body.append("<p>No patient in this export has an MS-family diagnosis on record.</p>")
    else:
        body += [
            _image(
                bar_chart("Patients by tier", sorted(tiers.items()), tier_words),
                "patients by tier",
            ),
            _table(
                ["MS course", "tier", "patients"],
                [
                    (r["phenotype"], label(r["tier"]), r["patients"])
                    for r in summary["by_phenotype_and_tier"]
                ],
            ),
            "<h2>The missing facts that most often blocked a decision</h2>",
            _image(
                bar_chart("Missing facts (indeterminate patients)", missing[:10], fact_words),
                "missing facts",
            ),
        ]
    body += [
        "<h2>Input accounted for</h2>",
        "<p>Every line of every file is used, skipped (a type or resource the audit does not "
        "read) or an error (listed in <code>errors.ndjson</code>).</p>",
        _table(["file", "lines read", "used", "skipped", "errors", "balanced"], files),
    ]
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:.2em .6em;text-align:left}img{display:block;margin:1em 0}"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>IVIG stewardship audit</title><style>{style}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def _review(outside: int) -> str:
    """The doses the sources cannot judge (a child, a newer therapy): for review, apart."""
    whom = (
        "(<em>outside the evidence</em>: a child, or a patient on a disease-modifying therapy "
        "newer than the sources)"
    )
    if not outside:
        return (
            '<p class="review">No IVIG administration or order was given to a patient the '
            f"sources do not address {whom}.</p>"
        )
    return (
        f'<p class="review"><strong>{outside:,} {_doses(outside)} to review</strong> '
        f"{'was given to a patient' if outside == 1 else 'were given to patients'} the sources "
        f"do not address "
        f"{whom}. The sources cannot judge these either way, so they are not counted as "
        "unsupported.</p>"
    )


def _doses(n: int) -> str:
    return "IVIG administration or order" if n == 1 else "IVIG administrations and orders"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def write_report(path: Path, summary: dict[str, Any]) -> None:
    path.write_text(render_report(summary), encoding="utf-8")
