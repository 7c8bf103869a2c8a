"""JWT per CDS Hooks 2.0, replaying what the sandbox sends: ES384 tokens with kid, jku and aud
equal to the URL called, on discovery, services and feedback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI

from ivig_cds import Evaluator
from ivig_cds.service import create_app
from ivig_cds.service.jti import shared_file_memory
from tests.service_support import PV, TODAY, cards_of, es384_token, request_file, serving

ISSUER = "https://sandbox.cds-hooks.org"
KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"  # the kid the sandbox sends


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def jwks_app(keys: list[tuple[str, ec.EllipticCurvePrivateKey]], hits: list[str]) -> FastAPI:
    """A stand-in for the sandbox's /.well-known/jwks.json, counting its readers."""
    app = FastAPI()
    document = {
        "keys": [
            {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(k.public_key())), "kid": kid}
            for kid, k in keys
        ]
    }

    @app.get("/.well-known/jwks.json")
    async def jwks() -> dict[str, Any]:
        hits.append("jwks")
        return document

    return app


@pytest.fixture(scope="module")
def jwks_url(key: ec.EllipticCurvePrivateKey) -> Iterator[str]:
    with serving(jwks_app([(KID, key)], [])) as base:
        yield f"{base}/.well-known/jwks.json"


@pytest.fixture(scope="module")
def secured(evaluator: Evaluator, jwks_url: str) -> Iterator[tuple[str, httpx.Client]]:
    app = create_app(evaluator, jwt_jku={ISSUER: [jwks_url]}, today=lambda: TODAY)
    with serving(app) as base, httpx.Client(base_url=base, timeout=20) as http:
        yield base, http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_sandbox_flow_preflight_discovery_card_feedback(
    secured: tuple[str, httpx.Client], key: ec.EllipticCurvePrivateKey, jwks_url: str
) -> None:
    """Preflight needs no token; discovery, patient-view and feedback each accept an ES384
    token whose kid is in the allow-listed jku and whose aud is exactly the URL called."""
    base, http = secured
    head = {"kid": KID, "jku": jwks_url}
    preflight = http.options(
        PV,
        headers={
            "Origin": ISSUER,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    discovery = http.get(
        "/cds-services", headers=bearer(es384_token(key, ISSUER, base + "/cds-services", head))
    )
    (card,) = cards_of(
        http.post(
            PV,
            json=request_file("patient-view-postpartum"),
            headers=bearer(es384_token(key, ISSUER, base + PV, head)),
        )
    )
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {k: card["overrideReasons"][1][k] for k in ("code", "system")}
                },
                "outcomeTimestamp": "2026-11-30T10:00:00Z",
            }
        ]
    }
    answered = http.post(
        f"{PV}/feedback",
        json=feedback,
        headers=bearer(es384_token(key, ISSUER, f"{base}{PV}/feedback", head)),
    )
    assert [preflight.status_code, discovery.status_code, answered.status_code] == [200] * 3


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-token-discovery", "a bearer JWT from an allowed CDS Client is required"),
        ("feedback-aud-is-service", "audience (aud) is not this service endpoint"),
        ("unknown-kid", "no key of the issuer matches the JWT's kid"),
        ("alg-none", "'none' is refused"),
        ("hmac", "'HS256' is refused"),
        ("other-issuer", "issuer (iss) is not allowed"),
    ],
)
def test_refusals_are_401_with_a_clear_reason(
    secured: tuple[str, httpx.Client],
    key: ec.EllipticCurvePrivateKey,
    jwks_url: str,
    case: str,
    message: str,
) -> None:
    """Each way a token can be wrong gets 401, its own sentence and WWW-Authenticate."""
    base, http = secured
    head = {"kid": KID, "jku": jwks_url}
    path, token = {
        "no-token-discovery": ("/cds-services", None),
        "feedback-aud-is-service": (
            f"{PV}/feedback",
            es384_token(key, ISSUER, base + PV, head),
        ),
        "unknown-kid": (PV, es384_token(key, ISSUER, base + PV, {**head, "kid": "other"})),
        "alg-none": (
            PV,
            jwt.encode({"iss": ISSUER, "aud": base + PV}, None, algorithm="none"),
        ),
        "hmac": (PV, es384_token(b"a-shared-secret-of-32-bytes-long!", ISSUER, base + PV)),
        "other-issuer": (PV, es384_token(key, "https://rogue.example", base + PV, head)),
    }[case]
    headers = bearer(token) if token else {}
    if path == "/cds-services":
        response = http.get(path, headers=headers)
    else:
        response = http.post(path, json=request_file("patient-view-postpartum"), headers=headers)
    assert response.status_code == 401
    assert message in response.json()["error"]
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_jku_off_the_allow_list_is_never_fetched(
    evaluator: Evaluator, key: ec.EllipticCurvePrivateKey, jwks_url: str
) -> None:
    """A token naming another JWK Set URL is refused and that URL is never contacted."""
    hits: list[str] = []
    rogue = ec.generate_private_key(ec.SECP384R1())
    app = create_app(evaluator, jwt_jku={ISSUER: [jwks_url]}, today=lambda: TODAY)
    with (
        serving(jwks_app([(KID, rogue)], hits)) as rogue_base,
        serving(app) as base,
        httpx.Client(base_url=base, timeout=20) as http,
    ):
        head = {"kid": KID, "jku": f"{rogue_base}/.well-known/jwks.json"}
        response = http.get(
            "/cds-services",
            headers=bearer(es384_token(rogue, ISSUER, base + "/cds-services", head)),
        )
    assert response.status_code == 401
    assert "jku is not on this service's allow-list" in response.json()["error"]
    assert hits == []


def test_health_needs_no_token(secured: tuple[str, httpx.Client]) -> None:
    """Load balancers probe /health without credentials."""
    _, http = secured
    assert http.get("/health").status_code == 200


def test_a_jti_used_on_one_worker_is_refused_by_another(
    evaluator: Evaluator, key: ec.EllipticCurvePrivateKey, jwks_url: str, tmp_path: Path
) -> None:
    """Two apps (as two worker processes) sharing the jti file: a replay to the second fails."""
    shared = str(tmp_path / "jti.sqlite3")
    memories = [shared_file_memory(shared) for _ in range(2)]
    apps = [
        create_app(
            evaluator,
            jwt_jku={ISSUER: [jwks_url]},
            jti_memory=memory,
            public_base_url="https://cds.example.org",
            today=lambda: TODAY,
        )
        for memory in memories
    ]
    token = es384_token(
        key, ISSUER, "https://cds.example.org/cds-services", {"kid": KID, "jku": jwks_url}
    )
    with serving(apps[0]) as first, serving(apps[1]) as second:
        once = httpx.get(f"{first}/cds-services", headers=bearer(token), timeout=20)
        again = httpx.get(f"{second}/cds-services", headers=bearer(token), timeout=20)
    for memory in memories:
        memory.close()
    assert once.status_code == 200
    assert (again.status_code, again.json()["error"]) == (
        401,
        "the JWT was already used (jti replay)",
    )
