"""Running the service: uvicorn, one process or N worker processes, until interrupted.

The listening socket is bound here, first, before any state is created and before the log
says "listening": a port already taken is one sentence and exit 1 (uvicorn would log the start,
then fail to bind and exit 3). Workers are separate processes (durable holds the GIL, so
threads add nothing), started by uvicorn's supervisor on that socket, which imports
`app_from_environment` in each; the options travel in an environment variable as JSON. Each
accepted connection gets TCP_NODELAY: with workers, asyncio does not set it on sockets
inherited from the supervisor, and every keep-alive response then waits ~40 ms for the
client's delayed ACK.

State (the SQLite store, the journal, the pseudonym key) goes to the per-user data folder
(`ivig_cds._data_dir`) unless an option names another place; never the working directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import socket
import tempfile
import threading
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.supervisors import Multiprocess

from ivig_cds._data_dir import (
    KEY_FILE,
    STORE_FILE,
    data_dir,
    default_journal,
    default_key_file,
    default_store_url,
)
from ivig_cds._errors import IvigCdsError
from ivig_cds._pseudonym import ENV_KEY, Pseudonymizer, PseudonymKeyError, ensure_key, read_key
from ivig_cds.fhir import site_code_tables
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
from ivig_cds.service.store import Store, StoreError, display_url

__all__ = [
    "NoDelayH11Protocol",
    "ServeOptions",
    "ServiceStartError",
    "app_from_environment",
    "build_app",
    "listen",
    "prepare_store",
    "run",
    "with_defaults",
]

OPTIONS_ENV = "IVIG_CDS_SERVE_OPTIONS"
KEEP_ALIVE_SECONDS = 75
BACKLOG = 2048  # uvicorn's default


class ServiceStartError(IvigCdsError):
    """The service could not start (its port is taken, its key refused): nothing was served."""


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
    # None: in the data folder (ivig-cds.sqlite3, ivig-cds-journal/, ivig-cds-pseudonym.key)
    store: str | None = None  # or "none": records in memory only
    journal_dir: str | None = None
    pseudonym_key_file: str | None = None
    allow_key_in_work_tree: bool = False  # create a new key inside a git work tree all the same
    report_url: str | None = None
    jti_file: str | None = None  # shared by the workers for the jti memory
    code_maps: list[str] = field(default_factory=list)  # site code maps (`--codes FILE`)


class NoDelayH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with Nagle's algorithm off on every connection."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):  # a socket the client closed at once
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)  # type: ignore[arg-type]


def with_defaults(options: ServeOptions) -> ServeOptions:
    """`options` with the data folder's paths in place of None; the folder is created (0700)
    when one of them is used."""
    given = (options.store, options.journal_dir, options.pseudonym_key_file)
    if options.store == "none" or None not in given:
        return options
    folder = data_dir()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ServiceStartError(
            f"cannot create the data folder {folder}: {exc.strerror or type(exc).__name__}"
        ) from None
    store, journal, key = given
    return replace(
        options,
        store=default_store_url() if store is None else store,
        journal_dir=str(default_journal()) if journal is None else journal,
        pseudonym_key_file=str(default_key_file()) if key is None else key,
    )


def build_app(options: ServeOptions) -> FastAPI:
    """The application for one process, wired to the store, journal and shared jti memory."""
    options = with_defaults(options)
    configure_logging(options.log_format, options.log_level)
    memory: JtiMemory = (
        shared_file_memory(options.jti_file) if options.jti_file else LocalJtiMemory()
    )
    recorder: Recorder | None = None
    pseudonymizer: Pseudonymizer | None = None
    if options.store != "none":
        assert options.store and options.journal_dir and options.pseudonym_key_file
        store = Store(options.store)
        recorder = StoreRecorder(store, Journal(Path(options.journal_dir)))
        memory = FallbackJtiMemory(SqlJtiMemory(store.engine), memory)
        # prepare_store made the key, once, before any worker started: workers only read it
        pseudonymizer = Pseudonymizer(read_key(Path(options.pseudonym_key_file)))
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
        codes=site_code_tables(tuple(options.code_maps)) if options.code_maps else None,
    )


def prepare_store(options: ServeOptions) -> None:
    """Before any worker starts: make the pseudonym key if there is none, migrate the store's
    schema, and say where each is (one log line each, and one when a key is created).

    Raises:
        ServiceStartError: the key cannot be created, or may not be (in a git work tree).
    """
    if options.store == "none":
        log_event("store", store="none", note="decisions and feedback are not kept")
        return
    options = with_defaults(options)
    assert options.store and options.journal_dir and options.pseudonym_key_file
    key_file = Path(options.pseudonym_key_file)
    try:
        created = ensure_key(key_file, allow_in_work_tree=options.allow_key_in_work_tree)
        Pseudonymizer(read_key(key_file))  # a key too short fails here, not in every worker
    except PseudonymKeyError as exc:
        raise ServiceStartError(str(exc)) from None
    if os.environ.get(ENV_KEY):
        log_event("pseudonym-key", source=ENV_KEY)
    elif created:
        log_event("pseudonym-key-created", file=str(key_file), mode="0600")
    else:
        log_event("pseudonym-key", file=str(key_file))
    shown = display_url(options.store)
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
    try:
        return build_app(ServeOptions(**json.loads(raw)))
    except Exception:
        # uvicorn starts a worker that died again, forever, unless it exits STARTUP_FAILURE:
        # then the supervisor stops and `run` reports it (exit 1).
        traceback.print_exc()
        raise SystemExit(STARTUP_FAILURE) from None


def listen(host: str, port: int) -> socket.socket:
    """A socket bound and listening on host:port, for uvicorn to serve on.

    Raises:
        ServiceStartError: the port is taken, or the address is not this machine's.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ServiceStartError(_cannot_listen(host, port, exc)) from None
    sock.set_inheritable(True)  # the worker processes serve on it
    return sock


def _cannot_listen(host: str, port: int, exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {host}: no such host name; choose another with --host"
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use; choose another with --port"
    if exc.errno == errno.EACCES:
        return f"port {port} on {host} needs privileges (below 1024); choose another with --port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine; choose another with --host"
    return f"cannot listen on port {port} on {host}: {exc.strerror or type(exc).__name__}"


def run(options: ServeOptions | None = None, **overrides: Any) -> None:
    """Serve until interrupted (SIGINT or SIGTERM). `overrides` are ServeOptions fields.

    Raises:
        ServiceStartError: the service could not start; nothing was served.
    """
    options = ServeOptions(**{**asdict(options or ServeOptions()), **overrides})
    configure_logging(options.log_format, options.log_level)
    sock = listen(options.host, options.port)  # first: a taken port leaves no state behind
    try:
        _warn_of_state_left_here(options)
        options = with_defaults(options)
        prepare_store(options)
        if options.workers <= 1:
            _serve_one(options, sock)
        else:
            _serve_workers(options, sock)
    finally:
        sock.close()


def _warn_of_state_left_here(options: ServeOptions) -> None:
    """Earlier versions kept their state in the working folder: a store or key found there is
    not the one used now, and the log says so (one line) rather than split records silently."""
    if options.store == "none" or Path.cwd() == data_dir():
        return
    left = [
        name
        for name, given in ((STORE_FILE, options.store), (KEY_FILE, options.pseudonym_key_file))
        if given is None and Path(name).exists()
    ]
    if left:
        log_warning(
            "state-in-working-folder",
            found=left,
            note=f"not used: the default is now {data_dir()}; move them there, or name them "
            "with --store and --pseudonym-key-file",
        )


def _uvicorn_settings(options: ServeOptions) -> dict[str, Any]:
    return {
        "http": NoDelayH11Protocol,
        "access_log": False,
        "log_config": None,
        "lifespan": "off",
        "ws": "none",
        # EHRs and proxies keep connections open between hook calls; uvicorn's 5 s default
        # closes them under the client's feet (nginx's default upstream keep-alive is 60 s).
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "backlog": BACKLOG,
    }


def _listening(options: ServeOptions, sock: socket.socket) -> None:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    log_event(
        "listening",
        address=shown,
        workers=options.workers,
        discovery=f"http://{shown}/cds-services",
    )


def _serve_one(options: ServeOptions, sock: socket.socket) -> None:
    server = uvicorn.Server(uvicorn.Config(build_app(options), **_uvicorn_settings(options)))
    _listening(options, sock)
    with _stopping_is_success():
        server.run(sockets=[sock])
    if not server.started:
        raise ServiceStartError("the service stopped while starting; see the lines above")


def _serve_workers(options: ServeOptions, sock: socket.socket) -> None:
    with tempfile.TemporaryDirectory(prefix="ivig-cds-") as scratch:
        if (options.jwt_issuers or options.jwt_jku) and options.jti_file is None:
            options = replace(options, jti_file=str(Path(scratch) / "jti.sqlite3"))
        os.environ[OPTIONS_ENV] = json.dumps(asdict(options))
        config = uvicorn.Config(
            "ivig_cds.service.server:app_from_environment",
            factory=True,
            workers=options.workers,
            **_uvicorn_settings(options),
        )
        supervisor = Multiprocess(config, sockets=[sock])
        _listening(options, sock)
        supervisor.run()
    # uvicorn's supervisor stops quietly (exit 0) when a worker cannot start; say so instead
    if any(
        getattr(getattr(worker, "process", None), "exitcode", None) == STARTUP_FAILURE
        for worker in supervisor.processes
    ):
        raise ServiceStartError("a worker process could not start; see the lines above")


@contextlib.contextmanager
def _stopping_is_success() -> Iterator[None]:
    """uvicorn, once shut down by SIGINT or SIGTERM, raises that signal again for the handler
    in place before it ran. Stopping is how this command ends (exit 0): that handler, here,
    does nothing, so Ctrl-C does not end in a KeyboardInterrupt, nor SIGTERM in death by it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stopped(signum: int, frame: FrameType | None) -> None:
        del signum, frame

    previous = {sig: signal.signal(sig, stopped) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
