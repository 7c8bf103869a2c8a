"""Where `ivig-cds population` spends its time: one run broken into stages.

    python -m tests.bulk_export /tmp/export-10000 --patients 10000
    python benchmarks/profile_population.py /tmp/export-10000 [--workers 2] [--repeat 3]
    python benchmarks/profile_population.py /tmp/export-10000 --compare 3   # each shortcut

The stages are timed in this process, with `--workers 1` (every stage in one process, so each
is measured on its own): the DuckDB engine's auditing loop and `PatientAuditor`'s steps are
wrapped with timers (a few hundred nanoseconds per call, counted in the figures). A second,
untimed run with `--workers N` (the command's default pool) gives the wall time and the CPU
time of the process tree: pool overhead is that CPU time minus the one-process run's.
"""

# ruff: noqa: PLC0415  # the package is imported once the arguments are read
from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

SPENT: Counter[str] = Counter()
CALLS: Counter[str] = Counter()


def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            SPENT[name] += time.perf_counter() - started
            CALLS[name] += 1

    return wrapper


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@contextlib.contextmanager
def instrumented() -> Iterator[None]:
    """Wrap the stages' functions with timers (restored afterwards)."""
    import json

    from ivig_cds.fhir import _projection
    from ivig_cds.population import _audit, _engines, _run

    class _Json:
        def loads(self, text: str) -> Any:
            return timed("parse", json.loads)(text)

        def dumps(self, value: Any, **kwargs: Any) -> str:
            return timed("output: results/tally JSON", json.dumps)(value, **kwargs)

    saved: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, new: Any) -> None:
        saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, new)

    def mapping(*args: Any, **kwargs: Any) -> Any:
        name = "mapping (dose)" if "ivig_ordered" in state else "mapping (now)"
        return timed(name, original_mapping)(*args, **kwargs)

    def dose(*args: Any, **kwargs: Any) -> Any:
        state.add("ivig_ordered")
        try:
            return original_dose(*args, **kwargs)
        finally:
            state.discard("ivig_ordered")

    state: set[str] = set()
    original_mapping = _audit.patient_from_resources
    original_dose = _audit._dose
    patch(_audit, "json", _Json())
    patch(_audit, "patient_from_resources", mapping)
    patch(_audit, "_dose", dose)
    original_judge = _audit._judge

    def judge(*args: Any, **kwargs: Any) -> Any:
        name = "evaluation (dose)" if "ivig_ordered" in state else "evaluation (now)"
        return timed(name, original_judge)(*args, **kwargs)

    patch(_audit, "_judge", judge)
    patch(_audit, "for_mapping", timed("for_mapping (total)", _audit.for_mapping))
    patch(_audit, "ivig_given", timed("ivig_given", _audit.ivig_given))
    patch(_audit, "_on_record", timed("on_record filter", _audit._on_record))
    patch(_projection, "resources_of", timed("model validation", _projection.resources_of))
    patch(_projection, "_readable", timed("readable check", _projection._readable))
    patch(_projection, "project", timed("projection", _projection.project))
    patch(_run, "triage", timed("triage", _run.triage))
    patch(_run, "_stage", timed("stage (triage + staging file)", _run._stage))
    patch(_engines, "_sorted_index", _timed_iter("sort + read index", _engines._sorted_index))
    patch(_engines, "audit_groups", _timed_auditing(_engines.audit_groups))
    try:
        yield
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)


def _timed_iter(name: str, function: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
    def wrapper(*args: Any) -> Iterator[Any]:
        iterator = function(*args)
        while True:
            started = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                SPENT[name] += time.perf_counter() - started
                return
            SPENT[name] += time.perf_counter() - started
            CALLS[name] += 1
            yield item

    return wrapper


def _timed_auditing(function: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
    def wrapper(rows: Any, auditor: Any) -> Iterator[Any]:
        def audit(key: str, resources: Any) -> Any:
            return timed("auditor (total)", auditor)(key, resources)

        return _timed_iter("engine loop (total)", function)(rows, audit)

    return wrapper


def run(export: Path, workers: int) -> tuple[float, float]:
    from ivig_cds.population import duckdb_engine, run_population

    with tempfile.TemporaryDirectory() as out:
        cpu, started = _cpu(), time.perf_counter()
        run_population(export, Path(out), engine=duckdb_engine(workers))
        return time.perf_counter() - started, _cpu() - cpu


_CACHE = ("ivig_cds.population._audit", "JUDGED_CACHE")
_TEMPLATE = ("ivig_cds.fhir._projection", "STAND_IN_TEMPLATE")
_MEMO = ("ivig_cds.fhir._projection", "CODING_MEMO")
VARIANTS: dict[str, dict[tuple[str, str], object]] = {
    "plain": {_CACHE: 0, _TEMPLATE: False, _MEMO: 0},
    "judged once": {_TEMPLATE: False, _MEMO: 0},
    "stand-in template": {_CACHE: 0, _MEMO: 0},
    "coding memo": {_CACHE: 0, _TEMPLATE: False},
    "all three": {},
}


def compare(export: Path, rounds: int) -> None:
    """Each variant in one process (`--workers 1`, so that the switches reach the auditor),
    interleaved round by round; median wall time and its ratio to the plain path."""
    import importlib

    from ivig_cds.fhir import _projection
    from ivig_cds.population import _audit

    defaults = {
        (m, n): getattr(importlib.import_module(m), n) for v in VARIANTS.values() for m, n in v
    }
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(rounds):
        for name, switches in VARIANTS.items():
            for (module, attribute), value in (defaults | switches).items():
                setattr(importlib.import_module(module), attribute, value)
            _audit._judged.clear()
            _projection._MEMOS.clear()
            times[name].append(run(export, 1)[0])
    for (module, attribute), value in defaults.items():
        setattr(importlib.import_module(module), attribute, value)
    plain = statistics.median(times["plain"])
    print(f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, spent in times.items():
        median = statistics.median(spent)
        print(
            f"  {name:20} median {median:6.2f} s ({', '.join(f'{t:.2f}' for t in spent)}) "
            f"{median / plain:.3f}x plain"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="untimed pool runs (median)")
    parser.add_argument(
        "--compare",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="instead: each shortcut on and off, interleaved, ROUNDS times",
    )
    args = parser.parse_args()
    if args.compare:
        compare(args.export, args.compare)
        return
    from ivig_cds._records import evaluator_for

    evaluator_for(None, None)  # the knowledge base, loaded once (each worker does the same)
    lines = sum(
        sum(1 for _ in p.open("rb")) for p in args.export.glob("*.ndjson")
    )  # resources in the export
    with instrumented():
        wall1, cpu1 = run(args.export, 1)
    plain: list[tuple[float, float]] = []
    pooled: list[tuple[float, float]] = []
    for _ in range(args.repeat):  # interleaved: the machine's load hits both alike
        plain.append(run(args.export, 1))
        pooled.append(run(args.export, args.workers))
    wall0, cpu0 = (statistics.median(x[i] for x in plain) for i in (0, 1))
    wall2, cpu2 = (statistics.median(x[i] for x in pooled) for i in (0, 1))
    print(f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {lines:,} lines")
    print(f"one process, timed: wall {wall1:.2f} s, cpu {cpu1:.2f} s")
    print(
        f"untimed, median of {args.repeat}: --workers 1 wall {wall0:.2f} s, cpu {cpu0:.2f} s; "
        f"--workers {args.workers} wall {wall2:.2f} s, cpu of the tree {cpu2:.2f} s; "
        f"pool overhead (cpu) {cpu2 - cpu0:.2f} s; timers' overhead {wall1 - wall0:.2f} s"
    )
    for name, spent in sorted(SPENT.items(), key=lambda kv: -kv[1]):
        calls = CALLS[name]
        per = spent / calls * 1e6 if calls else 0.0
        print(f"  {name:32} {spent:7.2f} s {spent / wall1:6.1%} {calls:>9,} calls {per:8.1f} µs")


if __name__ == "__main__":
    main()
