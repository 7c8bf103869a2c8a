"""Recommendation to CDS Hooks card: indicator, summary, source, detail, audit extension."""

from __future__ import annotations

import uuid

import pytest

from ivig_cds import Evaluator, Recommendation, Tier
from ivig_cds.service.cards import (
    _TIER_WORDS,
    EXTENSION_KEY,
    OVERRIDE_SYSTEM,
    SUMMARY_LIMIT,
    card_for,
    card_summary,
    indicator_for,
)

PATIENTS = {
    "second_line": {"ms_phenotype": "RRMS", "first_line_dmt": "not_tolerated"},
    "not_first_line": {"ms_phenotype": "RRMS", "first_line_dmt": "suitable"},
    "insufficient_evidence": {"ms_phenotype": "PPMS"},
    "not_recommended": {"ms_phenotype": "SPMS"},
    "indeterminate": {},
    "outside_evidence": {
        "ms_phenotype": "RRMS",
        "first_line_dmt": "not_tolerated",
        "age_years": 15,
    },
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
        (Tier.OUTSIDE_EVIDENCE, False, "info"),
        (Tier.OUTSIDE_EVIDENCE, True, "info"),
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
    assert (
        "**What would change or settle this answer:**\n"
        "- What is the MS course (CIS, RRMS, SPMS, PPMS, or no MS)?"
    ) in card["detail"]
    assert "ms_phenotype" not in card["detail"]
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


# Knowledge bases 2.0.0 and 3.0.0: each clinical change reaches the card a clinician sees.
CLINICAL_CARDS = [
    (  # postpartum no longer lasts for ever (2.0.0)
        {"ms_phenotype": "RRMS", "first_line_dmt": "suitable", "sex": "female",
         "pregnancy_status": "postpartum", "weeks_postpartum": 100, "breastfeeding": False},
        "not_first_line", "C01", [], ["K5", "K8", "K11"],
    ),
    (  # breastfeeding keeps C10 to week 52, and C01 is not listed in that window (3.0.0)
        {"ms_phenotype": "RRMS", "first_line_dmt": "suitable", "sex": "female",
         "pregnancy_status": "postpartum", "weeks_postpartum": 20, "breastfeeding": True},
        "second_line", "C10c", [], ["K2", "K3", "K4", "K5", "K8", "K11"],
    ),
    (  # the relapse finding is listed when long-term use is asked
        {"ms_phenotype": "RRMS", "intended_use": "disease_modifying", "acute_relapse": True,
         "on_iv_methylprednisolone": True, "first_line_dmt": "not_tolerated", "sex": "male"},
        "second_line", "C02a", ["C07"], ["K2", "K3", "K4", "K5", "K6", "K8", "K11"],
    ),
    (  # pregnancy brings the thrombosis caution
        {"ms_phenotype": "RRMS", "sex": "female", "pregnancy_status": "pregnant"},
        "insufficient_evidence", "C11", ["C13b"], ["K1", "K5", "K8", "K11"],
    ),
    (  # a 16-year-old on a newer therapy: outside the evidence; the CIS diagnosis to review
        {"ms_phenotype": "CIS", "first_line_dmt": "ineffective", "sex": "male", "age_years": 16,
         "other_dmt_in_use": True},
        "outside_evidence", "C15", ["C03b", "C14"], ["K5", "K8", "K11", "K13"],
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", CLINICAL_CARDS)
def test_clinical_changes_reach_the_card(
    evaluator: Evaluator, case: tuple[dict[str, object], str, str, list[str], list[str]]
) -> None:
    """Tier, deciding rule, secondary findings and cautions as the card's audit extension, and
    each caution in the detail (a standing one, K11, as its own block)."""
    patient, tier, primary, secondary, cautions = case
    rec = evaluator.evaluate(patient)
    card = card_for(rec, service_id="s", hook_instance="h")
    assert card is not None
    audit = card["extension"][EXTENSION_KEY]
    assert (audit["tier"], audit["primaryRule"]) == (tier, primary)
    assert [r["id"] for r in audit["rules"] if r["role"] == "secondary"] == secondary
    assert audit["cautions"] == cautions
    for caution in rec.cautions:
        shown = (
            f"**{caution.title}**\n" if caution.display == "standing" else f"**{caution.title}:**"
        )
        assert shown in card["detail"]
    assert card["detail"].index("**What this tool does not check**") > card["detail"].index(
        "**Cautions**"
    )


# Knowledge base 3.0.0: the new tier, IVIG already being given, and the card in plain words.


def test_every_tier_has_card_words() -> None:
    """No tier reaches a card without words, and the dated tiers say how old the evidence is."""
    assert set(_TIER_WORDS) == set(Tier)
    for tier in (Tier.SECOND_LINE, Tier.NOT_FIRST_LINE):
        assert "(2002-2008 evidence)" in _TIER_WORDS[tier]


def test_outside_evidence_informs_and_offers_no_override(evaluator: Evaluator) -> None:
    """A child: an info card (even on an order), the adult findings for information only, and
    no override reasons, since the card advises nothing to act against."""
    rec = evaluator.evaluate(PATIENTS["outside_evidence"])
    card = card_for(rec, service_id="s", hook_instance="h", ordering=True)
    assert card is not None
    assert card["indicator"] == "info"
    assert "overrideReasons" not in card
    assert (
        "**IVIG: outside the evidence (the sources do not address this patient)**"
        in (card["detail"])
    )
    assert "**For information: would apply to an adult**\n- " in card["detail"]
    assert card["extension"][EXTENSION_KEY]["tier"] == "outside_evidence"


def test_caution_notes_appear_under_their_caution(evaluator: Evaluator) -> None:
    """K1's note names the recorded risk factor, beneath K1 in the card's detail."""
    rec = evaluator.evaluate(
        {**PATIENTS["second_line"], "thromboembolic_risk_factors": ["immobility"]}
    )
    k1 = next(c for c in rec.cautions if c.rule_id == "K1")
    card = card_for(rec, service_id="s", hook_instance="h")
    assert card is not None
    assert f"- **{k1.title}:** {k1.text}\n  - {k1.notes[0]}" in card["detail"]


IVIG_GIVEN = [
    ({"ms_phenotype": "RRMS", "first_line_dmt": "not_tolerated", "ivig_in_use": True}, "K12a"),
    ({"ms_phenotype": "SPMS", "ivig_in_use": True}, "K12b"),
    ({"ms_phenotype": "RRMS", "age_years": 15, "ivig_in_use": True}, "K12c"),
]


@pytest.mark.parametrize(("patient", "caution"), IVIG_GIVEN)
def test_ivig_already_given_leads_the_card(
    evaluator: Evaluator, patient: dict[str, object], caution: str
) -> None:
    """The summary starts "On IVIG:" and the detail opens with the K12 caution."""
    rec = evaluator.evaluate(patient)
    given = next(c for c in rec.cautions if c.rule_id.startswith("K12"))
    assert given.rule_id == caution
    card = card_for(rec, service_id="s", hook_instance="h")
    assert card is not None
    assert card["summary"].startswith("On IVIG: ")
    assert len(card["summary"]) < SUMMARY_LIMIT
    assert card["detail"].startswith(f"- **{given.title}:** {given.text}")
    assert card["detail"].count(f"**{given.title}:**") == 1


def _with_summary(rec: Recommendation, summary: str, *, in_use: bool) -> Recommendation:
    cautions = tuple(c for c in rec.cautions if c.display != "first")
    if in_use:
        cautions += (cautions[0].model_copy(update={"rule_id": "K12a", "display": "first"}),)
    return rec.model_copy(update={"summary": summary, "cautions": cautions})


@pytest.mark.parametrize("in_use", [False, True])
def test_a_long_dated_summary_keeps_its_lead_and_its_date(
    evaluator: Evaluator, in_use: bool
) -> None:
    """Cut to fit 140 characters, a second_line summary keeps "On IVIG:" and "2002-2008"."""
    rec = evaluator.evaluate(PATIENTS["second_line"])
    long = "RRMS, first-line therapy not tolerated: " + "x" * 110 + " (2002-2008 evidence)."
    summary = card_summary(_with_summary(rec, long, in_use=in_use))
    assert len(summary) < SUMMARY_LIMIT
    assert summary.endswith("… (2002-2008 evidence)")
    assert summary.startswith("On IVIG: RRMS") is in_use


def test_an_undated_summary_of_a_dated_tier_gets_the_date(evaluator: Evaluator) -> None:
    """A not_first_line summary that does not say how old its evidence is gets the date added."""
    rec = evaluator.evaluate(PATIENTS["not_first_line"])
    summary = card_summary(_with_summary(rec, "RRMS: first-line therapy came first.", in_use=False))
    assert summary == "RRMS: first-line therapy came first. (2002-2008 evidence)"
    spms = evaluator.evaluate(PATIENTS["not_recommended"])
    assert card_summary(spms) == spms.summary  # other tiers are not dated
