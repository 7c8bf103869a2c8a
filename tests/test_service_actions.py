"""Actionable cards: remove a draft IVIG order only when IVIG is not recommended for what it is
for; links to PubMed and the report; and the CDS Hooks invariants on every card."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivig_cds import Evaluator, PatientContext, Tier
from ivig_cds.fhir import DraftOrder
from ivig_cds.service import card_for, create_app
from ivig_cds.service.actions import add_actions, asked_by_order, removal_warranted
from tests.service_support import PV, TODAY, cards_of, request_file, serving
from tests.strategies import patients

OS = "/cds-services/ivig-ms-order-sign"
REPORT = "https://kb.example.org/ivig-report"


@pytest.fixture(scope="module")
def client(evaluator: Evaluator) -> Iterator[httpx.Client]:
    app = create_app(evaluator, report_url=REPORT + "/", today=lambda: TODAY)
    with serving(app) as base, httpx.Client(base_url=base, timeout=20) as http:
        yield http


def test_spms_ivig_order_gets_one_delete_suggestion(client: httpx.Client) -> None:
    """SPMS: IVIG is not recommended for any question, so the draft order may be removed:
    one suggestion, one delete action with the order's resourceId, at-most-one."""
    (card,) = cards_of(client.post(OS, json=request_file("order-sign-spms-ivig")))
    (suggestion,) = card["suggestions"]
    assert suggestion["actions"] == [
        {
            "type": "delete",
            "description": "Remove the draft IVIG order from this order session.",
            "resourceId": "MedicationRequest/ivig-draft-1",
        }
    ]
    assert card["selectionBehavior"] == "at-most-one"
    assert suggestion["uuid"] and card["overrideReasons"]


@pytest.mark.parametrize(
    ("path", "name", "tier"),
    [
        (OS, "order-sign-rrms-on-glatiramer-ivig", "not_first_line"),
        (PV, "patient-view-postpartum", "second_line"),
    ],
)
def test_no_suggestion_unless_not_recommended_on_an_order(
    client: httpx.Client, path: str, name: str, tier: str
) -> None:
    """not_first_line on an order, or any chart view: no suggestion, override reasons stay."""
    (card,) = cards_of(client.post(path, json=request_file(name)))
    assert card["extension"]["org.ivig-cds"]["tier"] == tier
    assert "suggestions" not in card and "selectionBehavior" not in card
    assert card["overrideReasons"]


def test_links_go_to_pubmed_and_the_rule_page(client: httpx.Client) -> None:
    """Each cited work with a PMID links to PubMed; the rule links to its report page."""
    (card,) = cards_of(client.post(OS, json=request_file("order-sign-spms-ivig")))
    rule = card["extension"]["org.ivig-cds"]["primaryRule"]
    urls = [link["url"] for link in card["links"]]
    assert "https://pubmed.ncbi.nlm.nih.gov/15451222/" in urls
    assert urls[-1] == f"{REPORT}/rules/{rule}.html"
    assert all(link["type"] == "absolute" and link["label"] for link in card["links"])


def test_removal_needs_every_open_question_not_recommended(evaluator: Evaluator) -> None:
    """PPMS for fixed deficits is not_recommended, but for disease modification it is
    insufficient evidence: an order without a reason gets no removal; an order whose reason
    names the question that is not recommended does."""
    patient = PatientContext.model_validate({"ms_phenotype": "PPMS"})
    assert not removal_warranted(evaluator, patient, evaluator.evaluate(patient))
    asked = PatientContext.model_validate(
        {"ms_phenotype": "PPMS", "intended_use": "fixed_deficits"}
    )
    rec = evaluator.evaluate(asked)
    assert rec.tier is Tier.NOT_RECOMMENDED
    assert removal_warranted(evaluator, asked, rec)


def test_a_question_the_record_rules_out_is_not_asked(evaluator: Evaluator) -> None:
    """SPMS with no relapse: the relapse question cannot be what the order is for; the
    other questions are all not_recommended, so removal is suggested."""
    patient = PatientContext.model_validate({"ms_phenotype": "SPMS", "acute_relapse": False})
    assert removal_warranted(evaluator, patient, evaluator.evaluate(patient))


def test_insufficient_evidence_never_suggests_removal(evaluator: Evaluator) -> None:
    """PPMS, disease modification: insufficient evidence, no removal even when asked."""
    patient = PatientContext.model_validate(
        {"ms_phenotype": "PPMS", "intended_use": "disease_modifying"}
    )
    rec = evaluator.evaluate(patient)
    assert rec.tier is Tier.INSUFFICIENT_EVIDENCE
    assert not removal_warranted(evaluator, patient, rec)


@pytest.mark.parametrize(
    ("record", "question", "asked"),
    [
        ({"ms_phenotype": "RRMS"}, "acute_relapse", "acute_relapse"),
        ({"ms_phenotype": "RRMS"}, None, None),
        ({"ms_phenotype": "RRMS", "acute_relapse": False}, "acute_relapse", None),
        ({"ms_phenotype": "RRMS", "intended_use": "fixed_deficits"}, "acute_relapse",
         "fixed_deficits"),
    ],
)  # fmt: skip
def test_the_order_reason_asks_its_question_unless_the_record_decides(
    record: dict[str, Any], question: str | None, asked: str | None
) -> None:
    """The reason's question is asked, except when the record contradicts it or asks its own."""
    order = DraftOrder("MedicationRequest/1", "draft", "order", question, False)
    patient = asked_by_order(PatientContext.model_validate(record), order)
    assert (patient.intended_use.value if patient.intended_use else None) == asked


def check_invariants(card: dict[str, Any]) -> None:
    """The CDS Hooks 2.0 card rules this service must keep."""
    assert len(card["summary"]) < 140
    assert card["indicator"] in ("info", "warning", "critical")
    assert card["source"]["label"]
    for reason in card.get("overrideReasons", []):
        assert reason["display"] and reason["code"] and reason["system"]
    if card.get("suggestions"):
        assert card["selectionBehavior"] in ("at-most-one", "any")
        for suggestion in card["suggestions"]:
            assert suggestion["label"] and suggestion["uuid"]
            if card["selectionBehavior"] == "at-most-one":
                assert len(suggestion["actions"]) == 1
            for action in suggestion["actions"]:
                assert action["type"] in ("create", "update", "delete") and action["description"]
                if action["type"] == "delete":
                    assert isinstance(action["resourceId"], str)
                    assert action["resourceId"].count("/") == 1 and "resource" not in action
    else:
        assert "selectionBehavior" not in card
    for link in card.get("links", []):
        assert link["label"] and link["type"] == "absolute"
        assert link["url"].startswith("https://")


@settings(max_examples=300, deadline=None)
@given(data=patients(), ordering=st.booleans(), report=st.booleans())
def test_every_card_keeps_the_specification_invariants(
    evaluator: Evaluator, data: dict[str, Any], ordering: bool, report: bool
) -> None:
    """Any patient, chart or order, with or without report links: a well-formed card."""
    patient = PatientContext.model_validate(data)
    rec = evaluator.evaluate(patient)
    order = "MedicationRequest/draft-1" if ordering else None
    card = card_for(rec, service_id="s", hook_instance="h", ordering=ordering, order=order)
    if card is None:
        assert rec.tier is Tier.NOT_APPLICABLE
        return
    remove = ordering and removal_warranted(evaluator, patient, rec)
    add_actions(card, rec, remove_order=order if remove else None,
                report_url=REPORT if report else None)  # fmt: skip
    check_invariants(card)
    if remove:
        assert rec.tier is Tier.NOT_RECOMMENDED
