"""Every command the README shows runs verbatim in a fresh copy of the repository.

The commands are read from the README's `sh` blocks, in order, and run in a shell in a copy of
what git tracks, with this test's `ivig-cds` first on PATH and a private data folder and home.
A command expects exit code 0 unless its comment says "exit code N". `serve` runs in the
background until the end of its block, so that the commands after it (curl, audit) reach it.
Only what needs a real deployment is not run, each with its reason (NOT_RUN); the Quickstart's
two commands are what CI itself runs (`.ci/run`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

# Commands that need what only a deployment has, by a string they contain.
NOT_RUN = {
    "spark-submit": "needs a Spark cluster (tests/test_population_spark.py runs the same audit "
    "on a local Spark)",
    "pip install": "the Quickstart installs; CI (.ci/run) runs exactly that in fresh venvs",
}
EXPECTED_EXIT = re.compile(r"exit code (\d+)")


@dataclass(frozen=True)
class Command:
    block: int
    line: str

    @property
    def expected(self) -> int:
        comment = self.line.split("  #", 1)[1] if "  #" in self.line else ""
        found = EXPECTED_EXIT.search(comment)
        return int(found.group(1)) if found else 0


def readme_commands() -> list[Command]:
    """The README's shell commands, continuation lines joined, blank lines dropped."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)
    commands = []
    for number, block in enumerate(blocks):
        joined = block.replace("\\\n", " ")
        commands += [Command(number, line.strip()) for line in joined.splitlines() if line.strip()]
    return commands


COMMANDS = readme_commands()


def _tracked_copy(target: Path) -> None:
    """What a fresh clone holds: the files git tracks, as they are in the work tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def _environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLUMNS", "FORCE_COLOR"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(home),
        IVIG_CDS_DATA_DIR=str(home / "data"),
        SHELL="/bin/bash",
    )
    return env


def _port_of(line: str) -> int:
    found = re.search(r"--port (\d+)", line)
    return int(found.group(1)) if found else 8080


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/cds-services", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _wait_for(port: int, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Until the service answers discovery (a bound port alone is not a started service)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"serve exited with {server.returncode} before answering")
        if _answers(port):
            return
        time.sleep(0.2)
    raise AssertionError(f"serve did not answer on {port} within {timeout} s")


def _stop(server: subprocess.Popen[bytes] | None, port: int = 8080) -> None:
    """Stop the service and its workers, and wait until its port is free again."""
    if server is None:
        return
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    deadline = time.monotonic() + 30
    while _listening(port) and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: nothing tells which files a fresh clone holds")
    root = tmp_path_factory.mktemp("fresh-clone")
    _tracked_copy(root)
    yield root


def test_the_readme_shows_the_commands_it_promises() -> None:
    """The README's shell blocks are found: the Quickstart and the command line at least."""
    lines = [c.line for c in COMMANDS]
    assert lines[0].endswith("pip install . && ivig-cds evaluate examples/")
    assert any(line.startswith("ivig-cds serve") for line in lines)
    assert len(COMMANDS) > 30


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_every_readme_command_runs_verbatim(fresh_copy: Path) -> None:
    """Each command exits as the README says, in a fresh copy, in the README's order."""
    home = fresh_copy.parent / "home"
    home.mkdir(exist_ok=True)
    env = _environment(home)
    server: subprocess.Popen[bytes] | None = None
    block = -1
    failures = []
    try:
        for command in COMMANDS:
            if command.block != block:
                _stop(server)
                server, block = None, command.block
            if any(marker in command.line for marker in NOT_RUN):
                continue
            if command.line.startswith("ivig-cds serve"):
                _stop(server)
                server = subprocess.Popen(
                    command.line,
                    shell=True,
                    cwd=fresh_copy,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                _wait_for(_port_of(command.line), server)
                continue
            done = subprocess.run(
                ["bash", "-o", "pipefail", "-c", command.line],
                cwd=fresh_copy,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if done.returncode != command.expected:
                failures.append(
                    f"{command.line}\n  exit {done.returncode}, expected {command.expected}\n"
                    f"  {done.stderr.strip()[-600:]}"
                )
    finally:
        _stop(server)
    assert not failures, "\n".join(failures)
