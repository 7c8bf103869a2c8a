"""What a browser-based CDS client (the CDS Hooks sandbox) needs: CORS, health, lenient
feedback, and a request log that never carries a patient identifier or a clinical fact."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ivig_cds import Evaluator
from ivig_cds.service import create_app
from ivig_cds.service.logs import LOGGER_NAME, configure_logging
from tests.service_support import PV, TODAY, cards_of, request_file, serving

SANDBOX = "https://sandbox.cds-hooks.org"
PREFLIGHT = {
    "Origin": SANDBOX,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}
PATHS = ["/cds-services", PV, f"{PV}/feedback", "/cds-services/ivig-ms-order-sign/feedback"]


@pytest.fixture(scope="module")
def app(evaluator: Evaluator) -> Any:
    return create_app(evaluator, today=lambda: TODAY)


@pytest.fixture(scope="module")
def client(app: Any) -> Iterator[httpx.Client]:
    with serving(app) as base, httpx.Client(base_url=base, timeout=20) as http:
        yield http


@pytest.mark.parametrize("path", PATHS)
def test_preflight_is_answered_for_discovery_services_and_feedback(
    client: httpx.Client, path: str
) -> None:
    """The sandbox's OPTIONS preflight gets 200 allowing its origin, POST and both headers."""
    response = client.options(path, headers=PREFLIGHT)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed


def test_responses_carry_cors_headers_including_errors(client: httpx.Client) -> None:
    """Discovery, a card and a 4xx error all let the browser read them."""
    origin = {"Origin": SANDBOX}
    ok = client.get("/cds-services", headers=origin)
    card = client.post(PV, json=request_file("patient-view-postpartum"), headers=origin)
    error = client.post(PV, content=b"{", headers={**origin, "Content-Type": "application/json"})
    assert [r.status_code for r in (ok, card, error)] == [200, 200, 400]
    assert {r.headers.get("access-control-allow-origin") for r in (ok, card, error)} == {"*"}


def test_listed_origins_only_when_cors_origin_is_given(evaluator: Evaluator) -> None:
    """With `cors_origins`, a listed origin is echoed and another is refused at preflight."""
    app = create_app(evaluator, cors_origins=[SANDBOX], today=lambda: TODAY)
    with serving(app) as base, httpx.Client(base_url=base, timeout=20) as http:
        allowed = http.options(PV, headers=PREFLIGHT)
        refused = http.options(PV, headers={**PREFLIGHT, "Origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == SANDBOX
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


def test_health_reports_knowledge_base_and_store_state(
    client: httpx.Client, evaluator: Evaluator
) -> None:
    """GET /health: 200, the knowledge base's version and hash, and where records go."""
    response = client.get("/health")
    kb = evaluator.knowledge_base
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "knowledgeBase": {"name": kb.manifest.name, "version": kb.version, "hash": kb.content_hash},
        "store": "memory",
    }


def test_sandbox_override_without_display_is_accepted(app: Any, client: httpx.Client) -> None:
    """The sandbox sends overrideReason.reason with code and system only: 200, recorded."""
    (card,) = cards_of(client.post(PV, json=request_file("patient-view-postpartum")))
    reason = card["overrideReasons"][0]
    body = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {"reason": {"code": reason["code"], "system": reason["system"]}},
                "outcomeTimestamp": "2026-11-30T10:00:00Z",
            }
        ]
    }
    response = client.post(f"{PV}/feedback", json=body)
    assert (response.status_code, response.json()) == (200, {})
    last = app.state.recorder.rows["feedback"][-1]
    assert (last["card_uuid"], last["known_card"], last["override_code"]) == (
        card["uuid"],
        True,
        reason["code"],
    )


def test_feedback_on_an_unknown_card_is_answered_200_and_recorded_as_unknown(
    app: Any, client: httpx.Client
) -> None:
    """A card uuid this service never issued is still 200, recorded with known_card False."""
    body = {
        "feedback": [
            {
                "card": "00000000-0000-4000-8000-00000000dead",
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": "x"}],
                "outcomeTimestamp": "2026-11-30T10:00:00Z",
            }
        ]
    }
    assert client.post(f"{PV}/feedback", json=body).status_code == 200
    last = app.state.recorder.rows["feedback"][-1]
    assert (last["known_card"], last["outcome"], last["accepted_suggestions"]) == (
        False,
        "accepted",
        [{"id": "x"}],
    )


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_one_log_line_per_request_without_patient_data(
    evaluator: Evaluator, log_format: str
) -> None:
    """A hook call logs hook, service, hookInstance, status, latency and tiers, and no id,
    birth date or diagnosis from the request."""
    configure_logging("json" if log_format == "json" else "text", "info")
    logger = logging.getLogger(LOGGER_NAME)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        app = create_app(evaluator, today=lambda: TODAY)
        body = request_file("patient-view-postpartum")
        with serving(app) as base, httpx.Client(base_url=base, timeout=20) as http:
            cards_of(http.post(PV, json=body))
            http.get("/health")
    finally:
        logger.removeHandler(handler)
    formatted = [logger.handlers[0].format(r) for r in records]
    assert len(formatted) == 2
    call = records[0].fields  # type: ignore[attr-defined]
    assert {k: call[k] for k in ("endpoint", "service", "hook", "hookInstance", "status")} == {
        "endpoint": "service",
        "service": "ivig-ms-patient-view",
        "hook": "patient-view",
        "hookInstance": body["hookInstance"],
        "status": 200,
    }
    assert call["cards"] == ["second_line"] and call["latencyMs"] > 0
    patient = body["prefetch"]["patient"]
    for line in formatted:
        assert body["context"]["patientId"] not in line
        assert patient["birthDate"] not in line
        assert "postpartum" not in line.lower() and "multiple sclerosis" not in line.lower()
    if log_format == "json":
        assert json.loads(formatted[1])["endpoint"] == "health"
    else:
        assert "endpoint=health" in formatted[1]


def test_a_preflight_log_line_names_what_was_preflighted(evaluator: Evaluator) -> None:
    """A refused browser call can be traced: each preflight's line says which endpoint it was
    for, and an origin refused by `--cors-origin` shows as a 400 there."""
    configure_logging("json", "info")
    logger = logging.getLogger(LOGGER_NAME)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        app = create_app(evaluator, today=lambda: TODAY, cors_origins=["https://ehr.example"])
        with serving(app) as base, httpx.Client(base_url=base, timeout=20) as http:
            for path in ("/cds-services", PV, f"{PV}/feedback"):
                http.options(path, headers=PREFLIGHT)
    finally:
        logger.removeHandler(handler)
    lines = [r.fields for r in records]  # type: ignore[attr-defined]
    assert [(f["endpoint"], f["target"], f["status"]) for f in lines] == [
        ("preflight", "discovery", 400),
        ("preflight", "ivig-ms-patient-view", 400),
        ("preflight", "ivig-ms-patient-view/feedback", 400),
    ]
