"""Helpers for the service tests: run an app on loopback, read request fixtures, sign tokens."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import uvicorn

from ivig_cds.service.server import NoDelayH11Protocol

REPO = Path(__file__).resolve().parents[1]
HOOKS = REPO / "tests" / "fixtures" / "cds-hooks"
TODAY = dt.date(2026, 11, 22)
JSON = {"Content-Type": "application/json"}
PV = "/cds-services/ivig-ms-patient-view"


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run `app` with uvicorn in a thread on a free loopback port; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # NoDelayH11Protocol: with a socket handed in, asyncio leaves Nagle on and every keep-alive
    # response waits ~40 ms for the client's delayed ACK (as under `serve --workers`).
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", ws="none", http=NoDelayH11Protocol
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def request_file(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HOOKS / f"{name}.json").read_text())
    return data


def cards_of(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    cards: list[dict[str, Any]] = response.json()["cards"]
    return cards


def es384_token(
    key: Any, issuer: str, audience: str, headers: dict[str, Any] | None = None, **claims: Any
) -> str:
    """A token shaped like the CDS Hooks sandbox's (its jwt-generator.js): ES384 with typ, kid
    and jku in the header; iss, aud, exp (+300 s), iat and jti in the body."""
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "exp": now + 300,
        "iat": now,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    algorithm = "HS256" if isinstance(key, bytes) else "ES384"
    return jwt.encode(body, key, algorithm=algorithm, headers=headers)
