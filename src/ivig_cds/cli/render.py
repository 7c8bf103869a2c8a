"""Present a `Recommendation` to people and programs: rich text, Markdown and JSON.

Renderers only reword what the result holds; they add no clinical content of their own (no
dose, no advice beyond the rules' texts), so the knowledge base stays the one source of truth.
Text is built from `rich.text.Text` pieces, never from markup strings, because rule and
evidence texts may contain square brackets that rich would read as markup.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group
from rich.text import Text

from ivig_cds._recommendation import Caution, Citation, Finding, Recommendation
from ivig_cds._vocabulary import TIER_LABELS, TIER_MEANINGS, Tier
from ivig_cds._wording import (
    MISSING_HEADING,
    RECORD_HEADING,
    cautions_by_display,
    certainty_phrase,
    decided_by,
    design_phrase,
    missing_question,
    question_phrase,
    secondary_heading,
    unused_line,
)
from ivig_cds.cli.layout import Hanging
from ivig_cds.cli.patient_files import PatientFileError

__all__ = [
    "DISCLAIMER",
    "TIER_STYLES",
    "cite",
    "dumps",
    "error_json",
    "recommendation_json",
    "render_json",
    "render_json_list",
    "render_markdown",
    "render_text",
    "result_json",
]

# What the FHIR adapter said about a record, under plain headings (`_wording.record_sections`).
RecordSections = Sequence[tuple[str, Sequence[str]]]

TIER_STYLES: Mapping[Tier, str] = {
    Tier.SECOND_LINE: "bold green",
    Tier.NOT_FIRST_LINE: "bold yellow",
    Tier.INSUFFICIENT_EVIDENCE: "bold magenta",
    Tier.NOT_RECOMMENDED: "bold red",
    Tier.INDETERMINATE: "bold blue",
    Tier.OUTSIDE_EVIDENCE: "bold cyan",
    Tier.NOT_APPLICABLE: "bold",
}

DISCLAIMER = (
    "Decision support only: it summarises published evidence and does not replace clinical "
    "judgement. No IVIG dose is recommended."
)


def _question(rec: Recommendation) -> str:
    how = (
        "inferred: the input did not state the question"
        if rec.question.inferred
        else "as stated in the input"
    )
    return f"{question_phrase(rec.question.intended_use)} ({how})"


def _certainty(rec: Recommendation) -> str | None:
    if rec.certainty is None:
        return None
    return f"{certainty_phrase(rec.certainty.level)}: {rec.certainty.reason}"


def cite(citation: Citation) -> str:
    """One line for a reference list: authors, title, journal and year, design and size."""
    authors = list(citation.authors[:3])
    if len(citation.authors) > 3:
        authors.append("et al")
    parts = [", ".join(authors)] if authors else []
    title = citation.title
    parts.append(title if title.endswith(("?", "!")) else title.rstrip("."))
    where = " ".join(str(p) for p in (citation.journal, citation.year) if p is not None)
    if where:
        parts.append(where)
    design = design_phrase(citation.design)
    design = design[:1].upper() + design[1:]
    parts.append(f"{design}, n={citation.n}" if citation.n is not None else design)
    return " ".join(p if p.endswith(("?", "!")) else f"{p}." for p in parts)


def _link(citation: Citation) -> str:
    """The PubMed address, or the words a clinician reads for a work without a PMID."""
    return citation.url or citation.reference


def _named(citation: Citation) -> str:
    """A caution's source: its PubMed address, or its title when it has no PMID."""
    return citation.url or f"{citation.title} ({citation.reference})"


def _secondary(rec: Recommendation) -> list[Finding]:
    return [f for f in rec.findings if f.role == "secondary"]


def _finding_tier(finding: Finding) -> str:
    return f"{TIER_LABELS[finding.tier]}, for {question_phrase(finding.question)}"


# --- text ------------------------------------------------------------------------------------


def render_text(
    rec: Recommendation, *, source: str | None = None, record: RecordSections = ()
) -> Group:
    """A rich renderable for a person at a terminal (plain when the console has no colour).

    Args:
        rec: the result.
        source: the file it came from, shown as a heading when several are shown.
        record: for a FHIR record, what the adapter said about reading it.

    At a terminal each line wraps under its own indentation; in soft-wrap mode (a pipe) each
    stays whole.
    """
    parts: list[Text] = []
    if source is not None:
        parts.append(Text(f"== {source} ==", style="bold"))
    headline = Text()
    headline.append(TIER_LABELS[rec.tier].upper(), style=TIER_STYLES[rec.tier])
    headline.append("  ")
    headline.append(rec.summary)
    parts.append(headline)
    parts.append(Text(f"  {TIER_MEANINGS[rec.tier]}", style="italic"))
    if rec.patient_id is not None:
        parts.append(_field("Patient", rec.patient_id))
    parts.append(_field("Question", _question(rec)))
    parts.append(_field("Decided by", decided_by(rec)))
    certainty = _certainty(rec)
    if certainty is not None:
        parts.append(_field("Certainty", certainty))
    first, cautions, standing = cautions_by_display(rec)
    for caution in first:  # IVIG already being given: read before anything else
        parts += [Text(""), *_caution_text(caution)]
    parts += [Text(""), Text("Rationale", style="bold"), Text(f"  {rec.rationale}")]
    if rec.citations:
        parts += [Text(""), Text("Evidence", style="bold")]
        parts += [_cited(c) for c in rec.citations]
    if cautions:
        parts += [Text(""), Text("Cautions", style="bold")]
        parts += [line for caution in cautions for line in _caution_text(caution)]
    for caution in standing:  # a statement about this tool, apart from the cautions
        parts += [Text(""), Text(f"{caution.title} ({caution.rule_id})", style="bold")]
        parts += [Text(f"  {caution.text}")]
        parts += [Text(f"  {note}", style="italic") for note in caution.notes]
    if rec.missing_data:
        parts += [Text(""), Text(MISSING_HEADING, style="bold")]
        parts += [Text(f"  - {missing_question(f)}") for f in rec.missing_data]
    parts += _record_text(record)
    unused = unused_line(rec)
    if unused is not None:
        parts += [Text(""), Text(unused, style="italic")]
    secondary = _secondary(rec)
    if secondary:
        parts += [Text(""), Text(secondary_heading(rec), style="bold")]
        for finding in secondary:
            line = Text(f"  - {finding.rule_id} ")
            line.append(TIER_LABELS[finding.tier], style=TIER_STYLES[finding.tier])
            line.append(f", for {question_phrase(finding.question)}: {finding.summary}")
            parts.append(line)
    kb = rec.knowledge_base
    parts += [
        Text(""),
        Text(f"Knowledge base {kb.name} {kb.version} ({kb.content_hash})", style="dim"),
        Text(DISCLAIMER, style="dim"),
    ]
    return Group(*(Hanging(part) for part in parts))


def _record_text(record: RecordSections) -> list[Text]:
    """How a FHIR record was read, under its headings; nothing for a patient file."""
    if not record:
        return []
    lines = [Text(""), Text(RECORD_HEADING, style="bold")]
    for heading, items in record:
        lines += [Text(f"  {heading}:"), *(Text(f"    - {item}") for item in items)]
    return lines


def _caution_text(caution: Caution) -> list[Text]:
    line = Text("  ")
    line.append("! ", style="bold yellow")
    line.append(f"{caution.rule_id} {caution.title}: ", style="bold")
    line.append(caution.text)
    lines = [line]
    lines += [Text(f"      {note}", style="italic") for note in caution.notes]
    if not caution.citations:  # a note about the knowledge base, or clinical judgement
        return lines
    sources = Text("      ")
    sources.append("Sources: ", style="dim")
    for i, citation in enumerate(caution.citations):
        if i:
            sources.append(", ", style="dim")
        sources.append(_named(citation), style="cyan" if citation.url else "dim")
    return [*lines, sources]


def _field(name: str, value: str) -> Text:
    text = Text()
    text.append(f"{name}: ", style="bold")
    text.append(value)
    return text


def _cited(citation: Citation, indent: str = "  ") -> Text:
    text = Text(f"{indent}- {cite(citation)} ")
    text.append(_link(citation), style="cyan" if citation.url else "dim")
    return text


# --- markdown --------------------------------------------------------------------------------


def render_markdown(
    rec: Recommendation, *, source: str | None = None, record: RecordSections = ()
) -> str:
    """A report a clinician can paste into a note (`record`: see `render_text`)."""
    who = f": patient {rec.patient_id}" if rec.patient_id is not None else ""
    lines = [f"## IVIG in multiple sclerosis{who}", ""]
    if source is not None:
        lines += [f"- **Source file:** `{source}`"]
    lines += [
        f"- **Question:** {_question(rec)}",
        f"- **Result:** **{TIER_LABELS[rec.tier]}.** {TIER_MEANINGS[rec.tier]}",
        f"- **Summary:** {rec.summary}",
    ]
    certainty = _certainty(rec)
    if certainty is not None:
        lines.append(f"- **Certainty of evidence:** {certainty}")
    first, cautions, standing = cautions_by_display(rec)
    lines.append(f"- **Decided by:** {decided_by(rec)}")
    for caution in first:  # IVIG already being given: read before anything else
        lines += ["", f"### {caution.title} ({caution.rule_id})", "", caution.text]
        lines += [f"- {note}" for note in caution.notes]
        lines += [f"\nSources: {_md_sources(caution)}."] if caution.citations else []
    lines += ["", "### Rationale", "", rec.rationale]
    if rec.citations:
        lines += ["", "### Evidence", ""]
        lines += [f"{i}. {_md_cite(c)}" for i, c in enumerate(rec.citations, 1)]
    if cautions:
        lines += ["", "### Cautions", ""]
        lines += [line for caution in cautions for line in _md_caution(caution)]
    for caution in standing:  # a statement about this tool, apart from the cautions
        lines += ["", f"### {caution.title} ({caution.rule_id})", "", caution.text]
        lines += [f"- {note}" for note in caution.notes]
    if rec.missing_data:
        lines += ["", f"### {MISSING_HEADING}", ""]
        lines += [f"- {missing_question(f)}" for f in rec.missing_data]
    if record:
        lines += ["", f"### {RECORD_HEADING}"]
        for heading, items in record:
            lines += ["", f"**{heading}:**", "", *(f"- {item}" for item in items)]
    unused = unused_line(rec)
    if unused is not None:
        lines += ["", f"_{unused}._"]
    secondary = _secondary(rec)
    if secondary:
        lines += ["", f"### {secondary_heading(rec)}", ""]
        lines += [f"- {f.rule_id} ({_finding_tier(f)}): {f.summary}" for f in secondary]
    kb = rec.knowledge_base
    lines += [
        "",
        f"_Knowledge base {kb.name} {kb.version} ({kb.content_hash}). {DISCLAIMER}_",
        "",
    ]
    return "\n".join(lines)


def _md_sources(caution: Caution) -> str:
    return "; ".join(
        _md_ref(c) if c.url else f"{c.title} ({c.reference})" for c in caution.citations
    )


def _md_caution(caution: Caution) -> list[str]:
    refs = _md_sources(caution)
    sources = f" Sources: {refs}." if refs else ""
    line = f"- **{caution.title}** ({caution.rule_id}). {caution.text}{sources}"
    return [line, *(f"  - {note}" for note in caution.notes)]


def _md_cite(citation: Citation) -> str:
    return f"{cite(citation)} {_md_ref(citation)}"


def _md_ref(citation: Citation) -> str:
    if citation.url and citation.pmid:
        return f"[PMID {citation.pmid}]({citation.url})"
    return citation.reference


# --- json ------------------------------------------------------------------------------------


def recommendation_json(rec: Recommendation) -> dict[str, Any]:
    """The recommendation as JSON-ready data (enums as their string values)."""
    return rec.model_dump(mode="json")


def error_json(error: PatientFileError) -> dict[str, Any]:
    return {
        "source": error.source,
        "error": error.summary,
        "problems": [
            {"message": p.message, "line": p.line, "column": p.column} for p in error.problems
        ],
    }


def render_json(rec: Recommendation) -> str:
    """One recommendation as a JSON document."""
    return dumps(recommendation_json(rec))


def result_json(
    source: str, rec: Recommendation, record: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """`{source, recommendation}`, and `record` beside them for a FHIR record: how it was read
    (`{"notes": [...], "conflicts": [...], "unmapped": [...]}`, and `site_codes` with the
    site code maps in force)."""
    document: dict[str, Any] = {"source": source, "recommendation": recommendation_json(rec)}
    if record is not None:
        document["record"] = {
            key: list(items) if isinstance(items, list | tuple) else items
            for key, items in record.items()
        }
    return document


def render_json_list(
    results: Sequence[tuple[str, Recommendation | PatientFileError]],
    records: Sequence[Mapping[str, Any] | None] | None = None,
) -> str:
    """Several files' outcomes, in order: `{source, recommendation}` (with `record`, from
    `records`, for FHIR records) or `{source, error, ...}`."""
    readings = records if records is not None else [None] * len(results)
    return dumps(
        [
            error_json(outcome)
            if isinstance(outcome, PatientFileError)
            else result_json(source, outcome, record)
            for (source, outcome), record in zip(results, readings, strict=True)
        ]
    )


def dumps(data: object) -> str:
    """Stable JSON: two-space indent, UTF-8 kept as is, one trailing newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
