"""`ivig-cds serve`: its options, TCP_NODELAY on accepted connections, where it keeps its
state, how it fails to start, and real runs with two worker processes."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner, Result

from ivig_cds._data_dir import DATA_DIR_ENV, JOURNAL_DIR, KEY_FILE, STORE_FILE
from ivig_cds._pseudonym import ENV_KEY
from ivig_cds.cli import app
from ivig_cds.service import ServeOptions
from ivig_cds.service.server import OPTIONS_ENV, NoDelayH11Protocol, app_from_environment
from tests.bulk_export import generate
from tests.service_support import PV, REPO, cards_of, request_file


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def test_serve_passes_its_options_to_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve` hands every option to the service as one ServeOptions."""
    calls: list[ServeOptions] = []
    monkeypatch.setattr("ivig_cds.service.run", calls.append)
    public = ec.generate_private_key(ec.SECP384R1()).public_key()
    pem = tmp_path / "ehr.pem"
    pem.write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    jwk_set = {"keys": [{**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public)), "kid": "1"}]}
    jwks = tmp_path / "other.json"
    jwks.write_text(json.dumps(jwk_set))
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
                "https://other.example.org": jwk_set,
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
        (
            ["--jwt-issuer", f"https://ehr.example.org={REPO / 'pyproject.toml'}"],
            "the key for issuer https://ehr.example.org is not an asymmetric public key (PEM, "
            "or a JWK Set in .json): ValueError",
        ),
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


def script() -> Path:
    found = Path(sys.executable).with_name("ivig-cds")
    if not found.exists():
        pytest.skip(f"console script not installed next to {sys.executable}; pip install -e .")
    return found


def data_env(data: Path) -> dict[str, str]:
    """The environment with the data folder at `data` and no pseudonym key of the caller's."""
    env = {k: v for k, v in os.environ.items() if k != ENV_KEY}
    return {**env, DATA_DIR_ENV: str(data)}


@contextmanager
def served(
    *args: str, cwd: Path, data: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`ivig-cds serve` as a real process group, its output in `cwd/serve.log` and its data
    folder `data` (default `cwd/data`, never the user's own); stopped with SIGINT (SIGKILL
    after 30 s) and waited for."""
    port = free_port()
    with (cwd / "serve.log").open("ab") as log:
        process = subprocess.Popen(
            [str(script()), "serve", "--port", str(port), *args],
            cwd=cwd,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env=data_env(data or cwd / "data"),
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


def stop(process: subprocess.Popen[bytes], how: int = signal.SIGINT) -> None:
    if process.poll() is None:
        os.killpg(process.pid, how)
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
    assert process.returncode == 0  # stopped by SIGINT: the documented exit 0
    assert tiers == {"second_line"}
    output = (tmp_path / "serve.log").read_text().splitlines()
    lines = [json.loads(line) for line in output if line.startswith("{")]
    calls = [line for line in lines if line.get("endpoint") == "service"]
    assert len(calls) == 6 and {c["status"] for c in calls} == {200}
    assert any(line.get("event") == "listening" and line.get("workers") == 2 for line in lines)


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


def log_events(path: Path) -> list[dict[str, str]]:
    """The text log's lines as `key=value` fields (values without spaces)."""
    events = []
    for line in path.read_text().splitlines():
        fields = dict(part.split("=", 1) for part in line.split()[2:] if "=" in part)
        if "event" in fields:
            events.append(fields)
    return events


def test_serve_keeps_its_state_in_the_data_folder_and_says_where(tmp_path: Path) -> None:
    """Nothing lands in the working folder: the key (0600), store and journal go to the data
    folder; the log names the new key, then the store, then says listening; a second start
    reads the same key; SIGTERM ends it with exit 0."""
    work, data = tmp_path / "work", tmp_path / "data"
    work.mkdir()
    with served(cwd=work, data=data) as (base, process):
        assert httpx.get(f"{base}/health", timeout=20).json()["store"] == "writing"
        stop(process, signal.SIGTERM)
    assert process.returncode == 0
    with served(cwd=work, data=data):
        pass
    assert sorted(p.name for p in work.iterdir()) == ["serve.log"]
    key = data / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert (data / STORE_FILE).is_file()
    events = log_events(work / "serve.log")
    first, later = events[:3], [e for e in events[3:] if e["event"] != "request"]
    assert [e["event"] for e in first] == ["pseudonym-key-created", "store", "listening"]
    assert first[0]["file"] == str(key)
    assert (first[1]["store"], first[1]["journal"]) == (
        f"sqlite:///{data / STORE_FILE}",
        str(data / JOURNAL_DIR),
    )
    assert [e["event"] for e in later] == ["pseudonym-key", "store", "listening"]
    assert later[0]["file"] == str(key)


def test_population_finds_the_key_serve_made(tmp_path: Path) -> None:
    """After `serve` has run once, `population EXPORT --out OUT` (no key option) keys its
    results under that same key, as the README's example runs it."""
    data = tmp_path / "data"
    with served("--store", "none", cwd=tmp_path, data=data):
        pass
    assert not (data / KEY_FILE).exists()  # no store, no key
    with served(cwd=tmp_path, data=data):
        pass
    export = generate(tmp_path / "export", 6)
    done = subprocess.run(
        [str(script()), "population", "export", "--out", "audit", "--workers", "1"],
        cwd=tmp_path,
        env=data_env(data),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    assert done.stderr.splitlines()[-1] == (
        "wrote audit/results.ndjson, audit/errors.ndjson, audit/summary.json, audit/report.html"
    )
    key = (data / KEY_FILE).read_text().strip().encode()
    results = (tmp_path / "audit" / "results.ndjson").read_text().splitlines()
    want = {
        hmac.new(key, pid.encode(), hashlib.sha256).hexdigest()
        for pid, e in export.patients.items()
        if e.tier is not None
    }
    assert {json.loads(line)["patient"] for line in results} == want


def test_a_busy_port_is_one_line_and_exit_1_before_any_state(tmp_path: Path) -> None:
    """With the port taken by another listener, `serve` prints one sentence naming the port,
    never says it listens, exits 1, and leaves no key, store or data folder behind."""
    data = tmp_path / "data"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        for workers in ("1", "2"):
            done = subprocess.run(
                [str(script()), "serve", "--port", str(port), "--workers", workers],
                cwd=tmp_path,
                env=data_env(data),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert (done.returncode, done.stdout) == (1, ""), done.stderr
            assert done.stderr == (
                f"error: port {port} on 127.0.0.1 is in use; choose another with --port\n"
            )
    assert not data.exists()


def test_a_new_key_is_not_created_inside_a_git_work_tree(tmp_path: Path) -> None:
    """A data folder inside a git work tree: `serve` refuses to create the key there (exit 1,
    one line saying why and what to do) and writes neither key nor store."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    data = repo / "state"
    result = CliRunner().invoke(
        app, ["serve", "--port", str(free_port())], env={DATA_DIR_ENV: str(data), ENV_KEY: None}
    )
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: not creating a pseudonym key at {data / KEY_FILE}: it is inside the git work "
        f"tree {repo}, where `git add .` would commit it; keep it outside (IVIG_CDS_DATA_DIR or "
        "--pseudonym-key-file) or pass --allow-key-in-work-tree\n"
    )
    assert not (data / KEY_FILE).exists() and not (data / STORE_FILE).exists()


def test_a_worker_that_cannot_start_stops_the_supervisor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker whose app cannot be built exits with uvicorn's start-up failure code, which
    makes the supervisor stop instead of restarting it forever (`serve` then exits 1)."""
    monkeypatch.delenv(ENV_KEY, raising=False)
    options = {"store": f"sqlite:///{tmp_path / 's.sqlite3'}", "journal_dir": str(tmp_path),
               "pseudonym_key_file": str(tmp_path / "no-such.key")}  # fmt: skip
    monkeypatch.setenv(OPTIONS_ENV, json.dumps(options))
    with pytest.raises(SystemExit) as stopped:
        app_from_environment()
    assert stopped.value.code == 3


def test_gitignore_covers_what_serve_writes_in_a_working_folder() -> None:
    """`git add .` in a checkout where serve once kept state in the working folder adds
    neither the key, nor the store and its WAL files, nor the journal."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout")
    names = [KEY_FILE, STORE_FILE, f"{STORE_FILE}-wal", f"{STORE_FILE}-shm",
             f"{JOURNAL_DIR}/0001.ndjson"]  # fmt: skip
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", *names],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout.splitlines() == names


def test_state_left_in_the_working_folder_is_named_not_used(tmp_path: Path) -> None:
    """A store and key where earlier versions kept them (the working folder) are not used,
    and one warning line names them and the data folder now used."""
    work, data = tmp_path / "work", tmp_path / "data"
    work.mkdir()
    (work / STORE_FILE).write_bytes(b"")
    (work / KEY_FILE).write_text("an-old-key-0123456789\n")
    with served(cwd=work, data=data):
        pass
    line = (work / "serve.log").read_text().splitlines()[0]
    assert line.endswith(
        f" warning event=state-in-working-folder found={STORE_FILE},{KEY_FILE} note=not used: "
        f"the default is now {data}; move them there, or name them with --store and "
        "--pseudonym-key-file"
    )
    assert (data / KEY_FILE).exists()
