"""Running the service: uvicorn, one process or N worker processes, until interrupted.

Workers are separate processes (durable holds the GIL, so threads add nothing). They are
started by uvicorn's supervisor, which imports `app_from_environment` in each; the options
travel in an environment variable as JSON. Each accepted connection gets TCP_NODELAY: with
workers, asyncio does not set it on sockets inherited from the supervisor, and every
keep-alive response then waits ~40 ms for the client's delayed ACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from ivig_cds._pseudonym import Pseudonymizer, load_key
from ivig_cds.service.app import create_app
from ivig_cds.service.journal import Journal
from ivig_cds.service.jti import (
    FallbackJtiMemory,
    JtiMemory,
    LocalJtiMemory,
    SqlJtiMemory,
    shared_file_memory,
)
from ivig_cds.service.logs import LogFormat, configure_logging, log_event, log_warning
from ivig_cds.service.recorder import StoreRecorder
from ivig_cds.service.records import Recorder
from ivig_cds.service.store import DEFAULT_STORE, Store, StoreError, display_url

__all__ = [
    "NoDelayH11Protocol",
    "ServeOptions",
    "app_from_environment",
    "build_app",
    "prepare_store",
    "run",
]

OPTIONS_ENV = "IVIG_CDS_SERVE_OPTIONS"
KEEP_ALIVE_SECONDS = 75


@dataclass(frozen=True)
class ServeOptions:
    """Everything `ivig-cds serve` configures, as plain data that workers can receive."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    fhir_server: str | None = None
    jwt_issuers: dict[str, Any] = field(default_factory=dict)
    jwt_jku: dict[str, list[str]] = field(default_factory=dict)
    public_base_url: str | None = None
    cors_origins: list[str] = field(default_factory=lambda: ["*"])
    log_format: LogFormat = "text"
    log_level: str = "info"
    store: str = DEFAULT_STORE  # or "none"
    journal_dir: str = "ivig-cds-journal"
    pseudonym_key_file: str = "ivig-cds-pseudonym.key"
    report_url: str | None = None
    jti_file: str | None = None  # shared by the workers for the jti memory


class NoDelayH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with Nagle's algorithm off on every connection."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):  # a socket the client closed at once
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)  # type: ignore[arg-type]


def build_app(options: ServeOptions) -> FastAPI:
    """The application for one process, wired to the store, journal and shared jti memory."""
    configure_logging(options.log_format, options.log_level)
    memory: JtiMemory = (
        shared_file_memory(options.jti_file) if options.jti_file else LocalJtiMemory()
    )
    recorder: Recorder | None = None
    pseudonymizer: Pseudonymizer | None = None
    if options.store != "none":
        store = Store(options.store)
        recorder = StoreRecorder(store, Journal(Path(options.journal_dir)))
        memory = FallbackJtiMemory(SqlJtiMemory(store.engine), memory)
        pseudonymizer = Pseudonymizer(load_key(Path(options.pseudonym_key_file)))
    return create_app(
        fhir_server=options.fhir_server,
        jwt_issuers=options.jwt_issuers or None,
        jwt_jku=options.jwt_jku or None,
        jti_memory=memory,
        public_base_url=options.public_base_url,
        cors_origins=options.cors_origins,
        report_url=options.report_url,
        recorder=recorder,
        pseudonymizer=pseudonymizer,
    )


def prepare_store(options: ServeOptions) -> None:
    """Migrate the store's schema once, before any worker starts; say where records go."""
    if options.store == "none":
        log_event("store", store="none", note="decisions and feedback are not kept")
        return
    shown = display_url(options.store)
    load_key(Path(options.pseudonym_key_file))  # created (0600) here, not raced by workers
    store = Store(options.store)
    try:
        store.migrate()
    except StoreError as exc:
        log_warning(
            "store-unreachable-at-start",
            store=shown,
            journal=options.journal_dir,
            reason=type(exc).__name__,
        )
    else:
        log_event("store", store=shown, revision=store.revision(), journal=options.journal_dir)
    finally:
        store.dispose()


def app_from_environment() -> FastAPI:
    """uvicorn's factory in each worker process."""
    raw = os.environ.get(OPTIONS_ENV)
    if raw is None:
        raise RuntimeError(f"{OPTIONS_ENV} is not set; start workers with `ivig-cds serve`")
    return build_app(ServeOptions(**json.loads(raw)))


def run(options: ServeOptions | None = None, **overrides: Any) -> None:
    """Serve until interrupted. `overrides` are ServeOptions fields (for the old signature)."""
    options = ServeOptions(**{**asdict(options or ServeOptions()), **overrides})
    common: dict[str, Any] = {
        "host": options.host,
        "port": options.port,
        "http": NoDelayH11Protocol,
        "access_log": False,
        "log_config": None,
        "lifespan": "off",
        "ws": "none",
        # EHRs and proxies keep connections open between hook calls; uvicorn's 5 s default
        # closes them under the client's feet (nginx's default upstream keep-alive is 60 s).
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
    }
    configure_logging(options.log_format, options.log_level)
    prepare_store(options)
    if options.workers <= 1:
        app = build_app(options)
        log_event("start", address=f"{options.host}:{options.port}", workers=1)
        uvicorn.run(app, **common)
        return
    with tempfile.TemporaryDirectory(prefix="ivig-cds-") as scratch:
        if (options.jwt_issuers or options.jwt_jku) and options.jti_file is None:
            options = ServeOptions(
                **{**asdict(options), "jti_file": str(Path(scratch) / "jti.sqlite3")}
            )
        os.environ[OPTIONS_ENV] = json.dumps(asdict(options))
        log_event("start", address=f"{options.host}:{options.port}", workers=options.workers)
        uvicorn.run(
            "ivig_cds.service.server:app_from_environment",
            factory=True,
            workers=options.workers,
            **common,
        )
