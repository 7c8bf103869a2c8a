"""The CDS Hooks 2.0 service: discovery, one service per hook, and feedback.

    GET  /cds-services                      discovery, with prefetch templates
    POST /cds-services/{id}                 patient-view, order-select, order-sign
    POST /cds-services/{id}/feedback        what the clinician did with a card

Every error is a small JSON object (`{"error": ..., "problems": [...]}`) with a 4xx status;
no stack trace and no patient data leave the service. Prefetch is the only data source unless
the service is configured with a FHIR server, and then only that server is ever called.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx
import jwt
import uvicorn
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ivig_cds._cards import card_for
from ivig_cds._errors import InvalidPatientError
from ivig_cds._evaluate import Evaluator, default_evaluator
from ivig_cds._patient import parse_patient
from ivig_cds.fhir import (
    DraftOrder,
    FhirDataError,
    default_code_tables,
    patient_from_fhir,
    read_draft_orders,
)

__all__ = ["MAX_BODY_BYTES", "SERVICES", "create_app", "run"]

MAX_BODY_BYTES = 1 << 20
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
)
_JWT_LEEWAY_SECONDS = 30
_JWT_MAX_LIFETIME_SECONDS = 300  # the specification: exp no more than 5 minutes ahead
_FETCH_TIMEOUT_SECONDS = 5.0

_P = "{{context.patientId}}"


def _prefetch_templates() -> dict[str, str]:
    codes = default_code_tables()
    observed = ",".join(f"{e.system}|{e.code}" for e in codes.entries("observation_kind"))
    deliveries = ",".join(f"{e.system}|{e.code}" for e in codes.entries("delivery"))
    return {
        "patient": f"Patient/{_P}",
        "conditions": f"Condition?patient={_P}",
        "observations": f"Observation?patient={_P}&code={observed}",
        "medicationStatements": f"MedicationStatement?patient={_P}",
        "medicationRequests": f"MedicationRequest?patient={_P}",
        "allergies": f"AllergyIntolerance?patient={_P}",
        "procedures": f"Procedure?patient={_P}&code={deliveries}",
    }


# Without these the service cannot tell whether the patient has MS at all.
REQUIRED_PREFETCH = {"patient": "Patient", "conditions": "Condition"}


@dataclass(frozen=True, slots=True)
class Service:
    id: str
    hook: Literal["patient-view", "order-select", "order-sign"]
    title: str
    description: str


SERVICES: tuple[Service, ...] = (
    Service(
        "ivig-ms-patient-view",
        "patient-view",
        "IVIG in multiple sclerosis",
        "When a chart with multiple sclerosis opens: does IVIG have a role for this patient, "
        "and on what evidence?",
    ),
    Service(
        "ivig-ms-order-select",
        "order-select",
        "IVIG order check in multiple sclerosis",
        "When IVIG is selected for a patient with multiple sclerosis: what the evidence says.",
    ),
    Service(
        "ivig-ms-order-sign",
        "order-sign",
        "IVIG order check in multiple sclerosis",
        "Before an IVIG order is signed for a patient with multiple sclerosis: what the "
        "evidence says.",
    ),
)


class ApiError(Exception):
    """An error answered as JSON with `status`; `problems` never quote patient data."""

    def __init__(self, status: int, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = list(problems)


class _FhirAuthorization(BaseModel):
    model_config = ConfigDict(extra="allow")

    access_token: str = Field(min_length=1, max_length=10_000)
    token_type: str = Field(min_length=1, max_length=40)
    expires_in: int | None = None
    scope: str | None = Field(default=None, max_length=10_000)
    subject: str | None = Field(default=None, max_length=1000)


class _HookRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)

    hook: str = Field(min_length=1, max_length=100)
    hookInstance: str = Field(min_length=1, max_length=100)  # noqa: N815 (the wire name)
    fhirServer: str | None = Field(default=None, max_length=2000)  # noqa: N815
    fhirAuthorization: _FhirAuthorization | None = None  # noqa: N815
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None


class _Coding(BaseModel):
    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)

    system: str | None = Field(default=None, max_length=2000)
    code: str | None = Field(default=None, max_length=200)
    display: str | None = Field(default=None, max_length=2000)


class _OverrideReason(BaseModel):
    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)

    reason: _Coding | None = None
    userComment: str | None = Field(default=None, max_length=10_000)  # noqa: N815


class _Feedback(BaseModel):
    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)

    card: str = Field(min_length=1, max_length=100)
    outcome: Literal["accepted", "overridden"]
    outcomeTimestamp: str = Field(min_length=1, max_length=100)  # noqa: N815
    acceptedSuggestions: list[dict[str, Any]] | None = Field(default=None, max_length=100)  # noqa: N815
    overrideReason: _OverrideReason | None = None  # noqa: N815


class _FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    feedback: list[_Feedback] = Field(min_length=1, max_length=100)


# --- JWT ------------------------------------------------------------------------------------

IssuerKeys = str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]]
"""PEM public keys, JWKs, or a JWK Set (`{"keys": [...]}`) trusted for one issuer."""


class JwtVerifier:
    """Checks the CDS Client's bearer JWT: asymmetric signature by an allowed issuer's key,
    `aud` equal to the endpoint called, and present `exp`, `iat` and a `jti` not seen before."""

    def __init__(self, issuers: Mapping[str, IssuerKeys]) -> None:
        self._keys: dict[str, list[tuple[str | None, Any]]] = {}
        for issuer, material in issuers.items():
            self._keys[issuer] = [_load_key(item) for item in _key_items(material)]
            if not self._keys[issuer]:
                raise ValueError(f"JWT issuer {issuer!r} has no keys")
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def verify(self, authorization: str | None, audiences: Sequence[str]) -> None:
        if not authorization or not authorization.startswith("Bearer "):
            raise ApiError(401, "a bearer JWT from an allowed CDS Client is required")
        token = authorization.removeprefix("Bearer ").strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise ApiError(401, "the bearer token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise ApiError(401, "the JWT must be signed with an asymmetric algorithm (e.g. ES384)")
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or issuer not in self._keys:
            raise ApiError(401, "the JWT issuer is not allowed by this service")
        kid = header.get("kid")
        keys = [k for key_id, k in self._keys[issuer] if kid is None or key_id in (None, kid)]
        claims = self._decode(token, keys, algorithm, issuer, audiences)
        now = time.time()
        if claims["exp"] > now + _JWT_MAX_LIFETIME_SECONDS + _JWT_LEEWAY_SECONDS:
            raise ApiError(401, "the JWT expires more than 5 minutes ahead")
        with self._lock:
            self._seen = {k: exp for k, exp in self._seen.items() if exp > now}
            key = (issuer, str(claims["jti"]))
            if key in self._seen:
                raise ApiError(401, "the JWT was already used (jti replay)")
            if len(self._seen) < 100_000:
                self._seen[key] = float(claims["exp"]) + _JWT_LEEWAY_SECONDS

    @staticmethod
    def _decode(
        token: str, keys: Sequence[Any], algorithm: str, issuer: str, audiences: Sequence[str]
    ) -> dict[str, Any]:
        failure = "the JWT signature does not verify with the issuer's keys"
        for key in keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    audience=list(audiences),
                    issuer=issuer,
                    leeway=_JWT_LEEWAY_SECONDS,
                    options={"require": ["iss", "aud", "exp", "iat", "jti"]},
                )
                return claims
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                failure = "the JWT has expired"
            except jwt.InvalidAudienceError:
                failure = "the JWT audience (aud) is not this service endpoint"
            except jwt.MissingRequiredClaimError as exc:
                failure = f"the JWT lacks the required claim '{exc.claim}'"
            except jwt.PyJWTError:
                failure = "the JWT is invalid"
            break
        raise ApiError(401, failure)


def _key_items(material: IssuerKeys) -> list[str | Mapping[str, Any]]:
    if isinstance(material, str):
        return [material]
    if isinstance(material, Mapping):
        keys = material.get("keys")
        return list(keys) if isinstance(keys, list) else [material]
    return list(material)


def _load_key(item: str | Mapping[str, Any]) -> tuple[str | None, Any]:
    if isinstance(item, str):
        return None, load_pem_public_key(item.encode())
    jwk = jwt.PyJWK.from_dict(dict(item))
    if jwk.algorithm_name not in ASYMMETRIC_ALGORITHMS and "alg" in item:
        raise ValueError("only asymmetric JWT keys are accepted")
    kid = item.get("kid")
    return (kid if isinstance(kid, str) else None), jwk.key


# --- body limit -----------------------------------------------------------------------------

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_ASGIApp = Callable[[_Scope, _Receive, _Send], Awaitable[None]]


class BodyLimit:
    """Refuse request bodies above `limit` bytes with 413, before the app reads them."""

    def __init__(self, app: _ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _send_json(send, 400, {"error": "invalid Content-Length header"})
                return
            if int(declared) > self.limit:
                await _send_json(send, 413, _too_large(self.limit))
                return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.limit:
                await _send_json(send, 413, _too_large(self.limit))
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> _Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _too_large(limit: int) -> dict[str, Any]:
    return {"error": f"request body is larger than {limit // 1024} KiB"}


async def _send_json(send: _Send, status: int, payload: Mapping[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# --- the app --------------------------------------------------------------------------------


def create_app(
    evaluator: Evaluator | None = None,
    *,
    fhir_server: str | None = None,
    jwt_issuers: Mapping[str, IssuerKeys] | None = None,
    public_base_url: str | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    today: Callable[[], dt.date] | None = None,
) -> FastAPI:
    """Build the CDS Hooks service.

    Args:
        evaluator: the knowledge base to answer with; default the shipped one.
        fhir_server: the one FHIR server base URL the service may query when prefetch is
            missing, with the request's fhirAuthorization; None (default) fetches nothing and
            answers 412 when required prefetch is absent.
        jwt_issuers: when given, every POST must carry a bearer JWT signed (asymmetrically)
            by one of these issuers' keys; maps issuer to PEM public key(s) or a JWK Set.
        public_base_url: the service's external base URL, for the JWT `aud` check behind a
            proxy; default the URL the request arrived at.
        max_body_bytes: larger request bodies are refused with 413.
        today: the evaluation date (for tests); default the current date.

    Returns:
        The ASGI application; serve it with uvicorn (see `run`).
    """
    hooks = _CdsHooks(
        engine=evaluator or default_evaluator(),
        verifier=JwtVerifier(jwt_issuers) if jwt_issuers else None,
        fhir_server=fhir_server.rstrip("/") if fhir_server else None,
        public_base_url=public_base_url.rstrip("/") if public_base_url else None,
        today=today or dt.date.today,
    )
    app = FastAPI(
        title="IVIG-CDS CDS Hooks service",
        version="2.0",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.feedback = hooks.feedback
    _install_error_handlers(app)
    app.add_api_route("/cds-services", hooks.discovery, methods=["GET"])
    app.add_api_route("/cds-services/{service_id}", hooks.call, methods=["POST"])
    app.add_api_route("/cds-services/{service_id}/feedback", hooks.give_feedback, methods=["POST"])
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        content: dict[str, Any] = {"error": exc.message}
        if exc.problems:
            content["problems"] = exc.problems
        return JSONResponse(content, status_code=exc.status)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        message = {404: "no such endpoint", 405: "method not allowed"}.get(exc.status_code)
        return JSONResponse(
            {"error": message or str(exc.detail)},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "invalid request"}, status_code=400)

    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "internal error; the request was not evaluated"}, 500)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, internal_error)


class _CdsHooks:
    """The endpoints, with the configuration `create_app` resolved."""

    def __init__(
        self,
        *,
        engine: Evaluator,
        verifier: JwtVerifier | None,
        fhir_server: str | None,
        public_base_url: str | None,
        today: Callable[[], dt.date],
    ) -> None:
        self.engine = engine
        self.verifier = verifier
        self.fhir_server = fhir_server
        self.public_base_url = public_base_url
        self.today = today
        self.services = {s.id: s for s in SERVICES}
        self.templates = _prefetch_templates()
        self.feedback: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)

    async def discovery(self) -> dict[str, Any]:
        return {
            "services": [
                {
                    "hook": s.hook,
                    "id": s.id,
                    "title": s.title,
                    "description": s.description,
                    "prefetch": self.templates,
                    "usageRequirements": "Send the prefetch, or configure this service with "
                    "your FHIR server. Cards cite PubMed; they summarise evidence and do not "
                    "prescribe.",
                }
                for s in SERVICES
            ]
        }

    async def call(self, service_id: str, request: Request) -> dict[str, Any]:
        service = self._service(service_id)
        self._authenticate(request)
        hook = _validated(_HookRequest, await _read_json(request))
        if hook.hook != service.hook:
            raise ApiError(
                400, f"service '{service.id}' answers the '{service.hook}' hook, not another"
            )
        patient_id = hook.context.get("patientId")
        if not isinstance(patient_id, str) or not patient_id:
            raise ApiError(400, "context.patientId is required")
        order: str | None = None
        question: str | None = None
        if service.hook != "patient-view":
            orders = _ivig_draft_orders(hook.context, service.hook)
            if not orders:
                return {"cards": []}
            order, question = orders[0].reference, orders[0].question
        prefetch = await _gather(hook, patient_id, self.templates, self.fhir_server)
        try:
            mapping = patient_from_fhir(prefetch, as_of=self.today())
        except FhirDataError as exc:
            raise ApiError(400, "the prefetch holds unusable FHIR data", exc.problems) from None
        if not mapping.ms_on_record:
            return {"cards": []}
        patient = mapping.patient
        if question is not None and patient.intended_use is None:  # the order's reason asks it
            asked = {**patient.model_dump(mode="json", exclude_none=True), "intended_use": question}
            with contextlib.suppress(InvalidPatientError):  # the record contradicts the reason
                patient = parse_patient(asked)
        recommendation = await run_in_threadpool(self.engine.evaluate, patient)
        card = card_for(
            recommendation,
            service_id=service.id,
            hook_instance=hook.hookInstance,
            ordering=order is not None,
            order=order,
            conflicts=[str(c) for c in mapping.conflicts],
        )
        return {"cards": [card] if card else []}

    async def give_feedback(self, service_id: str, request: Request) -> dict[str, Any]:
        service = self._service(service_id)
        self._authenticate(request)
        body = _validated(_FeedbackRequest, await _read_json(request))
        for item in body.feedback:
            record = item.model_dump(mode="json", exclude_none=True)
            self.feedback.append({"service": service.id, **record})
        return {}

    def _service(self, service_id: str) -> Service:
        service = self.services.get(service_id)
        if service is None:
            raise ApiError(404, f"no CDS service '{service_id[:60]}'; see GET /cds-services")
        return service

    def _authenticate(self, request: Request) -> None:
        if self.verifier is None:
            return
        path = request.url.path
        base = self.public_base_url or str(request.base_url).rstrip("/")
        audiences = [base + path]
        if path.endswith("/feedback"):
            audiences.append(base + path.removesuffix("/feedback"))
        self.verifier.verify(request.headers.get("authorization"), audiences)


async def _read_json(request: Request) -> Any:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, "send the request as application/json")
    raw = await request.body()
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        where = f" (line {exc.lineno}, column {exc.colno})"
        raise ApiError(400, f"the request body is not valid JSON{where}") from None
    except UnicodeDecodeError:
        raise ApiError(400, "the request body is not UTF-8 JSON") from None


_M = TypeVar("_M", bound=BaseModel)


def _validated(model: type[_M], data: object) -> _M:
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)[:10]
        ]
        raise ApiError(
            400, "the request does not follow the CDS Hooks 2.0 shape", problems
        ) from None


def _ivig_draft_orders(context: Mapping[str, Any], hook: str) -> list[DraftOrder]:
    """The IVIG MedicationRequests in `draftOrders` (for order-select, selected), read
    leniently; orders whose reason names a non-MS indication get no MS card."""
    drafts = context.get("draftOrders")
    if drafts is None:
        raise ApiError(400, f"context.draftOrders is required for {hook}")
    try:
        found = [o for o in read_draft_orders(drafts).ivig if not o.other_indication]
    except FhirDataError as exc:
        raise ApiError(
            400, "context.draftOrders is not a usable FHIR Bundle", exc.problems
        ) from None
    selections = context.get("selections")
    if hook == "order-select" and isinstance(selections, list) and selections:
        chosen = {s for s in selections if isinstance(s, str)}
        found = [o for o in found if o.reference in chosen]
    return sorted(found, key=lambda o: o.reference)


async def _gather(
    hook: _HookRequest, patient_id: str, templates: Mapping[str, str], allowed_server: str | None
) -> dict[str, Any]:
    """The prefetch to map: what was sent, plus what the configured FHIR server gives for the
    missing keys. Answers 412 when required data cannot be had."""
    prefetch = {k: v for k, v in (hook.prefetch or {}).items() if _usable(v)}
    missing = [key for key in templates if key not in prefetch]
    missing_required = [
        key
        for key in REQUIRED_PREFETCH
        if key in missing and not _provides(prefetch, REQUIRED_PREFETCH[key])
    ]
    if not missing_required:
        return prefetch
    if allowed_server is None:
        raise ApiError(
            412,
            "required prefetch is missing and this service fetches nothing itself",
            [f"prefetch '{k}' ({templates[k]}) is missing or null" for k in missing_required],
        )
    server = (hook.fhirServer or "").rstrip("/")
    if server != allowed_server or hook.fhirAuthorization is None:
        raise ApiError(
            412,
            "required prefetch is missing and the request gives no usable fhirServer and "
            "fhirAuthorization for the configured FHIR server",
            [f"prefetch '{k}' is missing or null" for k in missing_required],
        )
    auth = hook.fhirAuthorization
    headers = {
        "Authorization": f"{auth.token_type} {auth.access_token}",
        "Accept": "application/fhir+json",
    }
    async with httpx.AsyncClient(timeout=_FETCH_TIMEOUT_SECONDS, follow_redirects=False) as client:
        for key in missing:
            query = templates[key].replace(_P, urllib.parse.quote(patient_id, safe=""))
            try:
                response = await client.get(f"{allowed_server}/{query}", headers=headers)
                response.raise_for_status()
                prefetch[key] = response.json()
            except (httpx.HTTPError, ValueError):
                if key in REQUIRED_PREFETCH:
                    raise ApiError(
                        412, f"the FHIR server did not return the required '{key}' data"
                    ) from None
    return prefetch


def _usable(value: object) -> bool:
    """A prefetch value the client filled: not null, not an OperationOutcome for a failed query."""
    return isinstance(value, Mapping) and value.get("resourceType") not in (
        None,
        "OperationOutcome",
    )


def _provides(prefetch: Mapping[str, Any], kind: str) -> bool:
    """Whether a prefetch value under another key (another service's template) holds `kind`."""
    for value in prefetch.values():
        if value.get("resourceType") == kind:
            return True
        if value.get("resourceType") == "Bundle":
            entries = value.get("entry")
            if isinstance(entries, list) and any(
                isinstance(e, Mapping)
                and isinstance(e.get("resource"), Mapping)
                and e["resource"].get("resourceType") == kind
                for e in entries
            ):
                return True
    return False


def run(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    fhir_server: str | None = None,
    jwt_issuers: Mapping[str, IssuerKeys] | None = None,
    public_base_url: str | None = None,
) -> None:
    """Serve the CDS Hooks service with uvicorn until interrupted (options as `create_app`)."""
    app = create_app(
        fhir_server=fhir_server, jwt_issuers=jwt_issuers, public_base_url=public_base_url
    )
    uvicorn.run(app, host=host, port=port, log_level="info")
