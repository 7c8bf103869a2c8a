"""The CDS Hooks 2.0 service: discovery, one service per hook, feedback, and health.

    GET  /cds-services                      discovery, with prefetch templates
    POST /cds-services/{id}                 patient-view, order-select, order-sign
    POST /cds-services/{id}/feedback        what the clinician did with a card
    GET  /health                            knowledge base and store state (no JWT)

Every card returned is recorded (decision) before the response leaves; feedback is answered
only once recorded. CORS is answered on every path, since browser-based CDS clients call it.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware

from ivig_cds._evaluate import Evaluator, default_evaluator
from ivig_cds._patient import PatientContext
from ivig_cds._pseudonym import Pseudonymizer
from ivig_cds.fhir import CodeTables, DraftOrder, FhirDataError, patient_from_fhir
from ivig_cds.service.actions import add_actions, asked_by_order, removal_warranted
from ivig_cds.service.auth import IssuerKeys, JwtVerifier
from ivig_cds.service.cards import card_for
from ivig_cds.service.catalog import SERVICES, Service
from ivig_cds.service.errors import ApiError, install_error_handlers, read_json, validated
from ivig_cds.service.jti import JtiMemory
from ivig_cds.service.logs import RequestLog, log_fields
from ivig_cds.service.middleware import BodyLimit
from ivig_cds.service.prefetch import gather, ivig_draft_orders, prefetch_templates
from ivig_cds.service.records import (
    MemoryRecorder,
    Recorder,
    StoreUnavailableError,
    decision_row,
    feedback_row,
)
from ivig_cds.service.wire import FeedbackRequest, HookRequest

__all__ = ["MAX_BODY_BYTES", "create_app"]

MAX_BODY_BYTES = 1 << 20
CORS_MAX_AGE_SECONDS = 600


def create_app(
    evaluator: Evaluator | None = None,
    *,
    fhir_server: str | None = None,
    jwt_issuers: Mapping[str, IssuerKeys] | None = None,
    jwt_jku: Mapping[str, Sequence[str]] | None = None,
    jti_memory: JtiMemory | None = None,
    public_base_url: str | None = None,
    cors_origins: Sequence[str] = ("*",),
    report_url: str | None = None,
    recorder: Recorder | None = None,
    pseudonymizer: Pseudonymizer | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    today: Callable[[], dt.date] | None = None,
    codes: CodeTables | None = None,
) -> FastAPI:
    """Build the CDS Hooks service.

    Args:
        evaluator: the knowledge base to answer with; default the shipped one.
        fhir_server: the one FHIR server base URL the service may query when prefetch is
            missing, with the request's fhirAuthorization; None (default) fetches nothing and
            answers 412 when required prefetch is absent.
        jwt_issuers: when given (or `jwt_jku`), every call but /health must carry a bearer
            JWT signed (asymmetrically) by one of these issuers' keys; maps issuer to PEM
            public key(s) or a JWK Set.
        jwt_jku: per issuer, the JWK Set URLs a token's `jku` may name (fetched, cached).
        jti_memory: where used JWT ids are remembered; share one across worker processes.
        public_base_url: the service's external base URL, for the JWT `aud` check behind a
            proxy; default the URL the request arrived at.
        cors_origins: the browser origins allowed to call; default any (no cookies are used).
        report_url: base URL of the published knowledge-base report (`ivig-cds report`);
            cards then link to their rule's page there.
        recorder: where decisions and feedback are recorded; default this process's memory.
        pseudonymizer: the keyed hash of patient ids in decision records; default a random
            key per process (records then cannot be linked across restarts).
        max_body_bytes: larger request bodies are refused with 413.
        today: the evaluation date (for tests); default the current date.
        codes: the code tables to read records with; default the shipped ones. With a
            site's codes: `default_code_tables().with_site_maps(load_site_maps(paths))`;
            /health and every card then name the site maps and their hash.

    Returns:
        The ASGI application; serve it with uvicorn (see `run`).
    """
    issuers = dict(jwt_issuers or {})
    verifier = None
    if issuers or jwt_jku:
        verifier = JwtVerifier(issuers, jku_allowed=jwt_jku, memory=jti_memory)
    if pseudonymizer is None:
        pseudonymizer = Pseudonymizer(secrets.token_bytes(32))
    hooks = _CdsHooks(
        engine=evaluator or default_evaluator(),
        verifier=verifier,
        fhir_server=fhir_server.rstrip("/") if fhir_server else None,
        public_base_url=public_base_url.rstrip("/") if public_base_url else None,
        recorder=recorder or MemoryRecorder(),
        pseudonymize=pseudonymizer,
        report_url=report_url,
        today=today or dt.date.today,
        codes=codes,
    )
    app = FastAPI(
        title="IVIG-CDS CDS Hooks service",
        version="2.0",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.recorder = hooks.recorder
    install_error_handlers(app)
    app.add_api_route("/cds-services", hooks.discovery, methods=["GET"])
    app.add_api_route("/cds-services/{service_id}", hooks.call, methods=["POST"])
    app.add_api_route("/cds-services/{service_id}/feedback", hooks.give_feedback, methods=["POST"])
    app.add_api_route("/health", hooks.health, methods=["GET"])
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(cors_origins),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        allow_credentials=False,
        max_age=CORS_MAX_AGE_SECONDS,
    )
    app.add_middleware(RequestLog)
    return app


class _CdsHooks:
    """The endpoints, with the configuration `create_app` resolved."""

    def __init__(
        self,
        *,
        engine: Evaluator,
        verifier: JwtVerifier | None,
        fhir_server: str | None,
        public_base_url: str | None,
        recorder: Recorder,
        pseudonymize: Callable[[str], str],
        report_url: str | None,
        today: Callable[[], dt.date],
        codes: CodeTables | None,
    ) -> None:
        self.engine = engine
        self.verifier = verifier
        self.fhir_server = fhir_server
        self.public_base_url = public_base_url
        self.recorder = recorder
        self.pseudonymize = pseudonymize
        self.report_url = report_url
        self.today = today
        self.codes = codes
        maps = codes.site_maps if codes is not None else None
        self.site_codes = maps.describe() if maps is not None else None
        self.services = {s.id: s for s in SERVICES}
        self.templates = prefetch_templates(codes)

    async def discovery(self, request: Request) -> dict[str, Any]:
        log_fields(request.scope.get("state", {}))["endpoint"] = "discovery"
        await self._authenticate(request)
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

    async def health(self, request: Request) -> JSONResponse:
        log_fields(request.scope.get("state", {}))["endpoint"] = "health"
        kb = self.engine.knowledge_base
        store = await run_in_threadpool(self.recorder.state)
        body = {
            "status": "ok" if store != "unavailable" else "unavailable",
            "knowledgeBase": {
                "name": kb.manifest.name,
                "version": kb.version,
                "hash": kb.content_hash,
            },
            **({"siteCodes": self.site_codes} if self.site_codes else {}),
            "store": store,
        }
        return JSONResponse(body, status_code=503 if store == "unavailable" else 200)

    async def call(self, service_id: str, request: Request) -> dict[str, Any]:
        log = log_fields(request.scope.get("state", {}))
        log["endpoint"] = "service"
        service = self._service(service_id)
        log["service"] = service.id
        await self._authenticate(request)
        hook = validated(HookRequest, await read_json(request))
        log.update(hook=hook.hook, hookInstance=hook.hookInstance)
        if hook.hook != service.hook:
            raise ApiError(
                400, f"service '{service.id}' answers the '{service.hook}' hook, not another"
            )
        patient_id = hook.context.get("patientId")
        if not isinstance(patient_id, str) or not patient_id:
            raise ApiError(400, "context.patientId is required")
        order: DraftOrder | None = None
        if service.hook != "patient-view":
            orders = ivig_draft_orders(hook.context, service.hook, self.codes)
            if not orders:
                log["cards"] = []
                return {"cards": []}
            order = orders[0]
        prefetch = await gather(hook, patient_id, self.templates, self.fhir_server)
        try:
            mapping = patient_from_fhir(prefetch, as_of=self.today(), codes=self.codes)
        except FhirDataError as exc:
            raise ApiError(400, "the prefetch holds unusable FHIR data", exc.problems) from None
        if not mapping.ms_on_record:
            log["cards"] = []
            return {"cards": []}
        patient = asked_by_order(mapping.patient, order)
        card, tier, recorded = await run_in_threadpool(
            self._decide,
            service,
            hook.hookInstance,
            patient,
            patient_id,
            order=order,
            conflicts=[str(c) for c in mapping.conflicts],
        )
        log["cards"] = [tier] if card else []
        if not recorded:
            log["recorded"] = False  # /health reports why
        return {"cards": [card] if card else []}

    def _decide(
        self,
        service: Service,
        hook_instance: str,
        patient: PatientContext,
        patient_id: str,
        *,
        order: DraftOrder | None,
        conflicts: list[str],
    ) -> tuple[dict[str, Any] | None, str, bool]:
        """Evaluate, build the card with its actions, and record the decision: one trip to a
        worker thread per request. Returns the card (or None), the tier, and whether the
        decision was recorded (clinical advice does not wait on the log)."""
        # An order hook for IVIG: the rules ask for what matters before IVIG is given.
        recommendation = self.engine.evaluate(patient, ivig_ordered=order is not None)
        card = card_for(
            recommendation,
            service_id=service.id,
            hook_instance=hook_instance,
            ordering=order is not None,
            order=order.reference if order else None,
            conflicts=conflicts,
            site_codes=self.site_codes,
        )
        if card is None:
            return None, recommendation.tier.value, True
        remove = order is not None and removal_warranted(self.engine, patient, recommendation)
        add_actions(
            card,
            recommendation,
            remove_order=order.reference if order and remove else None,
            report_url=self.report_url,
        )
        row = decision_row(
            recommendation,
            card_uuid=card["uuid"],
            service=service.id,
            hook=service.hook,
            hook_instance=hook_instance,
            patient_key=self.pseudonymize(patient_id),
            order=order.reference if order else None,
        )
        try:
            self.recorder.record("decisions", [row])
        except StoreUnavailableError:
            return card, recommendation.tier.value, False
        return card, recommendation.tier.value, True

    async def give_feedback(self, service_id: str, request: Request) -> dict[str, Any]:
        log = log_fields(request.scope.get("state", {}))
        log["endpoint"] = "feedback"
        service = self._service(service_id)
        log["service"] = service.id
        await self._authenticate(request)
        body = validated(FeedbackRequest, await read_json(request))
        uuids = [item.card for item in body.feedback]
        known = await run_in_threadpool(self.recorder.known_cards, uuids)
        rows = [
            feedback_row(item, service=service.id, known_card=item.card in known)
            for item in body.feedback
        ]
        log["feedback"] = [item.outcome for item in body.feedback]
        try:
            await run_in_threadpool(self.recorder.record, "feedback", rows)
        except StoreUnavailableError:
            raise ApiError(
                503, "the feedback could not be recorded (store and journal unavailable); retry"
            ) from None
        return {}

    def _service(self, service_id: str) -> Service:
        service = self.services.get(service_id)
        if service is None:
            raise ApiError(404, f"no CDS service '{service_id[:60]}'; see GET /cds-services")
        return service

    async def _authenticate(self, request: Request) -> None:
        if self.verifier is None:
            return
        base = self.public_base_url or str(request.base_url).rstrip("/")
        await self.verifier.verify(request.headers.get("authorization"), base + request.url.path)
