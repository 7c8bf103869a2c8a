"""Recommendation to CDS Hooks card: indicator, summary, source, detail, audit extension."""

from __future__ import annotations

import uuid

import pytest

from ivig_cds import Evaluator, Tier
from ivig_cds.service.cards import EXTENSION_KEY, OVERRIDE_SYSTEM, card_for, indicator_for

PATIENTS = {
    "second_line": {"ms_phenotype": "RRMS", "first_line_dmt": "not_tolerated"},
    "not_first_line": {"ms_phenotype": "RRMS", "first_line_dmt": "suitable"},
    "insufficient_evidence": {"ms_phenotype": "PPMS"},
    "not_recommended": {"ms_phenotype": "SPMS"},
    "indeterminate": {},
    "not_applicable": {"ms_phenotype": "not_ms"},
}


@pytest.mark.parametrize(
    ("tier", "ordering", "indicator"),
    [
        (Tier.NOT_RECOMMENDED, False, "warning"),
        (Tier.NOT_RECOMMENDED, True, "warning"),
        (Tier.SECOND_LINE, True, "info"),
        (Tier.NOT_FIRST_LINE, False, "info"),
        (Tier.NOT_FIRST_LINE, True, "warning"),
        (Tier.INSUFFICIENT_EVIDENCE, False, "info"),
        (Tier.INSUFFICIENT_EVIDENCE, True, "warning"),
        (Tier.INDETERMINATE, True, "info"),
    ],
)
def test_indicator_follows_tier_and_hook(tier: Tier, ordering: bool, indicator: str) -> None:
    """not_recommended always warns; advice against an order being placed warns; else info."""
    assert indicator_for(tier, ordering=ordering) == indicator


@pytest.mark.parametrize("tier", [t for t in PATIENTS if t != "not_applicable"])
def test_every_advising_tier_gives_a_well_formed_card(evaluator: Evaluator, tier: str) -> None:
    """Each tier's card has a short summary, a uuid, markdown detail and the audit extension."""
    rec = evaluator.evaluate(PATIENTS[tier])
    assert rec.tier == tier
    card = card_for(rec, service_id="svc", hook_instance="h1")
    assert card is not None
    assert len(card["summary"]) < 140
    assert uuid.UUID(card["uuid"])
    assert rec.rationale in card["detail"]
    audit = card["extension"][EXTENSION_KEY]
    assert audit["primaryRule"] == rec.primary_rule
    assert audit["knowledgeBase"]["content_hash"] == rec.knowledge_base.content_hash
    assert [r["id"] for r in audit["rules"]] == [f.rule_id for f in rec.findings]


def test_not_applicable_gives_no_card(evaluator: Evaluator) -> None:
    """A patient outside the knowledge base gets no card at all."""
    rec = evaluator.evaluate(PATIENTS["not_applicable"])
    assert card_for(rec, service_id="svc", hook_instance="h1") is None


def test_source_links_the_primary_citation_on_pubmed(evaluator: Evaluator) -> None:
    """The SPMS card's source is ESIMS on PubMed (PMID 15451222)."""
    card = card_for(
        evaluator.evaluate(PATIENTS["not_recommended"]), service_id="s", hook_instance="h"
    )
    assert card is not None
    assert card["source"] == {
        "label": "Hommes OR et al. 2004 (PMID 15451222)",
        "url": "https://pubmed.ncbi.nlm.nih.gov/15451222/",
    }


def test_detail_lists_certainty_citations_and_cautions(evaluator: Evaluator) -> None:
    """The detail carries the certainty, each citation's PMID link and each caution's title."""
    rec = evaluator.evaluate(PATIENTS["second_line"])
    card = card_for(rec, service_id="s", hook_instance="h")
    assert card is not None
    detail = card["detail"]
    assert "**Certainty of evidence:** low." in detail
    assert "PMID [12453069](https://pubmed.ncbi.nlm.nih.gov/12453069/)" in detail
    assert all(c.title in detail for c in rec.cautions) and rec.cautions


def test_indeterminate_card_says_what_is_missing_and_offers_no_override(
    evaluator: Evaluator,
) -> None:
    """A card that cannot decide names the missing facts and has no overrideReasons."""
    card = card_for(
        evaluator.evaluate(PATIENTS["indeterminate"]), service_id="s", hook_instance="h"
    )
    assert card is not None
    assert "**Missing data that would decide or could change this:** ms phenotype" in card["detail"]
    assert "overrideReasons" not in card
    assert card["source"]["label"].startswith("IVIG-CDS knowledge base ")


def test_advice_cards_offer_override_reasons(evaluator: Evaluator) -> None:
    """Cards a clinician may disagree with offer coded override reasons from our system."""
    card = card_for(
        evaluator.evaluate(PATIENTS["not_first_line"]), service_id="s", hook_instance="h"
    )
    assert card is not None
    reasons = card["overrideReasons"]
    assert {r["system"] for r in reasons} == {OVERRIDE_SYSTEM}
    assert "specialist-decision" in {r["code"] for r in reasons}


def test_card_uuid_is_deterministic_per_request(evaluator: Evaluator) -> None:
    """The same request gives the same uuid; another hookInstance gives another."""
    rec = evaluator.evaluate(PATIENTS["not_recommended"])
    first = card_for(rec, service_id="s", hook_instance="h1")
    again = card_for(rec, service_id="s", hook_instance="h1")
    other = card_for(rec, service_id="s", hook_instance="h2")
    assert first is not None and again is not None and other is not None
    assert first["uuid"] == again["uuid"] != other["uuid"]


def test_conflicts_appear_in_the_detail(evaluator: Evaluator) -> None:
    """Conflicts passed in are listed under their own heading and counted in the extension."""
    rec = evaluator.evaluate(PATIENTS["indeterminate"])
    card = card_for(rec, service_id="s", hook_instance="h", conflicts=["A and B disagree"])
    assert card is not None
    assert (
        "**Conflicting data in the record (left unknown):**\n- A and B disagree" in card["detail"]
    )
    assert card["extension"][EXTENSION_KEY]["conflicts"] == 1


# Knowledge base 2.0.0 (issue 9): each clinical change reaches the card a clinician sees.
V2_CARDS = [
    (  # postpartum no longer lasts for ever
        {"ms_phenotype": "RRMS", "first_line_dmt": "suitable", "sex": "female",
         "pregnancy_status": "postpartum", "weeks_postpartum": 100, "breastfeeding": False},
        "not_first_line", "C01", [], ["K5", "K8"],
    ),
    (  # breastfeeding keeps C10 to week 52
        {"ms_phenotype": "RRMS", "first_line_dmt": "suitable", "sex": "female",
         "pregnancy_status": "postpartum", "weeks_postpartum": 20, "breastfeeding": True},
        "second_line", "C10c", ["C01"], ["K2", "K3", "K4", "K5", "K8"],
    ),
    (  # the relapse finding is listed when long-term use is asked
        {"ms_phenotype": "RRMS", "intended_use": "disease_modifying", "acute_relapse": True,
         "on_iv_methylprednisolone": True, "first_line_dmt": "not_tolerated", "sex": "male"},
        "second_line", "C02a", ["C07"], ["K2", "K3", "K4", "K5", "K6", "K8"],
    ),
    (  # pregnancy brings the thrombosis caution
        {"ms_phenotype": "RRMS", "sex": "female", "pregnancy_status": "pregnant"},
        "insufficient_evidence", "C11", ["C13b"], ["K1", "K5", "K8"],
    ),
    (  # CIS with therapy ineffective: very low certainty, diagnosis to review
        {"ms_phenotype": "CIS", "first_line_dmt": "ineffective", "sex": "male", "age_years": 16,
         "other_dmt_in_use": True},
        "second_line", "C03b", [], ["K2", "K3", "K4", "K5", "K6", "K8", "K9", "K10"],
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", V2_CARDS)
def test_knowledge_base_v2_reaches_the_card(
    evaluator: Evaluator, case: tuple[dict[str, object], str, str, list[str], list[str]]
) -> None:
    """Tier, deciding rule, secondary findings and cautions as the card's audit extension."""
    patient, tier, primary, secondary, cautions = case
    card = card_for(evaluator.evaluate(patient), service_id="s", hook_instance="h")
    assert card is not None
    audit = card["extension"][EXTENSION_KEY]
    assert (audit["tier"], audit["primaryRule"]) == (tier, primary)
    assert [r["id"] for r in audit["rules"] if r["role"] == "secondary"] == secondary
    assert audit["cautions"] == cautions
    titles = {c.rule_id: c.title for c in evaluator.evaluate(patient).cautions}
    for caution in cautions:
        assert f"**{titles[caution]}:**" in card["detail"]
    if primary == "C03b":
        assert "review the diagnosis" in card["summary"]
        assert "**Certainty of evidence:** very low." in card["detail"]
