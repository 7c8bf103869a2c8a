"""The knowledge spec's wording rules, checked on the shipped texts and on what clinicians read.

Each test pins one overstatement or leak a clinical review found (issue 9): it fails on a
knowledge base or renderer that brings the old wording back.
"""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from ivig_cds import Evaluator, KnowledgeBase, Recommendation
from ivig_cds._patient import FirstLineByClass, PatientContext
from ivig_cds._recommendation import Fact
from ivig_cds._vocabulary import (
    TIER_MEANINGS,
    CertaintyLevel,
    FirstLineStatus,
    IntendedUse,
    StudyDesign,
    Tier,
)
from ivig_cds._wording import (
    FIELD_LABELS,
    MISSING_QUESTIONS,
    certainty_phrase,
    decided_by,
    design_phrase,
    fact_phrase,
    facts_phrase,
    field_label,
    for_information,
    missing_question,
    question_phrase,
    tier_label,
    value_phrase,
)
from ivig_cds.cli.render import render_markdown, render_text
from ivig_cds.service.cards import card_for


def _text(kb: KnowledgeBase, rule_id: str) -> str:
    rule = kb.rule(rule_id)
    parts = [getattr(rule, f, "") for f in ("summary", "rationale", "text")]
    return " ".join(" ".join(parts).split())


def test_second_line_means_may_be_considered_never_now(kb: KnowledgeBase) -> None:
    """The tier says what the sources allow: "may be considered", not "now" or "recommended"."""
    meaning = TIER_MEANINGS[Tier.SECOND_LINE]
    assert meaning.startswith("IVIG may be considered:")
    assert "now" not in meaning.split()
    for rule in kb.conclusions:
        if rule.tier is Tier.SECOND_LINE:
            assert "may be considered" in rule.summary, rule.id
            assert not re.search(r"(?<!not )(?<!cannot be )recommended", rule.summary), rule.id


def test_k3_quotes_each_regimen_with_its_schedule_and_result(kb: KnowledgeBase) -> None:
    """v3: each regimen as printed, with its study's design and result, and the supporting
    trials' doses said to be absent from the sources."""
    text = _text(kb, "K3")
    assert '"monthly IntraVenous ImmunoGlobulin infusions (0.4 g/kg/d for 5 days)" in an ' in text
    assert "uncontrolled series" in text and "repeat schedule is unclear" in text
    assert re.search(r'"IVIG 1 g/kg per month" in ESIMS .*showed no\s+benefit', text)
    assert re.search(r'"0.4 g/kg\s+monthly IVIG" in a single-blind randomised study', text)
    assert "compared each arm only with its own baseline" in text
    assert "are not given in these sources" in text and '"varied 10-fold"' in text


def test_c06_admits_the_uncontrolled_series_and_keeps_the_strong_trend(kb: KnowledgeBase) -> None:
    """ "No published controlled trial" beside K7's series; the review's "strong trend" kept."""
    text = _text(kb, "C06")
    assert "No published controlled trial" in text
    assert "no published trial" not in text.lower().replace("no published controlled trial", "")
    assert "strong trend" in text


def test_c04_attributes_should_be_considered_to_one_review(kb: KnowledgeBase) -> None:
    """One review says "should be considered"; nobody "recommends" IVIG in CIS."""
    text = _text(kb, "C04")
    assert "recommend" not in text
    assert "A 2006 review (Dudesek and Zettl) wrote that IVIG should be considered" in text


def test_c02a_describes_the_interferon_comparison_for_what_it_is(kb: KnowledgeBase) -> None:
    """v3: the Iranian study, in patients eligible for interferon-beta with prior treatment not
    described, compared each arm with its own baseline; its authors: "very preliminary"."""
    text = _text(kb, "C02a")
    assert "only with its own baseline" in text
    assert "in patients eligible for interferon-beta whose prior treatment is not described" in text
    assert 'its authors called the results "very preliminary"' in text


def test_c08_says_not_on_iv_methylprednisolone(kb: KnowledgeBase) -> None:
    """The condition is "not on IV methylprednisolone", so the summary does not say more."""
    summary = kb.rule("C08").summary  # type: ignore[union-attr]
    assert "not on IV methylprednisolone" in summary
    assert "without steroids" not in _text(kb, "C08")


def test_c05_speaks_of_what_the_sources_measured(kb: KnowledgeBase) -> None:
    """Progression, relapses and MRI, and the knowledge base's own choice to apply C5 widely."""
    text = _text(kb, "C05")
    assert "whatever the reason" not in text
    assert "this knowledge base applies the conclusion to every clinical question" in text


def test_c13b_lists_every_first_line_status(kb: KnowledgeBase) -> None:
    summary = kb.rule("C13b").summary  # type: ignore[union-attr]
    for word in ("suitable", "not tolerated", "contraindicated", "declined", "ineffective"):
        assert word in summary


def test_no_rule_calls_one_review_reviews(kb: KnowledgeBase) -> None:
    """Rules that cite a single review never say "reviews" agree or recommend."""
    for rule in (*kb.conclusions, *kb.cautions):
        reviews = [e for e in rule.evidence if "review" in kb.evidence[e].design.value]
        if len(reviews) <= 1:
            assert "reviews" not in _text(kb, rule.id).lower(), rule.id


def test_a_summary_speaks_of_breastfeeding_only_when_required(kb: KnowledgeBase) -> None:
    """A summary mentions breastfeeding only in a rule that requires the patient to be."""
    for rule in kb.conclusions:
        if "breastfeed" in rule.summary.lower():
            assert rule.when.get("breastfeeding") is not None, rule.id
            assert rule.when["breastfeeding"].values == (True,), rule.id


# --- what clinicians read: no internal labels ------------------------------------------------

SEED004_RESULT = {"ms_phenotype": "RRMS", "acute_relapse": True, "on_iv_methylprednisolone": False}


FORMS = ["text", "markdown", "card"]


def _shown(rec: Recommendation, form: str) -> str:
    """What a clinician reads of `rec` in one form (for a card: summary, source and detail)."""
    if form == "text":
        out = io.StringIO()
        Console(file=out, color_system=None, soft_wrap=True, markup=False).print(render_text(rec))
        return out.getvalue()
    if form == "markdown":
        return render_markdown(rec)
    card = card_for(rec, service_id="s", hook_instance="h")
    assert card is not None
    return card["summary"] + str(card["source"]) + card["detail"]


@pytest.mark.parametrize("form", FORMS)
def test_clinician_output_shows_no_internal_identifiers(evaluator: Evaluator, form: str) -> None:
    """C8 rests on the unattributed summary: its id and seed file never reach a clinician."""
    rec = evaluator.evaluate(SEED004_RESULT)
    assert [c.id for c in rec.citations] == ["seed004-summary"]
    shown = _shown(rec, form)
    assert "PMID not shown in the source" in shown
    for leak in ("seed004", "seed001", "no PubMed record", "(no PMID)", ".txt"):
        assert leak not in shown


@pytest.mark.parametrize("form", FORMS)
def test_unused_facts_are_named_wherever_a_result_is_read(evaluator: Evaluator, form: str) -> None:
    """An EDSS given is accepted, but the reader is told that no rule weighed it."""
    rec = evaluator.evaluate({"ms_phenotype": "SPMS", "edss": 6.5})
    assert rec.unused_facts == ("edss",)
    assert "Not used by this knowledge base: EDSS" in _shown(rec, form)


def test_the_card_audit_extension_lists_unused_facts(evaluator: Evaluator) -> None:
    card = card_for(
        evaluator.evaluate({"ms_phenotype": "SPMS", "edss": 6.5}), service_id="s", hook_instance="h"
    )
    assert card is not None
    assert card["extension"]["org.ivig-cds"]["unusedFacts"] == ["edss"]


@pytest.mark.parametrize("form", FORMS)
def test_not_graded_is_shown_for_conclusions_that_make_no_claim(
    evaluator: Evaluator, form: str
) -> None:
    """C12 and C13 make no claim about IVIG, and every output says "not graded"."""
    rec = evaluator.evaluate({"ms_phenotype": "RRMS", "sex": "male"})
    assert rec.primary_rule == "C13b"
    assert "not graded" in _shown(rec, form)


# --- the wording module: the one place internal names become words ---------------------------


def test_every_patient_field_has_a_question_and_a_label() -> None:
    """A missing fact is always asked as a question; an edited model cannot add a silent field."""
    for name in PatientContext.model_fields:
        assert name in MISSING_QUESTIONS, name
        assert name in FIELD_LABELS, name
        assert missing_question(name).endswith("?"), name
        assert "_" not in missing_question(name) + field_label(name), name


def test_missing_data_reads_as_the_questions_a_clinician_answers() -> None:
    """The knowledge spec's own examples, word for word."""
    assert missing_question("on_iv_methylprednisolone") == (
        "Is the current relapse treated with IV methylprednisolone?"
    )
    assert missing_question("ms_phenotype") == (
        "What is the MS course (CIS, RRMS, SPMS, PPMS, or no MS)?"
    )
    assert missing_question("pregnancy_status") == "Is the patient pregnant, postpartum or neither?"
    assert missing_question("age_years") == "How old is the patient?"


def test_unknown_names_fall_back_to_words() -> None:
    """A field, design or level an edited knowledge base adds reads as words, never a crash."""
    assert field_label("renal_function") == "renal function"
    assert missing_question("renal_function") == "What is the patient's renal function?"
    assert fact_phrase("renal_function", "mildly_impaired") == "renal function: mildly impaired"
    assert design_phrase("cluster_randomized_trial") == "cluster randomized trial"
    assert certainty_phrase("moderately_low") == "moderately low"
    assert question_phrase("prophylaxis_before_surgery") == "prophylaxis before surgery"
    assert tier_label("second_opinion") == "Second opinion"


def test_facts_read_as_phrases() -> None:
    """Flags as statements, values after their name, the derived facts included."""
    assert fact_phrase("relapse_ongoing", True) == "the relapse is ongoing"
    assert fact_phrase("on_iv_methylprednisolone", False) == "not on IV methylprednisolone"
    assert fact_phrase("ms_phenotype", "RRMS") == "MS course: RRMS"
    assert fact_phrase("ms_phenotype", "not_ms") == "no MS diagnosis"
    assert fact_phrase("first_line_dmt", "not_tolerated") == (
        "first-line therapy (interferon-beta, glatiramer acetate): not tolerated"
    )
    assert fact_phrase("pregnancy_status", "not_pregnant") == "not pregnant"
    assert fact_phrase("pregnancy_status", None) == "pregnancy status: not known"
    assert fact_phrase("question", IntendedUse.FIXED_DEFICITS) == (
        "asked about improving chronic, stable visual or motor deficits"
    )
    assert fact_phrase("age_years", 16) == "age: 16 years"
    assert fact_phrase("thromboembolic_risk_factors", ()) == (
        "thromboembolic risk factors: none recorded"
    )
    assert facts_phrase([Fact(field="relapse_ongoing", value=True), ("edss", 6.5)]) == (
        "the relapse is ongoing; EDSS: 6.5"
    )


def test_first_line_status_per_class_reads_per_class() -> None:
    """Each class by its name, an unknown class as not known."""
    by_class = FirstLineByClass(interferon_beta=FirstLineStatus.NOT_TOLERATED)
    assert value_phrase("first_line_by_class", by_class) == (
        "interferon-beta: not tolerated; glatiramer acetate: not known"
    )


def test_questions_designs_and_certainty_in_words() -> None:
    """No enum value survives: every member of each vocabulary has its words."""
    assert question_phrase(IntendedUse.DISEASE_MODIFYING) == "long-term disease-modifying treatment"
    assert question_phrase(IntendedUse.ACUTE_RELAPSE) == "treatment of the current relapse"
    assert design_phrase(StudyDesign.PILOT_RCT_STOPPED_AT_INTERIM) == (
        "pilot trial stopped at its interim analysis"
    )
    assert design_phrase(StudyDesign.DOUBLE_BLIND_RCT) == "double-blind randomised trial"
    assert certainty_phrase(CertaintyLevel.VERY_LOW) == "very low"
    assert certainty_phrase(CertaintyLevel.NOT_GRADED) == "not graded"
    for vocabulary, phrase in (
        (IntendedUse, question_phrase),
        (StudyDesign, design_phrase),
        (CertaintyLevel, certainty_phrase),
        (Tier, tier_label),
    ):
        for member in vocabulary:
            assert "_" not in phrase(member), member


def test_decided_by_names_the_rule_and_its_facts(evaluator: Evaluator) -> None:
    """ "C07 (the relapse is ongoing; ...)", never "rule C07 on relapse_ongoing = yes"."""
    rec = evaluator.evaluate(
        {"ms_phenotype": "RRMS", "acute_relapse": True, "on_iv_methylprednisolone": True}
    )
    assert decided_by(rec) == (
        "C07 (the relapse is ongoing; MS course: RRMS; on IV methylprednisolone)"
    )


@pytest.mark.parametrize(
    ("patient", "heading"),
    [
        ({"ms_phenotype": "RRMS", "first_line_dmt": "suitable", "age_years": 12}, "to an adult"),
        (
            {"ms_phenotype": "RRMS", "first_line_dmt": "suitable", "other_dmt_in_use": True},
            "without the other disease-modifying therapy",
        ),
    ],
)
def test_outside_evidence_findings_say_when_they_would_apply(
    evaluator: Evaluator, patient: dict[str, object], heading: str
) -> None:
    """A child's findings would apply to an adult; a newer therapy's, without that therapy."""
    rec = evaluator.evaluate(patient)
    assert rec.tier is Tier.OUTSIDE_EVIDENCE
    assert for_information(rec) == f"For information: would apply {heading}"


def test_c07_and_c09_say_how_small_their_evidence_is(kb: KnowledgeBase) -> None:
    """v3: C07's summary names the one small pilot trial stopped early, its rationale the 5 vs 2
    later relapses and the moderate-to-severe relapses; C09's certainty the unknown trial sizes."""
    c07 = kb.rule("C07")
    assert "in one small pilot trial stopped at its interim analysis" in c07.summary  # type: ignore[union-attr]
    assert "five patients in the IVIG arm and two in the placebo arm" in _text(kb, "C07")
    assert "moderate to severe relapse" in _text(kb, "C07")
    c09 = kb.rule("C09")
    assert "three trials (sizes not given)" in c09.certainty.reason.lower()  # type: ignore[union-attr]


def test_c01_and_c04_report_and_never_instruct(kb: KnowledgeBase) -> None:
    """v3: the first-line findings say what the 2002-2008 sources did, never "use" a drug."""
    for rule_id in ("C01", "C04"):
        text = _text(kb, rule_id)
        assert "it is not an instruction to start a drug" in text
        assert not re.search(
            r"\b(use|start|prefer)\b [a-z -]*(therapy|interferon)", kb.rule(rule_id).summary
        )  # type: ignore[union-attr]
