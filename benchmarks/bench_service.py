"""Load test of the running CDS Hooks service, from a second process on loopback.

    python benchmarks/bench_service.py                      # 200 req/s for 60 s, then the search
    python benchmarks/bench_service.py --rate 200 --seconds 20 --no-search

Starts `ivig-cds serve --workers 2` with the SQLite store (and JSON request logs to a file) in a
temporary directory, then sends patient-view and order-sign requests open-loop at a fixed rate
over keep-alive connections (a minimal HTTP/1.1 client on asyncio, so the generator costs
little CPU). Latency is measured from each request's *scheduled* time, so a generator or server
that falls behind shows in the figures instead of hiding (no coordinated omission). After the
run it counts the decisions in the store: every card answered must be there.

Then it searches for the highest rate whose p99 stays under 25 ms (steps of 100 req/s, 15 s
each). The machine is shared: the load average is printed beside every figure; figures taken
while other work ran are not comparable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "cds-hooks"
REQUESTS = [
    ("/cds-services/ivig-ms-patient-view", "patient-view-postpartum"),
    ("/cds-services/ivig-ms-patient-view", "patient-view-rrms-interferon-intolerant"),
    ("/cds-services/ivig-ms-order-sign", "order-sign-spms-ivig"),
    ("/cds-services/ivig-ms-order-sign", "order-sign-rrms-on-glatiramer-ivig"),
]
P99_TARGET_MS = 25.0


@dataclass
class RunResult:
    rate: float
    seconds: float
    sent: int
    ok: int
    cards: int
    failed: int
    retried: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    max_lag_ms: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    failures: dict[str, int]

    def line(self) -> str:
        return (
            f"{self.rate:6.0f} req/s x {self.seconds:.0f} s: {self.ok}/{self.sent} ok, "
            f"{self.failed} failed{_why(self.failures)}, {self.retried} retried on a new "
            f"connection; p50 {self.p50_ms:.2f} ms, "
            f"p90 {self.p90_ms:.2f} ms, "
            f"p99 {self.p99_ms:.2f} ms, max {self.max_ms:.1f} ms; generator lag max "
            f"{self.max_lag_ms:.1f} ms; load average {_load(self.load_before)} -> "
            f"{_load(self.load_after)}"
        )


def _why(failures: dict[str, int]) -> str:
    return f" ({', '.join(f'{k}: {n}' for k, n in failures.items())})" if failures else ""


def _load(values: tuple[float, float, float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _bodies() -> list[tuple[str, bytes, bytes]]:
    """(path, body template head, tail) so each request gets its own hookInstance cheaply."""
    out = []
    for path, name in REQUESTS:
        data = json.loads((FIXTURES / f"{name}.json").read_text())
        data["hookInstance"] = "@@HOOK@@"
        text = json.dumps(data).encode()
        head, tail = text.split(b"@@HOOK@@")
        out.append((path, head, tail))
    return out


class Connection:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return status, await self.reader.readexactly(length)


async def _run(port: int, rate: float, seconds: float, tag: str) -> RunResult:
    bodies = _bodies()
    idle: list[Connection] = [await Connection.open(port) for _ in range(8)]
    latencies: list[float] = []
    lags: list[float] = []
    counts = {"ok": 0, "cards": 0, "failed": 0, "retried": 0}
    failures: dict[str, int] = {}
    total = int(rate * seconds)
    load_before = os.getloadavg()
    start = time.perf_counter() + 0.2

    async def one(i: int, scheduled: float) -> None:
        reused = bool(idle)
        conn = idle.pop() if idle else await Connection.open(port)
        lags.append(time.perf_counter() - scheduled)
        path, head, tail = bodies[i % len(bodies)]
        payload = head + f"{tag}-{i}".encode() + tail
        try:
            try:
                status, body = await conn.post(path, payload)
            except (asyncio.IncompleteReadError, ConnectionResetError):
                if not reused:
                    raise
                # The server closed an idle keep-alive connection as we reused it: retry once
                # on a new one, as HTTP clients do (counted, so it shows).
                counts["retried"] += 1
                conn = await Connection.open(port)
                status, body = await conn.post(path, payload)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            counts["failed"] += 1
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
            return
        latencies.append(time.perf_counter() - scheduled)
        idle.append(conn)
        if status == 200:
            counts["ok"] += 1
            counts["cards"] += len(json.loads(body)["cards"])
        else:
            counts["failed"] += 1
            failures[f"HTTP {status}"] = failures.get(f"HTTP {status}", 0) + 1

    tasks = []
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.writer.close()
    ordered = sorted(latencies) or [float("nan")]

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return RunResult(
        rate=rate,
        seconds=seconds,
        sent=total,
        ok=counts["ok"],
        cards=counts["cards"],
        failed=counts["failed"],
        retried=counts["retried"],
        p50_ms=statistics.median(ordered) * 1000,
        p90_ms=pct(0.90),
        p99_ms=pct(0.99),
        max_ms=ordered[-1] * 1000,
        max_lag_ms=max(lags, default=0.0) * 1000,
        load_before=load_before,
        load_after=os.getloadavg(),
        failures=failures,
    )


def _start(workdir: Path, port: int, workers: int, store: str) -> subprocess.Popen[bytes]:
    script = Path(sys.executable).with_name("ivig-cds")
    log = (workdir / "serve.log").open("ab")
    process = subprocess.Popen(
        [str(script), "serve", "--port", str(port), "--workers", str(workers),
         "--store", store, "--log-format", "json"],
        cwd=workdir, stdout=log, stderr=log, start_new_session=True,
        env={**os.environ, "IVIG_CDS_DATA_DIR": str(workdir)},  # its key and journal stay here
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                time.sleep(1.0)  # let every worker finish loading the knowledge base
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the service did not start; see serve.log")


def _decisions(workdir: Path) -> int:
    with sqlite3.connect(workdir / "store.sqlite3") as db:
        count: int = db.execute("SELECT count(*) FROM decisions").fetchone()[0]
        return count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="duration of the main run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--store", default="sqlite:///store.sqlite3", help="serve --store (default SQLite)"
    )
    parser.add_argument("--step-seconds", type=float, default=15.0, help="per search step")
    parser.add_argument("--no-search", action="store_true", help="skip the highest-rate search")
    parser.add_argument("--keep", type=Path, help="run in this directory and keep serve.log")
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, {sys.platform}, Python {sys.version.split()[0]}; "
        "shared with other work: compare figures only with the load average beside them"
    )
    with tempfile.TemporaryDirectory(prefix="ivig-cds-bench-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        process = _start(workdir, port, args.workers, args.store)
        try:
            asyncio.run(_run(port, 50, 3, "warmup"))
            counting = args.store == "sqlite:///store.sqlite3"
            before = _decisions(workdir) if counting else 0
            main_run = asyncio.run(_run(port, args.rate, args.seconds, "main"))
            time.sleep(0.5)
            recorded = _decisions(workdir) - before if counting else main_run.cards
            print(f"--workers {args.workers}, --store {args.store}, JSON logs:")
            print("  " + main_run.line())
            lost = main_run.cards - recorded
            journalled = (workdir / "serve.log").read_text().count("store-away-journalling")
            print(f"  store fell back to the journal {journalled} times")
            print(f"  cards answered {main_run.cards}, decisions recorded {recorded}: "
                  f"{'none lost' if lost == 0 else f'{lost} LOST'}")  # fmt: skip
            if not args.no_search:
                best = None
                rate = args.rate
                while True:
                    result = asyncio.run(_run(port, rate, args.step_seconds, f"r{rate:.0f}"))
                    print("  search " + result.line())
                    if result.failed or result.p99_ms >= P99_TARGET_MS:
                        break
                    best = result
                    rate += 100
                shown = f"{best.rate:.0f} req/s (p99 {best.p99_ms:.1f} ms)" if best else "none"
                print(f"  highest rate with p99 < {P99_TARGET_MS:.0f} ms: {shown}")
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
