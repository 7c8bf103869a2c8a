"""`ivig-cds rules` and `ivig-cds evidence`: list the knowledge base, or show one entry in full."""

# ruff: noqa: PLC0415
# (the renderer loads only when a rule is shown)

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ivig_cds._knowledge_base import KnowledgeBase
from ivig_cds._recommendation import PUBMED, Citation
from ivig_cds._record_windows import RECORD_WINDOWS_NAME, RecordWindows, load_record_windows
from ivig_cds._rules import CautionRule, ConclusionRule, ConditionSpec
from ivig_cds.cli import common
from ivig_cds.cli.common import EvidenceDir, RulesDir
from ivig_cds.cli.layout import Column

rules_app = typer.Typer(
    help="List the rules of the knowledge base, or show one rule in full.\n\n"
    "Conclusions (C..) set the tier for a clinical situation; cautions (K..) are attached to "
    "results. Without a subcommand, lists them all.",
    no_args_is_help=False,
    invoke_without_command=True,
)
evidence_app = typer.Typer(
    help="List the evidence registry (the published works the rules cite), or show one entry "
    "in full with the rules that cite it. Without a subcommand, lists them all.",
    no_args_is_help=False,
    invoke_without_command=True,
)


class ListFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


ListFormatOption = Annotated[
    ListFormat | None,
    typer.Option(
        "--format",
        "-f",
        metavar="FORMAT",
        parser=common.choice(ListFormat),
        autocompletion=common.choices(ListFormat),
        help="table (tab-separated when piped) or json (a list of objects). Default: table.",
        show_default=False,
    ),
]


@dataclass(frozen=True, slots=True)
class _GroupOptions:
    """What `ivig-cds rules --rules DIR list` gave the group, for its subcommands."""

    rules: Path | None
    evidence: Path | None
    output_format: ListFormat | None


@rules_app.callback()
def _rules_group(
    ctx: typer.Context,
    rules: RulesDir = None,
    evidence: EvidenceDir = None,
    output_format: ListFormatOption = None,
) -> None:
    ctx.obj = _GroupOptions(rules, evidence, output_format)
    if ctx.invoked_subcommand is None:
        _list_rules(common.load(rules, evidence), output_format)


def _dirs(
    ctx: typer.Context, rules: Path | None, evidence: Path | None
) -> tuple[Path | None, Path | None]:
    group = ctx.obj if isinstance(ctx.obj, _GroupOptions) else _GroupOptions(None, None, None)
    return rules or group.rules, evidence or group.evidence


def _format(ctx: typer.Context, output_format: ListFormat | None) -> ListFormat | None:
    return output_format or (ctx.obj.output_format if isinstance(ctx.obj, _GroupOptions) else None)


@rules_app.command("list", cls=common.PlainHelpCommand)
def rules_list(
    ctx: typer.Context,
    rules: RulesDir = None,
    evidence: EvidenceDir = None,
    output_format: ListFormatOption = None,
) -> None:
    """List every rule: id, kind, tier, question(s), precedence, certainty and title."""
    _list_rules(common.load(*_dirs(ctx, rules, evidence)), _format(ctx, output_format))


def _list_rules(kb: KnowledgeBase, output_format: ListFormat | None) -> None:
    items: list[dict[str, object]] = [
        {
            "id": r.id,
            "kind": "conclusion",
            "tier": r.tier.value,
            "questions": [q.value for q in r.questions],
            "precedence": r.precedence,
            "certainty": r.certainty.level.value if r.certainty else None,
            "title": r.title,
        }
        for r in kb.conclusions
    ]
    items += [
        {
            "id": r.id,
            "kind": "caution",
            "tier": None,
            "questions": [],
            "precedence": None,
            "certainty": None,
            "title": r.title,
        }
        for r in kb.cautions
    ]
    _print_listing(items, output_format, _RULE_COLUMNS)


# How the listings give way on a narrow terminal: the least needed columns go first, and the
# title wraps under itself rather than pushing the rest off the screen.
_RULE_COLUMNS = {
    "questions": Column("questions", drop=1),
    "kind": Column("kind", drop=2),
    "precedence": Column("precedence", drop=3),
    "certainty": Column("certainty", drop=4),
    "title": Column("title", wrap=36),
}
_EVIDENCE_COLUMNS = {
    "cited_by": Column("cited_by", drop=1),
    "pmid": Column("pmid", drop=2),
    "design": Column("design", drop=3),
    "n": Column("n", drop=4),
    "year": Column("year", drop=5),
    "title": Column("title", wrap=36),
}
_MORE = "--format json shows every column"


def _print_listing(
    items: list[dict[str, object]],
    output_format: ListFormat | None,
    columns: Mapping[str, Column],
) -> None:
    """JSON as typed values; a table with lists joined by commas and nulls shown as '-'."""
    if output_format is ListFormat.JSON:
        from ivig_cds.cli.render import dumps

        typer.echo(dumps(items), nl=False)
        return

    def cell(value: object) -> str:
        if isinstance(value, list):
            return ",".join(str(v) for v in value) or "-"
        return "-" if value is None else str(value)

    headers = list(items[0]) if items else []
    common.table(
        [columns.get(h, Column(h)) for h in headers],
        [[cell(item[h]) for h in headers] for item in items],
        more=_MORE,
    )


@rules_app.command("windows", cls=common.PlainHelpCommand)
def rules_windows(ctx: typer.Context, rules: RulesDir = None, evidence: EvidenceDir = None) -> None:
    """List the record windows the FHIR adapter applies to dated answers, with their reasons."""
    kb = common.load(*_dirs(ctx, rules, evidence))
    windows = record_windows(kb)
    if windows is None:
        common.fail(
            f"no {RECORD_WINDOWS_NAME} in {kb.rules_dir}; the FHIR adapter uses the shipped one"
        )
    common.table(
        ["window", "weeks", Column("reason", wrap=36)],
        [[name, str(w.weeks), w.reason] for name, w in windows.rows()],
    )


def record_windows(kb: KnowledgeBase) -> RecordWindows | None:
    """The knowledge base's record windows (validated when it loaded), None if it has none."""
    path = kb.rules_dir / RECORD_WINDOWS_NAME
    return load_record_windows(path) if path.is_file() else None


@rules_app.command("show", cls=common.PlainHelpCommand)
def rules_show(
    ctx: typer.Context,
    rule_id: Annotated[str, typer.Argument(metavar="ID", help="A rule id such as C02a or K1.")],
    rules: RulesDir = None,
    evidence: EvidenceDir = None,
) -> None:
    """Show one rule in full: conditions, tier, rationale, certainty, citations, provenance."""
    kb = common.load(*_dirs(ctx, rules, evidence))
    ids = [r.id for r in (*kb.conclusions, *kb.cautions)]
    rule = kb.rule(common.find_id("rules", rule_id, ids))
    common.print_lines(_rule_lines(kb, rule))


def _rule_lines(kb: KnowledgeBase, rule: ConclusionRule | CautionRule) -> list[tuple[str, str]]:
    from ivig_cds._vocabulary import TIER_MEANINGS
    from ivig_cds.cli.render import cite

    lines: list[tuple[str, str]] = [
        (f"{rule.id}  {rule.title}", "bold"),
        (f"{rule.kind}, version {rule.version}, file {kb.sources.get(rule.id, '?')}", "dim"),
        ("", ""),
        ("When (all must hold):", "bold"),
    ]
    lines += [(f"  {name} {c.describe()}", "") for name, c in rule.when.items()]
    if not rule.when:
        lines.append(("  always", ""))
    if isinstance(rule, CautionRule) and rule.any_of:
        lines.append(("And one of these:", "bold"))
        lines += [(f"  - {_group(group)}", "") for group in rule.any_of]
    if rule.unless:
        lines.append(("Unless one of these holds (then it does not fire):", "bold"))
        lines += [(f"  - {_group(group)}", "") for group in rule.unless]
    lines.append(("", ""))
    if isinstance(rule, ConclusionRule):
        lines += [
            (f"Questions: {', '.join(q.value for q in rule.questions)}", ""),
            (f"Precedence: {rule.precedence} (lower wins)", ""),
            (f"Tier: {rule.tier.value}: {TIER_MEANINGS[rule.tier]}", ""),
            (f"Summary: {rule.summary}", ""),
        ]
        if rule.certainty is not None:
            lines.append((f"Certainty: {rule.certainty.level.value}: {rule.certainty.reason}", ""))
        lines += [("", ""), ("Rationale:", "bold"), (f"  {rule.rationale.strip()}", "")]
    else:
        lines += [("Text:", "bold"), (f"  {rule.text.strip()}", "")]
        if rule.notes:
            lines += [("", ""), ("Notes (added beneath the text when they hold):", "bold")]
            for note in rule.notes:
                lines.append((f"  - when {_group(note.when)}:", ""))
                lines.append((f"      {note.text.strip()}", ""))
    lines += [("", ""), ("Evidence:", "bold")]
    for evidence_id in rule.evidence:
        entry = kb.evidence[evidence_id]
        citation = Citation.of(entry)
        lines.append((f"  - {evidence_id}: {cite(citation)} {citation.url or ''}".rstrip(), ""))
    if not rule.evidence:
        why = (
            "an indeterminate result makes no evidence claim"
            if isinstance(rule, ConclusionRule)
            else "it rests on the passages below"
        )
        lines.append((f"  none ({why})", ""))
    p = rule.provenance
    lines += [
        ("", ""),
        (f"Provenance: spec {p.spec}; seeds {', '.join(p.seeds)}; reviewed {p.reviewed}", "dim"),
    ]
    lines += [(f'  {q.seed}: "{q.quote}"', "dim") for q in p.passages]
    if p.clinical_judgement:
        lines.append((f"  Clinical judgement, beyond the sources: {p.clinical_judgement}", "dim"))
    return lines


def _group(conditions: Mapping[str, ConditionSpec]) -> str:
    """Conditions as the rule file names them: "pregnancy_status = postpartum and ..."."""
    return " and ".join(f"{name} {c.describe()}" for name, c in conditions.items())


@evidence_app.callback()
def _evidence_group(
    ctx: typer.Context,
    rules: RulesDir = None,
    evidence: EvidenceDir = None,
    output_format: ListFormatOption = None,
) -> None:
    ctx.obj = _GroupOptions(rules, evidence, output_format)
    if ctx.invoked_subcommand is None:
        _list_evidence(common.load(rules, evidence), output_format)


@evidence_app.command("list", cls=common.PlainHelpCommand)
def evidence_list(
    ctx: typer.Context,
    rules: RulesDir = None,
    evidence: EvidenceDir = None,
    output_format: ListFormatOption = None,
) -> None:
    """List every evidence entry: id, year, design, n, PMID, rules citing it and title."""
    _list_evidence(common.load(*_dirs(ctx, rules, evidence)), _format(ctx, output_format))


def _list_evidence(kb: KnowledgeBase, output_format: ListFormat | None) -> None:
    items: list[dict[str, object]] = [
        {
            "id": e.id,
            "year": e.year,
            "design": e.design.value,
            "n": e.n,
            "pmid": e.pmid,
            "cited_by": list(kb.cited_by(e.id)),
            "title": e.title,
        }
        for e in kb.evidence.values()
    ]
    _print_listing(items, output_format, _EVIDENCE_COLUMNS)


@evidence_app.command("show", cls=common.PlainHelpCommand)
def evidence_show(
    ctx: typer.Context,
    evidence_id: Annotated[
        str, typer.Argument(metavar="ID", help="An evidence id such as pmid-15451222.")
    ],
    rules: RulesDir = None,
    evidence: EvidenceDir = None,
) -> None:
    """Show one evidence entry: design, n, regimen, outcomes with figures, quality notes, and
    which rules cite it."""
    kb = common.load(*_dirs(ctx, rules, evidence))
    entry = kb.evidence[common.find_id("evidence", evidence_id, list(kb.evidence))]
    lines: list[tuple[str, str]] = [
        (f"{entry.id}  {entry.title}", "bold"),
        (f"file {kb.sources.get(entry.id, '?')}", "dim"),
        ("", ""),
    ]
    facts = {
        "Authors": ", ".join(entry.authors) or None,
        "Journal": entry.journal,
        "Year": str(entry.year) if entry.year is not None else None,
        "Citation": entry.citation,
        "PMID": f"{entry.pmid} {PUBMED.format(pmid=entry.pmid)}" if entry.pmid else None,
        "DOI": entry.doi,
        "Identifiers": entry.identifiers_note,
        "Seed": f"{entry.source.seed} {entry.source.section or ''}".rstrip(),
        "Design": entry.design.value,
        "Population": entry.population,
        "n": str(entry.n) if entry.n is not None else None,
        "Regimen": entry.regimen,
        "Duration": entry.duration,
    }
    lines += [(f"{k}: {v}", "") for k, v in facts.items() if v]
    if entry.outcomes:
        lines += [("", ""), ("Outcomes (figures as printed in the source):", "bold")]
        lines += [(f"  - {o.measure}: {o.result}", "") for o in entry.outcomes]
    lines += [("", ""), ("Findings:", "bold"), (f"  {entry.findings.strip()}", "")]
    if entry.quality_notes:
        lines += [("", ""), ("Quality notes:", "bold")]
        lines += [(f"  - {note}", "") for note in entry.quality_notes]
    cited = kb.cited_by(entry.id)
    lines += [
        ("", ""),
        (f"Cited by: {', '.join(cited)}" if cited else "Cited by: no rule (background)", "bold"),
    ]
    common.print_lines(lines)
