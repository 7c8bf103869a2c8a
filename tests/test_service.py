"""The CDS Hooks service, run for real with uvicorn on loopback and called over HTTP."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, Request

from ivig_cds import Evaluator
from ivig_cds.service import create_app
from ivig_cds.service.cards import EXTENSION_KEY
from tests.service_support import JSON, PV, TODAY, cards_of, request_file, serving

REPO = Path(__file__).resolve().parents[1]
AHRQ = REPO.parent / "shared" / "fixtures" / "ahrq-cds-hooks-r4"


@pytest.fixture(scope="module")
def app(evaluator: Evaluator) -> Any:
    return create_app(evaluator, today=lambda: TODAY)


@pytest.fixture(scope="module")
def client(app: Any) -> Iterator[httpx.Client]:
    with serving(app) as base, httpx.Client(base_url=base, timeout=20) as http:
        yield http


def test_discovery_lists_one_service_per_hook_with_prefetch(client: httpx.Client) -> None:
    """GET /cds-services describes patient-view, order-select and order-sign with templates."""
    services = client.get("/cds-services").json()["services"]
    assert {s["hook"]: s["id"] for s in services} == {
        "patient-view": "ivig-ms-patient-view",
        "order-select": "ivig-ms-order-select",
        "order-sign": "ivig-ms-order-sign",
    }
    prefetch = services[0]["prefetch"]
    assert prefetch["patient"] == "Patient/{{context.patientId}}"
    assert "http://loinc.org|82810-3" in prefetch["observations"]


def test_rrms_interferon_intolerant_gets_second_line_card_citing_meta_analysis(
    client: httpx.Client,
) -> None:
    """Done-when: RRMS intolerant of interferon-beta gets a second-line card citing 12453069."""
    (card,) = cards_of(
        client.post(PV, json=request_file("patient-view-rrms-interferon-intolerant"))
    )
    assert card["extension"][EXTENSION_KEY]["tier"] == "second_line"
    assert card["indicator"] == "info"
    assert card["source"]["url"] == "https://pubmed.ncbi.nlm.nih.gov/12453069/"
    assert "PMID [12453069]" in card["detail"]


def test_example_request_in_examples_folder_gets_the_same_card(client: httpx.Client) -> None:
    """The README's curl example request answers with the second-line card."""
    body = json.loads(
        (REPO / "examples" / "cds-hooks" / "rrms-interferon-intolerant.json").read_text()
    )
    (card,) = cards_of(client.post(PV, content=json.dumps(body), headers=JSON))
    assert card["extension"][EXTENSION_KEY]["primaryRule"] == "C02a"


def test_spms_ivig_draft_order_gets_warning_card_citing_esims(client: httpx.Client) -> None:
    """Done-when: an SPMS patient's IVIG draft order gets a warning card citing ESIMS."""
    response = client.post(
        "/cds-services/ivig-ms-order-sign", json=request_file("order-sign-spms-ivig")
    )
    (card,) = cards_of(response)
    assert card["indicator"] == "warning"
    assert card["source"]["url"] == "https://pubmed.ncbi.nlm.nih.gov/15451222/"
    assert card["extension"][EXTENSION_KEY]["order"] == "MedicationRequest/ivig-draft-1"


def test_an_ivig_order_asks_for_thrombotic_risk_factors(client: httpx.Client) -> None:
    """v3: signing an IVIG order with no thrombotic risk factor on record asks for them (on
    the card, as a question), although the same patient's chart view does not."""
    body = request_file("order-sign-spms-ivig")
    (card,) = cards_of(client.post("/cds-services/ivig-ms-order-sign", json=body))
    assert "thromboembolic_risk_factors" in card["extension"][EXTENSION_KEY]["missingData"]
    assert "thromboembolic risk factors" in card["detail"]
    chart = {**body, "hook": "patient-view", "context": {"patientId": body["context"]["patientId"]}}
    (card,) = cards_of(client.post(PV, json=chart))
    assert "thromboembolic_risk_factors" not in card["extension"][EXTENSION_KEY]["missingData"]


def test_a_patient_receiving_ivig_gets_a_card_that_leads_with_it(client: httpx.Client) -> None:
    """v3: IVIG given three weeks ago (a MedicationAdministration in the prefetch) makes the
    patient-view card lead with continuing IVIG, in its summary and at the top of its detail."""
    body = request_file("patient-view-rrms-interferon-intolerant")
    given = {
        "resourceType": "MedicationAdministration",
        "id": "ivig-given",
        "status": "completed",
        "subject": {"reference": f"Patient/{body['context']['patientId']}"},
        "effectiveDateTime": (TODAY - dt.timedelta(weeks=3)).isoformat(),
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}]
        },
    }
    body["prefetch"]["medicationAdministrations"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": given}],
    }
    (card,) = cards_of(client.post(PV, json=body))
    audit = card["extension"][EXTENSION_KEY]
    assert (audit["tier"], "K12a" in audit["cautions"]) == ("second_line", True)
    assert card["summary"].startswith("On IVIG: ")
    assert len(card["summary"]) < 140
    assert card["detail"].startswith("- **Continuing IVIG")


def test_order_select_without_ivig_selected_gives_no_card(client: httpx.Client) -> None:
    """Selecting amoxicillin (an IVIG draft elsewhere in the basket) gives no card."""
    body = request_file("order-select-spms-not-ivig")
    assert cards_of(client.post("/cds-services/ivig-ms-order-select", json=body)) == []


def test_order_select_with_ivig_selected_warns(client: httpx.Client) -> None:
    """Selecting the ATC-coded IVIG draft for an SPMS patient warns."""
    body = request_file("order-select-spms-ivig-selected")
    (card,) = cards_of(client.post("/cds-services/ivig-ms-order-select", json=body))
    assert card["indicator"] == "warning"


def test_ivig_order_while_first_line_suitable_warns(client: httpx.Client) -> None:
    """IVIG ordered for RRMS on tolerated glatiramer: not first line, so a warning."""
    body = request_file("order-sign-rrms-on-glatiramer-ivig")
    (card,) = cards_of(client.post("/cds-services/ivig-ms-order-sign", json=body))
    assert (card["indicator"], card["extension"][EXTENSION_KEY]["tier"]) == (
        "warning",
        "not_first_line",
    )


def test_conflicting_phenotypes_give_indeterminate_card_naming_resources(
    client: httpx.Client,
) -> None:
    """RRMS and PPMS on record: an info card asking for the phenotype, listing the conflict."""
    (card,) = cards_of(client.post(PV, json=request_file("patient-view-phenotype-conflict")))
    assert card["indicator"] == "info"
    assert "Condition/abc (RRMS) and Condition/def (PPMS)" in card["detail"]


def test_postpartum_patient_uses_the_pinned_date(client: httpx.Client) -> None:
    """Postpartum and breastfeeding from FHIR make IVIG a second-line option (C10)."""
    (card,) = cards_of(client.post(PV, json=request_file("patient-view-postpartum")))
    assert card["extension"][EXTENSION_KEY]["primaryRule"] == "C10a"


@pytest.mark.parametrize(
    "name", ["patient-view-missing-conditions", "patient-view-conditions-operationoutcome"]
)
def test_missing_required_prefetch_answers_412(client: httpx.Client, name: str) -> None:
    """Without conditions (absent, or an OperationOutcome) and no FHIR server: 412 with reasons."""
    response = client.post(PV, json=request_file(name))
    assert response.status_code == 412
    assert response.json()["problems"] == [
        "prefetch 'conditions' (Condition?patient={{context.patientId}}) is missing or null"
    ]


def test_identical_requests_get_identical_card_uuids(client: httpx.Client) -> None:
    """Card uuids are derived from the request, so a retry gets the same card."""
    body = request_file("order-sign-spms-ivig")
    first = cards_of(client.post("/cds-services/ivig-ms-order-sign", json=body))[0]["uuid"]
    again = cards_of(client.post("/cds-services/ivig-ms-order-sign", json=body))[0]["uuid"]
    assert first == again and uuid.UUID(first)


BAD_REQUESTS = [
    pytest.param(("POST", PV, b"{not json", JSON, 400, "not valid JSON"), id="invalid-json"),
    pytest.param(("POST", PV, b"[]", JSON, 400, "must be a JSON object"), id="array"),
    pytest.param(
        ("POST", PV, b"{}", {"Content-Type": "text/plain"}, 415, "application/json"), id="text"
    ),
    pytest.param(
        ("POST", PV, b'{"hook": "patient-view"}', JSON, 400, "CDS Hooks 2.0 shape"), id="shape"
    ),
    pytest.param(
        (
            "POST",
            PV,
            b'{"hook": "order-sign", "hookInstance": "x", "context": {"patientId": "1"}}',
            JSON,
            400,
            "answers the 'patient-view' hook",
        ),
        id="wrong-hook",
    ),
    pytest.param(
        (
            "POST",
            PV,
            b'{"hook": "patient-view", "hookInstance": "x", "context": {}}',
            JSON,
            400,
            "context.patientId is required",
        ),
        id="no-patient",
    ),
    pytest.param(
        (
            "POST",
            "/cds-services/ivig-ms-order-sign",
            b'{"hook": "order-sign", "hookInstance": "x", "context": {"patientId": "1"}}',
            JSON,
            400,
            "context.draftOrders is required",
        ),
        id="no-draft-orders",
    ),
    pytest.param(
        (
            "POST",
            "/cds-services/ivig-ms-order-sign",
            b'{"hook": "order-sign", "hookInstance": "x", "context": {"patientId": "1",'
            b' "draftOrders": [{"resourceType": "MedicationRequest"}]}}',
            JSON,
            400,
            "not a usable FHIR Bundle",
        ),
        id="bad-fhir",
    ),
    pytest.param(
        ("POST", "/cds-services/nope", b"{}", JSON, 404, "no CDS service 'nope'"), id="unknown"
    ),
    pytest.param(("GET", PV, b"", {}, 405, "method not allowed"), id="get-service"),
    pytest.param(
        ("POST", f"{PV}/feedback", b'{"feedback": []}', JSON, 400, "CDS Hooks 2.0 shape"),
        id="feedback-empty",
    ),
    pytest.param(
        (
            "POST",
            f"{PV}/feedback",
            b'{"feedback": [{"card": "x", "outcome": "ignored", "outcomeTimestamp": "t"}]}',
            JSON,
            400,
            "feedback.0.outcome",
        ),
        id="feedback-outcome",
    ),
]


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_requests_get_a_clear_4xx_json_error(
    client: httpx.Client, case: tuple[str, str, bytes, dict[str, str], int, str]
) -> None:
    """Every malformed request gets its 4xx status and a JSON error, never a traceback."""
    method, path, body, headers, status, message = case
    response = client.request(method, path, content=body, headers=headers)
    assert response.status_code == status
    payload = response.json()
    assert message in json.dumps(payload)
    assert "Traceback" not in response.text


def test_patient_data_is_not_echoed_in_errors(client: httpx.Client) -> None:
    """An invalid birth date is reported by field, without quoting the value."""
    body = request_file("patient-view-rrms-interferon-intolerant")
    body["prefetch"]["patient"]["birthDate"] = "Jane Roe, born 1988"
    response = client.post(PV, json=body)
    assert response.status_code == 400
    assert "Jane Roe" not in response.text
    assert "Patient/rrms-ifn: birthDate" in response.text


def test_oversized_body_is_refused_with_413(client: httpx.Client) -> None:
    """A body above 1 MiB is refused before it is parsed."""
    response = client.post(PV, content=b" " * ((1 << 20) + 1), headers=JSON)
    assert response.status_code == 413
    assert response.json() == {"error": "request body is larger than 1024 KiB"}


def test_feedback_is_accepted_and_kept(app: Any, client: httpx.Client) -> None:
    """The spec's feedback shape is accepted with 200 and recorded for the service."""
    response = client.post(f"{PV}/feedback", json=request_file("feedback-overridden"))
    assert response.status_code == 200
    last = app.state.recorder.rows["feedback"][-1]
    assert last["service"] == "ivig-ms-patient-view"
    assert (last["outcome"], last["override_code"]) == ("overridden", "specialist-decision")


def _ahrq_files() -> list[Path]:
    return sorted(AHRQ.glob("*.json")) if AHRQ.is_dir() else []


@pytest.mark.skipif(not AHRQ.is_dir(), reason=f"shared AHRQ fixtures not found at {AHRQ}")
@pytest.mark.parametrize("path", _ahrq_files(), ids=lambda p: p.stem)
def test_ahrq_requests_are_read_and_answered_correctly(client: httpx.Client, path: Path) -> None:
    """Real Synthea patient-view requests: no card (no MS), or 412 when conditions are absent."""
    body = json.loads(path.read_text())
    response = client.post(PV, json=body)
    if path.stem in ("missing_prefetch_keys_invocation", "null_prefetch_values_invocation"):
        assert response.status_code == 412
        assert "prefetch 'conditions'" in response.json()["problems"][0]
    else:
        assert cards_of(response) == []


# --- fetching from a configured FHIR server ---------------------------------------------------


def fake_fhir_server(bundle: dict[str, Any], seen: list[str]) -> FastAPI:
    resources = [e["resource"] for e in bundle["entry"]]
    fake = FastAPI()

    @fake.get("/fhir/{kind}")
    async def search(kind: str, request: Request) -> dict[str, Any]:
        seen.append(f"{kind} {request.headers.get('authorization')}")
        found = [r for r in resources if r["resourceType"] == kind]
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r} for r in found],
        }

    @fake.get("/fhir/Patient/{pid}")
    async def read(pid: str) -> dict[str, Any]:
        seen.append(f"Patient/{pid}")
        found: dict[str, Any] = next(r for r in resources if r["resourceType"] == "Patient")
        return found

    return fake


def test_configured_fhir_server_is_queried_for_missing_prefetch(evaluator: Evaluator) -> None:
    """With fhir_server configured, missing prefetch is fetched there with the given token."""
    fhir = json.loads((REPO / "tests" / "fixtures" / "fhir" / "spms.json").read_text())
    seen: list[str] = []
    with serving(fake_fhir_server(fhir, seen)) as fhir_base:
        service = create_app(evaluator, fhir_server=f"{fhir_base}/fhir", today=lambda: TODAY)
        with serving(service) as base, httpx.Client(base_url=base, timeout=20) as http:
            body = {
                "hook": "patient-view",
                "hookInstance": "f0f0f0f0-0000-4000-8000-000000000001",
                "fhirServer": f"{fhir_base}/fhir",
                "fhirAuthorization": {
                    "access_token": "opaque-token",
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "scope": "patient/*.read",
                    "subject": "ivig-cds",
                },
                "context": {"userId": "Practitioner/1", "patientId": "spms"},
            }
            (card,) = cards_of(http.post(PV, json=body))
            other = {**body, "fhirServer": "http://127.0.0.1:9/fhir"}
            refused = http.post(PV, json=other)
    assert card["extension"][EXTENSION_KEY]["tier"] == "not_recommended"
    assert "Patient/spms" in seen and "Condition Bearer opaque-token" in seen
    assert refused.status_code == 412
    assert len(seen) == 8  # one query per prefetch template, and none for the other server


# --- JWT ------------------------------------------------------------------------------------

ISSUER = "https://ehr.example.org"


@pytest.fixture(scope="module")
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def secured(
    evaluator: Evaluator, signing_key: ec.EllipticCurvePrivateKey
) -> Iterator[tuple[str, httpx.Client]]:
    public = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    app = create_app(evaluator, jwt_issuers={ISSUER: public.decode()}, today=lambda: TODAY)
    with serving(app) as base, httpx.Client(base_url=base, timeout=20) as http:
        yield base, http


def token(key: Any, audience: str, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "client", "aud": audience, "iat": now, "exp": now + 240}
    claims["jti"] = str(uuid.uuid4())
    claims.update(overrides)
    algorithm = "HS256" if isinstance(key, bytes) else "ES384"
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm=algorithm)


def test_valid_jwt_is_accepted(
    secured: tuple[str, httpx.Client], signing_key: ec.EllipticCurvePrivateKey
) -> None:
    """An ES384 JWT from the allowed issuer, aud = the endpoint, passes through to the card."""
    base, http = secured
    auth = {"Authorization": f"Bearer {token(signing_key, base + PV)}"}
    response = http.post(
        PV, json=request_file("patient-view-rrms-interferon-intolerant"), headers=auth
    )
    assert len(cards_of(response)) == 1


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("none", "a bearer JWT from an allowed CDS Client is required"),
        ("hmac", "asymmetric algorithm"),
        ("audience", "audience (aud) is not this service endpoint"),
        ("issuer", "issuer (iss) is not allowed"),
        ("expired", "the JWT has expired"),
        ("no-jti", "lacks the required claim 'jti'"),
        ("far-exp", "expires more than 5 minutes ahead"),
        ("other-key", "signature does not verify"),
        ("garbage", "not a well-formed JWT"),
    ],
)
def test_bad_jwts_are_refused_with_401(
    secured: tuple[str, httpx.Client],
    signing_key: ec.EllipticCurvePrivateKey,
    case: str,
    message: str,
) -> None:
    """Missing, symmetric, mis-addressed, foreign, expired or forged JWTs get 401."""
    base, http = secured
    aud = base + PV
    now = int(time.time())
    tokens: dict[str, Callable[[], str]] = {
        "hmac": lambda: token(b"shared-secret-that-is-long-enough-32b", aud),
        "audience": lambda: token(signing_key, "https://elsewhere.example/cds-services/x"),
        "issuer": lambda: token(signing_key, aud, iss="https://rogue.example"),
        "expired": lambda: token(signing_key, aud, iat=now - 900, exp=now - 600),
        "no-jti": lambda: token(signing_key, aud, jti=None),
        "far-exp": lambda: token(signing_key, aud, exp=now + 3600),
        "other-key": lambda: token(ec.generate_private_key(ec.SECP384R1()), aud),
        "garbage": lambda: "not.a.jwt",
    }
    headers = {"Authorization": f"Bearer {tokens[case]()}"} if case in tokens else {}
    response = http.post(
        PV, json=request_file("patient-view-rrms-interferon-intolerant"), headers=headers
    )
    assert response.status_code == 401
    assert message in response.json()["error"]


def test_replayed_jwt_is_refused(
    secured: tuple[str, httpx.Client], signing_key: ec.EllipticCurvePrivateKey
) -> None:
    """A jti used once cannot be used again."""
    base, http = secured
    auth = {"Authorization": f"Bearer {token(signing_key, base + PV)}"}
    body = request_file("patient-view-rrms-interferon-intolerant")
    assert http.post(PV, json=body, headers=auth).status_code == 200
    replay = http.post(PV, json=body, headers=auth)
    assert replay.status_code == 401 and "replay" in replay.json()["error"]
