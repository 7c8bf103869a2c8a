"""Measure evaluate() against the plain-Python oracle; print a table of medians and ratios.

Run: python benchmarks/bench_evaluate.py [--n 20000]
Figures are reported, never asserted: machines here are noisy.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from ivig_cds import Evaluator, load_knowledge_base
from ivig_cds._evaluate import infer_question
from ivig_cds._patient import known_fields, parse_patient
from ivig_cds._reference import matches

PHENOTYPES = ["CIS", "RRMS", "SPMS", "PPMS", "not_ms", None]
FIRST_LINE = ["suitable", "not_tolerated", "contraindicated", "declined", "ineffective", None]


def _patients(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        sex = rng.choice(["female", "male", None])
        pregnancy = rng.choice(["pregnant", "postpartum", "not_pregnant", None])
        if sex == "male":
            pregnancy = rng.choice(["not_pregnant", None])
        data = {
            "patient_id": f"bench-{i}",
            "ms_phenotype": rng.choice(PHENOTYPES),
            "first_line_dmt": rng.choice(FIRST_LINE),
            "acute_relapse": rng.choice([True, False, None]),
            "on_iv_methylprednisolone": rng.choice([True, False, None]),
            "pregnancy_status": pregnancy,
            "sex": sex,
            "edss": rng.randrange(0, 21) / 2,
            "age_years": rng.randrange(18, 80),
            "thromboembolic_risk_factors": rng.choice([[], ["obesity"], None]),
        }
        out.append({k: v for k, v in data.items() if v is not None})
    return out


def _time(fn: Callable[[Any], object], items: list[Any]) -> list[float]:
    samples = []
    for item in items:
        start = time.perf_counter_ns()
        fn(item)
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000, help="patients per measurement")
    n = parser.parse_args().n

    start = time.perf_counter()
    evaluator = Evaluator(load_knowledge_base())
    load_ms = (time.perf_counter() - start) * 1000

    patients = _patients(n)
    contexts = [parse_patient(p) for p in patients]
    facts = [{**known_fields(c), "question": infer_question(c).intended_use} for c in contexts]
    rules = evaluator.knowledge_base.conclusions
    compiled = evaluator._compiled
    matcher = evaluator._matcher

    oracle = _time(lambda f: [r.id for r in rules if matches(r, f)], facts)
    durable = _time(lambda f: matcher.match(compiled.encode(f)), facts)
    end_to_end = _time(evaluator.evaluate, patients)

    base = statistics.median(oracle)
    print(f"patients: {n}; knowledge base load + compile: {load_ms:.1f} ms\n")
    print(f"{'measure':<34}{'median µs':>11}{'p99 µs':>10}{'x oracle':>10}")
    for name, samples in (
        ("oracle matching (plain Python)", oracle),
        ("durable matching", durable),
        ("evaluate() end to end", end_to_end),
    ):
        ordered = sorted(samples)
        median = statistics.median(ordered)
        p99 = ordered[int(len(ordered) * 0.99)]
        print(f"{name:<34}{median:>11.1f}{p99:>10.1f}{median / base:>10.1f}")


if __name__ == "__main__":
    main()
