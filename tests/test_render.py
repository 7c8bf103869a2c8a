"""Text, Markdown and JSON renderings of a Recommendation."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from ivig_cds import Evaluator, Recommendation
from ivig_cds._vocabulary import TIER_LABELS, TIER_MEANINGS, Tier
from ivig_cds.cli.patient_files import PatientFileError, Problem
from ivig_cds.cli.render import (
    DISCLAIMER,
    TIER_STYLES,
    cite,
    render_json,
    render_json_list,
    render_markdown,
    render_text,
)

INTOLERANT = {"ms_phenotype": "RRMS", "first_line_dmt": "not_tolerated", "sex": "female"}
RELAPSE = {"ms_phenotype": "RRMS", "acute_relapse": True, "on_iv_methylprednisolone": True,
           "first_line_dmt": "suitable"}  # fmt: skip


def text_of(rec: Recommendation, *, colour: bool = False, source: str | None = None) -> str:
    out = io.StringIO()
    console = Console(
        file=out,
        force_terminal=colour,
        color_system="standard" if colour else None,
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    console.print(render_text(rec, source=source))
    return out.getvalue()


@pytest.fixture
def intolerant(evaluator: Evaluator) -> Recommendation:
    return evaluator.evaluate(INTOLERANT)


def test_every_tier_has_a_label_meaning_and_style() -> None:
    """No tier can reach a renderer without words to show it."""
    assert set(TIER_LABELS) == set(Tier) == set(TIER_MEANINGS)


def test_text_shows_tier_question_certainty_and_sources(intolerant: Recommendation) -> None:
    """Plain text has the tier, question (inferred), certainty, citations and cautions."""
    text = text_of(intolerant)
    assert text.startswith("SECOND-LINE OPTION (2002-2008 EVIDENCE)  RRMS, neither interferon-beta")
    assert "second_line" not in text
    assert (
        "Question: long-term disease-modifying treatment (inferred: the input did not state the "
        "question)"
    ) in text
    assert (
        "Decided by: C02a (MS course: RRMS; first-line therapy (interferon-beta, glatiramer "
        "acetate): not tolerated)"
    ) in text
    assert f"Certainty: low: {intolerant.certainty.reason}" in text  # type: ignore[union-attr]
    assert "- Intravenous Immunoglobulin in MS: Promise or Failure? Narrative review." in text
    assert "PMID not shown in the source" in text
    assert "Sources: IVIG for Multiple Sclerosis: Limited Evidence for Efficacy (PMID not" in text
    assert "seed00" not in text
    assert DISCLAIMER in text


def test_text_colours_the_tier_only_at_a_terminal(intolerant: Recommendation) -> None:
    """With colour the tier is styled (green for second_line); without it, no escape codes."""
    assert "\x1b[" not in text_of(intolerant)
    coloured = text_of(intolerant, colour=True)
    assert "\x1b[1;32mSECOND-LINE OPTION" in coloured


def test_text_never_interprets_rule_text_as_markup(intolerant: Recommendation) -> None:
    """Square brackets in a rule's text are printed as written, not read as rich markup."""
    tampered = intolerant.model_copy(update={"rationale": "see [bold]table 2[/bold] and [1]"})
    assert "see [bold]table 2[/bold] and [1]" in text_of(tampered, colour=True)


def test_text_names_the_source_when_given(intolerant: Recommendation) -> None:
    """A source header opens the text when several files are shown."""
    assert text_of(intolerant, source="a/b.yaml").startswith("== a/b.yaml ==\n")


def test_text_and_markdown_list_secondary_findings(evaluator: Evaluator) -> None:
    """Findings that did not set the tier are shown as secondary, with their own question."""
    rec = evaluator.evaluate(RELAPSE)
    assert rec.primary_rule == "C07"
    assert (
        "Other findings (did not set the tier)\n  - C01 Not first line (2002-2008 evidence), "
        "for long-term disease-modifying treatment: "
    ) in text_of(rec)
    assert (
        "### Other findings (did not set the tier)\n\n- C01 (Not first line (2002-2008 "
        "evidence), for long-term disease-modifying treatment): "
    ) in render_markdown(rec)
    assert (
        "Decided by: C07 (the relapse is ongoing; MS course: RRMS; on IV methylprednisolone)"
        in (text_of(rec))
    )


def test_markdown_is_a_clinical_note(intolerant: Recommendation) -> None:
    """Markdown has the result line, numbered references with PMID links and cautions."""
    note = render_markdown(intolerant)
    assert note.startswith("## IVIG in multiple sclerosis\n")
    assert (
        "- **Result:** **Second-line option (2002-2008 evidence).** IVIG may be considered:" in note
    )
    assert "1. Sorensen PS, Fazekas F, Lee M. Intravenous immunoglobulin G" in note
    assert "[PMID 12453069](https://pubmed.ncbi.nlm.nih.gov/12453069/)" in note
    assert "- **Dose not established** (K3). No optimal IVIG dose" in note
    assert "### What would change or settle this answer\n\n- " in note
    assert (
        "- Is a disease-modifying therapy other than interferon-beta or glatiramer acetate in "
        in (note)
    )
    assert note.endswith(f"{DISCLAIMER}_\n")


def test_markdown_states_a_question_the_caller_asked(evaluator: Evaluator) -> None:
    """An intended use given in the input is reported as stated, not inferred."""
    rec = evaluator.evaluate({"ms_phenotype": "SPMS", "intended_use": "fixed_deficits"})
    assert "(as stated in the input)" in render_markdown(rec)
    assert "improving chronic, stable visual or motor deficits" in render_markdown(rec)


def test_json_round_trips_to_the_same_recommendation(intolerant: Recommendation) -> None:
    """render_json is lossless: parsing it back gives an equal Recommendation."""
    document = render_json(intolerant)
    assert document.endswith("}\n")
    assert Recommendation.model_validate_json(document) == intolerant


def test_json_list_keeps_order_and_locates_errors(intolerant: Recommendation) -> None:
    """Several outcomes become {source, recommendation} or {source, error, problems}."""
    problems = [Problem("edss: too high", 4, 1), Problem("whole file")]
    failure = PatientFileError("bad.yaml", "is not a valid patient context", problems)

    items = json.loads(render_json_list([("ok.yaml", intolerant), ("bad.yaml", failure)]))
    assert items[0]["source"] == "ok.yaml"
    assert items[0]["recommendation"]["primary_rule"] == "C02a"
    assert items[1] == {
        "source": "bad.yaml",
        "error": "is not a valid patient context",
        "problems": [
            {"message": "edss: too high", "line": 4, "column": 1},
            {"message": "whole file", "line": None, "column": None},
        ],
    }


def test_cite_shortens_long_author_lists(intolerant: Recommendation) -> None:
    """More than three authors end in "et al"; size and design close the reference."""
    kalanie = next(c for c in intolerant.citations if c.id == "pmid-15539773")
    assert cite(kalanie) == (
        "Kalanie H, Gharagozli K, Hemmatie A, et al. Interferon-ß-1a and IntraVenous "
        "ImmunoGlobulin Treatment for Multiple Sclerosis in Iran. Eur Neurol 2004. "
        "Single-blind randomised trial, n=80."
    )


def test_no_rendering_adds_a_dose(evaluator: Evaluator) -> None:
    """Renderers add no dose: every "g/kg" in the output comes from the rules' own texts."""
    rec = evaluator.evaluate(INTOLERANT)
    sources = " ".join(c.text for c in rec.cautions) + rec.rationale
    for rendered in (text_of(rec), render_markdown(rec)):
        assert rendered.count("g/kg") == sources.count("g/kg")


CHILD = {"ms_phenotype": "RRMS", "first_line_dmt": "not_tolerated", "age_years": 15}


def test_every_tier_has_a_style() -> None:
    """outside_evidence, like every tier, has its own colour at a terminal."""
    assert set(TIER_STYLES) == set(Tier)
    assert TIER_STYLES[Tier.OUTSIDE_EVIDENCE] not in {
        style for tier, style in TIER_STYLES.items() if tier is not Tier.OUTSIDE_EVIDENCE
    }


def test_outside_evidence_lists_the_adult_findings_for_information(evaluator: Evaluator) -> None:
    """A child: no tier from the sources, and what would apply to an adult, labelled as such."""
    rec = evaluator.evaluate(CHILD)
    assert rec.tier is Tier.OUTSIDE_EVIDENCE
    assert [f.rule_id for f in rec.findings if f.role == "secondary"]
    text = text_of(rec)
    assert text.startswith("OUTSIDE THE EVIDENCE  ")
    assert "For information: would apply to an adult\n  - C02a Second-line option" in text
    assert "Other findings" not in text
    note = render_markdown(rec)
    assert "### For information: would apply to an adult\n\n- C02a (Second-line option" in note
    assert "\x1b[1;36mOUTSIDE THE EVIDENCE" in text_of(rec, colour=True)


def test_caution_notes_follow_their_caution(evaluator: Evaluator) -> None:
    """What in the record a caution rests on is printed under it, in text and Markdown."""
    rec = evaluator.evaluate({**INTOLERANT, "thromboembolic_risk_factors": ["immobility"]})
    k1 = next(c for c in rec.cautions if c.rule_id == "K1")
    assert k1.notes and "immobility" in k1.notes[0]
    assert f"Thromboembolic risk: {k1.text}\n      {k1.notes[0]}\n" in text_of(rec)
    assert f"\n  - {k1.notes[0]}\n" in render_markdown(rec)
