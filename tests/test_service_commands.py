"""`ivig-cds serve`: its options, TCP_NODELAY on accepted connections, and a real run with
two worker processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from ivig_cds.cli import app
from ivig_cds.service import ServeOptions
from ivig_cds.service.server import NoDelayH11Protocol
from tests.service_support import PV, cards_of, request_file


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def test_serve_passes_its_options_to_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve` hands every option to the service as one ServeOptions."""
    calls: list[ServeOptions] = []
    monkeypatch.setattr("ivig_cds.service.run", calls.append)
    pem = tmp_path / "ehr.pem"
    pem.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    jwks = tmp_path / "other.json"
    jwks.write_text('{"keys": []}')
    result = run(
        "serve", "--port", "9090", "--fhir-server", "https://fhir.example.org/r4",
        "--jwt-issuer", f"https://ehr.example.org={pem}",
        "--jwt-issuer", f"https://other.example.org={jwks}",
        "--jwt-jku", "https://sandbox.cds-hooks.org=https://sandbox.cds-hooks.org/.well-known/jwks.json",
        "--public-url", "https://cds.example.org", "--workers", "2",
        "--cors-origin", "https://a.example", "--cors-origin", "https://b.example",
        "--log-format", "json", "--log-level", "WARNING",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert calls == [
        ServeOptions(
            host="127.0.0.1",
            port=9090,
            workers=2,
            fhir_server="https://fhir.example.org/r4",
            jwt_issuers={
                "https://ehr.example.org": pem.read_text(),
                "https://other.example.org": {"keys": []},
            },
            jwt_jku={
                "https://sandbox.cds-hooks.org": [
                    "https://sandbox.cds-hooks.org/.well-known/jwks.json"
                ]
            },
            public_base_url="https://cds.example.org",
            cors_origins=["https://a.example", "https://b.example"],
            log_format="json",
            log_level="warning",
        )
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jwt-issuer", "no-equals-sign"], "'no-equals-sign' is not ISSUER=KEYFILE"),
        (
            ["--jwt-issuer", "https://ehr.example.org=/no/such/key.pem"],
            "cannot read key file '/no/such/key.pem'",
        ),
        (["--jwt-jku", "https://ehr.example.org"], "is not ISSUER=URL with an http(s) URL"),
        (["--log-format", "xml"], "expected 'json' or 'text'"),
        (["--store", "mysql://db"], "'mysql://db' is not sqlite:///FILE, postgresql://... or none"),
        (["--workers", "0"], "Invalid value for '--workers'"),
    ],
)
def test_serve_rejects_bad_options(args: list[str], message: str) -> None:
    """A malformed option is a usage error (exit 2) naming the problem, before any server."""
    result = run("serve", *args)
    assert "Traceback" not in result.output
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())


def test_accepted_connections_get_tcp_nodelay() -> None:
    """The protocol turns Nagle off on the connection it is given, whatever the listener did."""

    class Transport:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def get_extra_info(self, name: str) -> Any:
            return self.sock if name == "socket" else None

    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    try:
        accepted.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
        protocol = NoDelayH11Protocol.__new__(NoDelayH11Protocol)
        seen: list[Any] = []
        # Only the override's own effect is under test; uvicorn's setup is stubbed out.
        base = NoDelayH11Protocol.__mro__[1]
        original = base.connection_made
        base.connection_made = lambda self, transport: seen.append(transport)  # type: ignore[method-assign]
        try:
            protocol.connection_made(Transport(accepted))  # type: ignore[arg-type]
        finally:
            base.connection_made = original  # type: ignore[method-assign]
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert len(seen) == 1
    finally:
        for s in (client, accepted, listener):
            s.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def served(*args: str, cwd: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`ivig-cds serve` as a real process group, its output in `cwd/serve.log`; stopped with
    SIGINT (SIGKILL after 30 s) and waited for."""
    port = free_port()
    script = Path(sys.executable).with_name("ivig-cds")
    if not script.exists():
        pytest.skip(f"console script not installed next to {sys.executable}; pip install -e .")
    with (cwd / "serve.log").open("ab") as log:
        process = subprocess.Popen(
            [str(script), "serve", "--port", str(port), *args],
            cwd=cwd,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log_text = (cwd / "serve.log").read_text()[-2000:]
                raise RuntimeError(f"serve did not start: {log_text}")
            time.sleep(0.2)
        yield base, process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_serve_with_two_workers_answers_and_logs_json(tmp_path: Path) -> None:
    """Two worker processes answer cards and health; each request logs one JSON line."""
    with served("--workers", "2", "--log-format", "json", cwd=tmp_path) as (base, process):
        with httpx.Client(base_url=base, timeout=20) as http:
            tiers = {
                cards_of(http.post(PV, json=request_file("patient-view-postpartum")))[0][
                    "extension"
                ]["org.ivig-cds"]["tier"]
                for _ in range(6)
            }
        stop(process)
    assert tiers == {"second_line"}
    output = (tmp_path / "serve.log").read_text().splitlines()
    lines = [json.loads(line) for line in output if line.startswith("{")]
    calls = [line for line in lines if line.get("endpoint") == "service"]
    assert len(calls) == 6 and {c["status"] for c in calls} == {200}
    assert any(line.get("event") == "start" and line.get("workers") == 2 for line in lines)


def worker_pids(supervisor: int) -> list[int]:
    """The uvicorn worker processes (spawned children) of `supervisor`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == supervisor and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def test_killing_a_worker_mid_burst_loses_no_acknowledged_record(tmp_path: Path) -> None:
    """SIGKILL one of two workers while four clients send cards and feedback; after a restart
    every decision and feedback the service acknowledged is in the SQLite store."""
    acknowledged: dict[str, set[str]] = {"decisions": set(), "feedback": set()}
    lock = threading.Lock()
    with served("--workers", "2", "--store", "sqlite:///store.sqlite3", cwd=tmp_path) as (
        base,
        process,
    ):
        workers = worker_pids(process.pid)
        assert len(workers) == 2

        def client(n: int) -> None:
            with httpx.Client(base_url=base, timeout=20) as http:
                for i in range(25):
                    hook = f"burst-{n}-{i}"
                    body = {**request_file("patient-view-postpartum"), "hookInstance": hook}
                    try:
                        response = http.post(PV, json=body)
                        if response.status_code != 200:
                            continue
                        with lock:
                            acknowledged["decisions"].add(hook)
                        card = response.json()["cards"][0]
                        stamp = f"2026-11-30T10:{n:02d}:{i:02d}Z"
                        item = {"card": card["uuid"], "outcome": "accepted",
                                "outcomeTimestamp": stamp}  # fmt: skip
                        if (
                            http.post(f"{PV}/feedback", json={"feedback": [item]}).status_code
                            == 200
                        ):
                            with lock:
                                acknowledged["feedback"].add(stamp)
                    except httpx.HTTPError:
                        continue  # the connection to the killed worker: not acknowledged

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        while len(acknowledged["decisions"]) < 20:
            time.sleep(0.01)
        os.kill(workers[0], signal.SIGKILL)
        for thread in threads:
            thread.join(timeout=120)
    with served("--store", "sqlite:///store.sqlite3", cwd=tmp_path) as (base, _):
        assert httpx.get(f"{base}/health", timeout=20).json()["store"] == "writing"
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    with engine.connect() as connection:
        hooks = set(connection.scalars(sa.text("SELECT hook_instance FROM decisions")))
        stamps = set(connection.scalars(sa.text("SELECT outcome_timestamp FROM feedback")))
    engine.dispose()
    assert len(acknowledged["decisions"]) > 20
    assert acknowledged["decisions"] <= hooks
    assert acknowledged["feedback"] <= stamps
