"""The traceability matrix: which rule cites which work, for an auditor.

Rows are the rules (conclusions, then cautions, in knowledge-base order) with the question(s),
tier and certainty of each; columns are the evidence entries, sorted by id. A caution has no
question of its own; its tier column shows the tier it is attached to when its conditions name
one.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from ivig_cds._knowledge_base import KnowledgeBase
from ivig_cds._rules import CautionRule, ConclusionRule

CITED = "x"


@dataclass(frozen=True, slots=True)
class TraceRow:
    rule_id: str
    kind: str
    title: str
    questions: tuple[str, ...]
    tier: str
    certainty: str
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TraceMatrix:
    knowledge_base: dict[str, str]
    evidence_ids: tuple[str, ...]
    rows: tuple[TraceRow, ...]
    cited_by: dict[str, tuple[str, ...]]
    works: dict[str, dict[str, Any]]  # evidence id -> title, pmid, year, design


def trace_matrix(kb: KnowledgeBase) -> TraceMatrix:
    """Build the matrix of a loaded knowledge base."""
    rules: tuple[ConclusionRule | CautionRule, ...] = (*kb.conclusions, *kb.cautions)
    return TraceMatrix(
        knowledge_base={
            "name": kb.manifest.name,
            "version": kb.version,
            "content_hash": kb.content_hash,
        },
        evidence_ids=tuple(sorted(kb.evidence)),
        rows=tuple(_row(rule) for rule in rules),
        cited_by={e: kb.cited_by(e) for e in sorted(kb.evidence)},
        works={
            e.id: {"title": e.title, "pmid": e.pmid, "year": e.year, "design": e.design.value}
            for e in kb.evidence.values()
        },
    )


def _row(rule: ConclusionRule | CautionRule) -> TraceRow:
    if isinstance(rule, ConclusionRule):
        return TraceRow(
            rule_id=rule.id,
            kind="conclusion",
            title=rule.title,
            questions=tuple(q.value for q in rule.questions),
            tier=rule.tier.value,
            certainty=rule.certainty.level.value if rule.certainty else "",
            evidence=rule.evidence,
        )
    tier = rule.when.get("tier")
    return TraceRow(
        rule_id=rule.id,
        kind="caution",
        title=rule.title,
        questions=(),
        tier=", ".join(str(v) for v in tier.values) if tier else "",
        certainty="",
        evidence=rule.evidence,
    )


def to_markdown(matrix: TraceMatrix) -> str:
    kb = matrix.knowledge_base
    header = ["rule", "kind", "question(s)", "tier", "certainty", *matrix.evidence_ids]
    lines = [
        f"# Traceability: {kb['name']} {kb['version']}",
        "",
        f"Content hash `{kb['content_hash']}`. `{CITED}` marks the works each rule cites.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(" --- " for _ in header) + "|",
    ]
    for row in matrix.rows:
        cells = [
            row.rule_id,
            row.kind,
            ", ".join(row.questions) or "-",
            row.tier or "-",
            row.certainty or "-",
            *(CITED if e in row.evidence else "" for e in matrix.evidence_ids),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    uncited = [e for e, rules in matrix.cited_by.items() if not rules]
    if uncited:
        lines += ["", "Evidence cited by no rule (background): " + ", ".join(uncited) + "."]
    return "\n".join(lines) + "\n"


def to_csv(matrix: TraceMatrix) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rule", "kind", "questions", "tier", "certainty", *matrix.evidence_ids])
    for row in matrix.rows:
        writer.writerow(
            [
                row.rule_id,
                row.kind,
                " ".join(row.questions),
                row.tier,
                row.certainty,
                *(CITED if e in row.evidence else "" for e in matrix.evidence_ids),
            ]
        )
    return out.getvalue()


def to_json(matrix: TraceMatrix) -> dict[str, Any]:
    return {
        "knowledge_base": matrix.knowledge_base,
        "rules": [
            {
                "id": row.rule_id,
                "kind": row.kind,
                "title": row.title,
                "questions": list(row.questions),
                "tier": row.tier or None,
                "certainty": row.certainty or None,
                "evidence": list(row.evidence),
            }
            for row in matrix.rows
        ],
        "evidence": [
            {"id": e, **matrix.works[e], "cited_by": list(matrix.cited_by[e])}
            for e in matrix.evidence_ids
        ],
    }
