"""Draft orders read leniently: specification-shaped requests get an answer, reasons count."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ivig_cds import Evaluator
from ivig_cds.fhir import (
    DraftOrder,
    FhirDataError,
    evaluate_fhir,
    patient_from_fhir,
    read_draft_orders,
)
from ivig_cds.service import create_app
from ivig_cds.service.cards import EXTENSION_KEY
from tests.fhir_records import ICD10CM, SCT
from tests.service_support import serving

HOOKS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "cds-hooks"
SIGN = "/cds-services/ivig-ms-order-sign"
RELAPSE = (SCT, "192929006", "Exacerbation of multiple sclerosis")


def spec_shaped_request() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HOOKS / "order-sign-spec-shape-with-ivig.json").read_text())
    return data


def ivig_entry(request: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = request["context"]["draftOrders"]["entry"][2]["resource"]
    return entry


@pytest.fixture(scope="module")
def client(evaluator: Evaluator) -> Iterator[httpx.Client]:
    app = create_app(evaluator, today=lambda: dt.date(2026, 11, 22))
    with serving(app) as base, httpx.Client(base_url=base, timeout=20) as http:
        yield http


def test_spec_shaped_draft_orders_are_read_without_complaint_about_unused_fields() -> None:
    """The specification's shape (Bundle without type, NutritionOrder without intent,
    doseQuantity in the dosage, doseAndRate as an object) yields the IVIG order, no problems."""
    orders = read_draft_orders(spec_shaped_request()["context"]["draftOrders"])
    assert orders.ivig == (
        DraftOrder(
            reference="MedicationRequest/ivig-draft-7",
            status="draft",
            intent="order",
            question=None,
            other_indication=False,
        ),
    )
    assert orders.problems == ()


def test_spec_shaped_order_sign_request_gets_a_card(client: httpx.Client) -> None:
    """The same request through the service: a second_line card about the IVIG order (C02a)."""
    response = client.post(SIGN, json=spec_shaped_request())
    assert response.status_code == 200, response.text
    (card,) = response.json()["cards"]
    assert card["extension"][EXTENSION_KEY]["primaryRule"] == "C02a"
    assert card["extension"][EXTENSION_KEY]["tier"] == "second_line"


def test_a_malformed_unrelated_order_does_not_block_the_answer(client: httpx.Client) -> None:
    """A MedicationRequest with a nonsense status and codings that are not objects is
    reported, not fatal: the IVIG order still gets its card."""
    request = spec_shaped_request()
    amoxicillin = request["context"]["draftOrders"]["entry"][1]["resource"]
    amoxicillin["status"] = "bogus"
    amoxicillin["medicationCodeableConcept"]["coding"] = ["617993"]
    orders = read_draft_orders(request["context"]["draftOrders"])
    assert [o.reference for o in orders.ivig] == ["MedicationRequest/ivig-draft-7"]
    assert orders.problems == (
        "MedicationRequest/amoxicillin-draft: medicationCodeableConcept coding 0 has no text "
        "system and code; not read",
    )
    (card,) = client.post(SIGN, json=request).json()["cards"]
    assert card["extension"][EXTENSION_KEY]["tier"] == "second_line"


def test_an_ivig_order_for_cidp_gets_no_ms_card(client: httpx.Client) -> None:
    """reasonCode CIDP (ICD-10-CM G61.81): another indication, so no MS card."""
    request = spec_shaped_request()
    ivig_entry(request)["reasonCode"] = [
        {"coding": [{"system": ICD10CM, "code": "G61.81", "display": "CIDP"}]}
    ]
    (order,) = read_draft_orders(request["context"]["draftOrders"]).ivig
    assert order.other_indication and order.question is None
    assert client.post(SIGN, json=request).json() == {"cards": []}


def test_an_ivig_order_for_a_relapse_answers_the_relapse_question(client: httpx.Client) -> None:
    """reasonReference to a contained relapse Condition: the acute-relapse question is asked."""
    request = spec_shaped_request()
    order = ivig_entry(request)
    order["contained"] = [
        {
            "resourceType": "Condition",
            "id": "why",
            "code": {"coding": [{"system": RELAPSE[0], "code": RELAPSE[1]}]},
            "subject": {"reference": "Patient/rrms-ifn"},
        }
    ]
    order["reasonReference"] = [{"reference": "#why"}]
    (draft,) = read_draft_orders(request["context"]["draftOrders"]).ivig
    assert draft.question == "acute_relapse"
    (card,) = client.post(SIGN, json=request).json()["cards"]
    assert card["extension"][EXTENSION_KEY]["question"] == "acute_relapse"


def test_an_unresolvable_reason_reference_is_reported() -> None:
    """A reasonReference to a Condition not in the request is reported; the question stays open."""
    request = spec_shaped_request()
    ivig_entry(request)["reasonReference"] = [{"reference": "Condition/elsewhere"}]
    orders = read_draft_orders(request["context"]["draftOrders"])
    assert orders.ivig[0].question is None
    assert orders.problems == (
        "MedicationRequest/ivig-draft-7: reasonReference 0 is not a Condition in the request; "
        "reason not read",
    )


@pytest.mark.parametrize(
    ("draft_orders", "message"),
    [
        ([], "draftOrders: expected a FHIR Bundle (a JSON object), got list"),
        ({"entry": []}, "draftOrders: no resourceType; expected a FHIR Bundle"),
        ({"resourceType": "Bundle", "entry": {}}, "draftOrders: Bundle.entry must be a list"),
    ],
)
def test_draft_orders_that_are_not_a_bundle_are_refused(draft_orders: object, message: str) -> None:
    """Only a draftOrders value with no resources to read at all is an error."""
    with pytest.raises(FhirDataError) as caught:
        read_draft_orders(draft_orders)
    assert caught.value.problems == [message]


def test_a_record_without_ms_gets_no_card_and_not_applicable_from_the_library(
    client: httpx.Client, evaluator: Evaluator
) -> None:
    """No MS-family diagnosis in the prefetch: the service shows no card, and the library says
    not_applicable (C12) with 'no MS diagnosis on record' in the mapping notes."""
    request = copy.deepcopy(spec_shaped_request())
    conditions = request["prefetch"]["conditions"]
    conditions["entry"][0]["resource"]["code"] = {
        "coding": [{"system": ICD10CM, "code": "G61.81", "display": "CIDP"}]
    }
    assert client.post(SIGN, json=request).json() == {"cards": []}
    patient_view = {**request, "hook": "patient-view"}
    del patient_view["context"]["draftOrders"]
    assert client.post("/cds-services/ivig-ms-patient-view", json=patient_view).json() == {
        "cards": []
    }
    mapping = patient_from_fhir(request["prefetch"], as_of=dt.date(2026, 11, 22))
    assert any(n.startswith("no MS diagnosis on record") for n in mapping.notes)
    result = evaluate_fhir(request["prefetch"], evaluator=evaluator, as_of=dt.date(2026, 11, 22))
    assert (result.tier.value, result.primary_rule) == ("not_applicable", "C12")
