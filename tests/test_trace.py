"""The traceability matrix: rules x evidence, with question, tier and certainty per rule."""

from __future__ import annotations

import csv
import io

from ivig_cds import KnowledgeBase
from ivig_cds._trace import CITED, to_csv, to_json, to_markdown, trace_matrix


def test_rows_are_every_rule_and_columns_every_evidence_entry(kb: KnowledgeBase) -> None:
    """One row per rule in knowledge-base order, one column per evidence entry, sorted."""
    matrix = trace_matrix(kb)
    assert [r.rule_id for r in matrix.rows] == [r.id for r in (*kb.conclusions, *kb.cautions)]
    assert matrix.evidence_ids == tuple(sorted(kb.evidence))
    for row in matrix.rows:
        assert row.evidence == kb.rule(row.rule_id).evidence


def test_conclusion_rows_carry_questions_tier_and_certainty(kb: KnowledgeBase) -> None:
    """A conclusion's row shows its questions, tier and certainty level."""
    c05 = next(r for r in trace_matrix(kb).rows if r.rule_id == "C05")
    assert (c05.kind, c05.tier, c05.certainty) == ("conclusion", "not_recommended", "moderate")
    assert c05.questions == ("disease_modifying", "acute_relapse", "fixed_deficits")


def test_caution_rows_show_the_tier_they_attach_to(kb: KnowledgeBase) -> None:
    """K2 (attached to second_line results) shows that tier; K1 (risk factors) shows none."""
    rows = {r.rule_id: r for r in trace_matrix(kb).rows}
    assert (rows["K2"].kind, rows["K2"].tier, rows["K2"].questions) == (
        "caution",
        "second_line",
        (),
    )
    assert rows["K1"].tier == ""


def test_csv_marks_exactly_the_cited_works(kb: KnowledgeBase) -> None:
    """Each CSV cell is "x" exactly where the rule cites the work."""
    rows = list(csv.DictReader(io.StringIO(to_csv(trace_matrix(kb)))))
    for row in rows:
        cited = {e for e in kb.evidence if row[e] == CITED}
        assert cited == set(kb.rule(row["rule"]).evidence), row["rule"]
        assert {row[e] for e in kb.evidence} <= {CITED, ""}


def test_json_gives_citing_rules_and_work_details(kb: KnowledgeBase) -> None:
    """The JSON form lists, per evidence entry, its title, PMID, design and citing rules."""
    data = to_json(trace_matrix(kb))
    esims = next(e for e in data["evidence"] if e["id"] == "pmid-15451222")
    assert esims["cited_by"] == list(kb.cited_by("pmid-15451222"))
    assert (esims["pmid"], esims["year"]) == ("15451222", 2004)
    assert esims["design"] == "randomized_placebo_controlled_trial"
    c13a = next(r for r in data["rules"] if r["id"] == "C13a")
    assert (c13a["tier"], c13a["evidence"]) == ("indeterminate", [])
    assert c13a["certainty"] == "not_graded"


def test_markdown_names_the_knowledge_base_and_has_a_full_table(kb: KnowledgeBase) -> None:
    """The markdown opens with name, version and hash, then a rectangular table."""
    text = to_markdown(trace_matrix(kb))
    assert text.startswith(f"# Traceability: {kb.manifest.name} {kb.version}\n")
    assert kb.content_hash in text
    table = [line for line in text.splitlines() if line.startswith("|")]
    widths = {line.count("|") for line in table}
    assert widths == {5 + len(kb.evidence) + 1}
    assert len(table) == 2 + len(kb.conclusions) + len(kb.cautions)
