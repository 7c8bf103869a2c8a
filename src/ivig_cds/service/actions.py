"""What a card lets the clinician do: remove a draft IVIG order, open the evidence.

Structure only; the card's words are `cards`'. A removal is suggested only on an order hook
when IVIG is `not_recommended` for what the order is for: the order's own question when its
reason names one (read by the FHIR adapter), otherwise only when every clinical question
the record leaves open gives `not_recommended` for this patient. `insufficient_evidence` and
`not_first_line` never get one: the clinician may have reasons the record does not show, and
the override reasons stay for them.
"""

from __future__ import annotations

import uuid
from typing import Any

from ivig_cds._errors import InvalidPatientError, IvigCdsError
from ivig_cds._evaluate import Evaluator
from ivig_cds._patient import PatientContext
from ivig_cds._patient_input import parse_patient
from ivig_cds._recommendation import Citation, Recommendation
from ivig_cds._vocabulary import IntendedUse, Tier
from ivig_cds.fhir import DraftOrder

__all__ = ["add_actions", "asked_by_order", "removal_warranted"]

_SUGGESTION_NAMESPACE = uuid.UUID("5d1b8f0a-7c2e-4a4b-9f65-0b7c1e2d3a40")


def asked_by_order(patient: PatientContext, order: DraftOrder | None) -> PatientContext:
    """The patient with the question the draft order's reason names (relapse, disease
    modification), unless the record already asks one or contradicts it."""
    if order is None or order.question is None or patient.intended_use is not None:
        return patient
    asked = {**patient.model_dump(mode="json", exclude_none=True), "intended_use": order.question}
    try:
        return parse_patient(asked)
    except InvalidPatientError:  # the record contradicts the reason: it keeps its own
        return patient


def removal_warranted(
    engine: Evaluator, patient: PatientContext, recommendation: Recommendation
) -> bool:
    """Whether to suggest removing the draft order.

    Args:
        engine: the evaluator that answered.
        patient: the patient it answered for; its `intended_use` is the order's question when
            the order's reason names one (`asked_by_order`).
        recommendation: its answer for the card.
    """
    if recommendation.tier is not Tier.NOT_RECOMMENDED:
        return False
    if patient.intended_use is not None:
        return True  # the card already answered the question the order is for
    asked_any = False
    for question in IntendedUse:
        try:
            asked = parse_patient(
                {**patient.model_dump(mode="json", exclude_none=True), "intended_use": question}
            )
        except InvalidPatientError:
            continue  # the record rules this question out (e.g. a relapse, with none on record)
        try:
            tier = engine.evaluate(asked).tier
        except IvigCdsError:
            return False  # the engine could not answer: stay silent rather than guess
        if tier is not Tier.NOT_RECOMMENDED:
            return False
        asked_any = True
    return asked_any


def add_actions(
    card: dict[str, Any],
    recommendation: Recommendation,
    *,
    remove_order: str | None = None,
    report_url: str | None = None,
) -> dict[str, Any]:
    """Add links (PubMed for each cited work; the rule's report page) and, when
    `remove_order` names the draft order, a single delete suggestion."""
    links = [_pubmed_link(c) for c in recommendation.citations if c.url]
    if report_url:
        rule = recommendation.primary_rule
        links.append(
            {
                "label": f"Rule {rule} in the IVIG-CDS knowledge-base report",
                "url": f"{report_url.rstrip('/')}/rules/{rule}.html",
                "type": "absolute",
            }
        )
    if links:
        card["links"] = links
    if remove_order:
        card["suggestions"] = [
            {
                "label": "Remove the draft IVIG order",
                "uuid": str(uuid.uuid5(_SUGGESTION_NAMESPACE, f"{card['uuid']}|{remove_order}")),
                "actions": [
                    {
                        "type": "delete",
                        "description": "Remove the draft IVIG order from this order session.",
                        "resourceId": remove_order,
                    }
                ],
            }
        ]
        card["selectionBehavior"] = "at-most-one"
    return card


def _pubmed_link(c: Citation) -> dict[str, str]:
    author = f"{c.authors[0]} et al." if len(c.authors) > 1 else (c.authors[0] if c.authors else "")
    year = f" {c.year}" if c.year else ""
    who = f"{author}{year}: " if author else ""
    return {"label": f"{who}PubMed {c.pmid}", "url": c.url or "", "type": "absolute"}
