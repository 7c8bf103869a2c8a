"""Measure `ivig-cds batch` end to end: throughput, wall time and peak memory by worker count.

Run from the repository root:  python benchmarks/bench_batch.py [--lines 1000000] [--workers 1 2 4]
Each run is the real command in a fresh process, so its figures include start-up, and the peak
RSS of that process (the parent) and of its largest worker are its own. Every run also checks
that input lines = results + errors. `measure()` is importable by other benchmark scripts.
"""

from __future__ import annotations

import argparse
import atexit
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.strategies import mixed_patients  # noqa: E402

_BLOCK = 10_000  # patients generated at a time, so that generating stays small in memory
_DIR = tempfile.TemporaryDirectory(prefix="bench-batch-")
atexit.register(_DIR.cleanup)

# The command, run in a child so that its own peak is the parent's and RUSAGE_CHILDREN the
# largest worker's peak (workers are the only children it waits for). The parent's peak is
# VmHWM where Linux has it: ru_maxrss survives exec, so it would report the peak of whichever
# process launched the probe (110 MB from benchmarks/run.py instead of 52 MB).
_PROBE = """
import json, resource, sys, time

def parent_kib():
    try:
        with open("/proc/self/status") as status:
            return next(int(l.split()[1]) for l in status if l.startswith("VmHWM"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

from ivig_cds.cli import main
sys.argv = ["ivig-cds", "batch", *sys.argv[1:]]
start = time.perf_counter()
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({
    "code": code,
    "elapsed": time.perf_counter() - start,
    "parent_kib": parent_kib(),
    "workers_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
}))
"""


def patient_file(lines: int) -> Path:
    """A file of `lines` valid mixed patients (reused within one benchmark process)."""
    path = Path(_DIR.name) / f"patients-{lines}.ndjson"
    if not path.exists():
        with path.open("w", encoding="utf-8") as f:
            for block, start in enumerate(range(0, lines, _BLOCK)):
                for patient in mixed_patients(min(_BLOCK, lines - start), seed=block):
                    f.write(json.dumps(patient) + "\n")
    return path


def _count(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def measure(lines: int, workers: int) -> dict[str, float]:
    """Run `ivig-cds batch` on `lines` generated patients with `workers` processes.

    Returns:
        lines, workers, wall_s (whole process, with start-up), batch_s (the command itself),
        lines_per_s (by wall time), parent_rss_mb, workers_rss_mb (peaks), results, errors,
        exit_code, and accounted (1.0 when input lines = results + errors, else 0.0).
    """
    source = patient_file(lines)
    out = Path(_DIR.name) / f"results-{lines}-{workers}.ndjson"
    errors = out.with_suffix(".errors.ndjson")
    command = [sys.executable, "-c", _PROBE, str(source), "--out", str(out)]
    command += ["--errors", str(errors), "--workers", str(workers), "--quiet"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    wall = time.perf_counter() - start
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"the batch failed (exit {done.returncode}): {done.stderr.strip()}")
    probe = json.loads(done.stdout.splitlines()[-1])
    results, failed = _count(out), _count(errors)
    out.unlink()
    errors.unlink()
    return {
        "lines": float(lines),
        "workers": float(workers),
        "wall_s": wall,
        "batch_s": float(probe["elapsed"]),
        "lines_per_s": lines / wall,
        "parent_rss_mb": probe["parent_kib"] / 1024,
        "workers_rss_mb": probe["workers_kib"] / 1024,
        "results": float(results),
        "errors": float(failed),
        "exit_code": float(probe["code"] or 0),
        "accounted": 1.0 if results + failed == lines else 0.0,
    }


def describe(figures: dict[str, float]) -> str:
    """One line for a table: throughput, time, memory and the accounting check."""
    check = "yes" if figures["accounted"] else "NO"
    return (
        f"{figures['lines_per_s']:,.0f} lines/s, {figures['wall_s']:.1f} s wall; "
        f"peak RSS parent {figures['parent_rss_mb']:.0f} MB, "
        f"worker {figures['workers_rss_mb']:.0f} MB; lines = results + errors: {check}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000, help="patients to generate")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="counts to run")
    args = parser.parse_args()

    start = time.perf_counter()
    size = patient_file(args.lines).stat().st_size
    print(
        f"{args.lines:,} generated patients ({size / 1e6:.0f} MB) "
        f"in {time.perf_counter() - start:.0f} s; target: 1,000,000 lines under 5 minutes\n"
    )
    header = (
        f"{'workers':>7}  {'wall s':>8}  {'lines/s':>9}  {'parent MB':>9}  {'worker MB':>9}  ok"
    )
    print(header)
    print("-" * len(header))
    for workers in args.workers:
        f = measure(args.lines, workers)
        ok = "yes" if f["accounted"] and f["errors"] == 0 else "NO"
        print(
            f"{workers:>7}  {f['wall_s']:>8.1f}  {f['lines_per_s']:>9,.0f}  "
            f"{f['parent_rss_mb']:>9.0f}  {f['workers_rss_mb']:>9.0f}  {ok}"
        )


if __name__ == "__main__":
    main()
