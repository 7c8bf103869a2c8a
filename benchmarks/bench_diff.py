"""Measure `ivig-cds diff` over NDJSON patient contexts, against `ivig-cds batch` on the same input.

Run from the repository root:
    python benchmarks/bench_diff.py [--lines 100000] [--workers 2] [--runs 3]
        [--old-rules DIR --old-evidence DIR] [--rules DIR --evidence DIR]

By default the old side is the shipped knowledge base and the new side a copy of it with one
conclusion's tier changed (C06: insufficient evidence -> not recommended), so both sides are
evaluated in full and some answers change. Each run is the real command in a fresh process
(start-up included), writing NDJSON to a file; the figure is the median of `--runs` runs of
each command, alternated so that both see the same machine. The target: 100,000 contexts in
under a minute on 2 cores. `diff` evaluates every context twice (once per knowledge base), so
the expected ratio to `batch` is about 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_batch import measure, patient_file  # noqa: E402

TARGET_S = 60.0


def edited_copy(folder: Path) -> tuple[Path, Path]:
    """The shipped knowledge base with C06's tier changed, in `folder`."""
    shutil.copytree(REPO / "rules", folder / "rules")
    shutil.copytree(REPO / "evidence", folder / "evidence")
    (path,) = (folder / "rules" / "conclusions").glob("C06-*.yaml")
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("\ntier: insufficient_evidence\n", "\ntier: not_recommended\n"))
    return folder / "rules", folder / "evidence"


def run_diff(source: Path, sides: list[str], workers: int, out: Path) -> tuple[float, int, int]:
    """One `ivig-cds diff` run: wall seconds, exit code, changed items written."""
    command = [sys.executable, "-m", "ivig_cds", "diff", str(source), *sides]
    command += ["--format", "ndjson", "--out", str(out), "--workers", str(workers)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 3):
        raise RuntimeError(f"the diff failed (exit {done.returncode}): {done.stderr.strip()}")
    with out.open("rb") as lines:
        changed = sum(1 for _ in lines)
    out.unlink()
    return wall, done.returncode, changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=100_000, help="patient contexts")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--runs", type=int, default=3, help="runs of each command (median)")
    for flag in ("--old-rules", "--old-evidence", "--rules", "--evidence"):
        parser.add_argument(flag, type=Path, default=None, metavar="DIR")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-diff-") as scratch:
        folder = Path(scratch)
        rules, evidence = args.rules, args.evidence
        if rules is None and evidence is None:
            rules, evidence = edited_copy(folder)
        sides = ["--rules", str(rules), "--evidence", str(evidence)]
        if args.old_rules or args.old_evidence:
            sides += ["--old-rules", str(args.old_rules), "--old-evidence", str(args.old_evidence)]
        source = patient_file(args.lines)
        load = os.getloadavg()[0]
        print(
            f"{args.lines:,} generated patient contexts ({source.stat().st_size / 1e6:.0f} MB), "
            f"{args.workers} workers, {args.runs} runs each; load average {load:.2f}"
        )
        diffs, batches = [], []
        changed = code = 0
        for run in range(1, args.runs + 1):
            wall, code, changed = run_diff(source, sides, args.workers, folder / "diff.ndjson")
            batch = measure(args.lines, args.workers)["wall_s"]
            diffs.append(wall)
            batches.append(batch)
            print(f"  run {run}: diff {wall:.1f} s, batch {batch:.1f} s")
        diff_s, batch_s = statistics.median(diffs), statistics.median(batches)
        verdict = "met" if diff_s < TARGET_S else "NOT met"
        print(
            f"diff:  median {diff_s:.1f} s ({args.lines / diff_s:,.0f} contexts/s), exit {code}, "
            f"{changed:,} changed answers\n"
            f"batch: median {batch_s:.1f} s ({args.lines / batch_s:,.0f} contexts/s)\n"
            f"ratio diff / batch: {diff_s / batch_s:.2f}; target {TARGET_S:.0f} s: {verdict}; "
            f"load average now {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
