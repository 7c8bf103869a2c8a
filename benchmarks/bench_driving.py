"""How to drive durable_rules: the measurements behind `_engine.DurableMatcher`'s design.

Run: python benchmarks/bench_driving.py [--n 5000]
Every style matches the shipped conclusions against the same mixed patients and must fire
exactly what the plain-Python oracle fires; the table gives the median per patient and the
ratio to the oracle, measured side by side in this one run.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import durable_rules_engine as dre
from durable.engine import Host, MessageNotHandledException

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ivig_cds import load_knowledge_base  # noqa: E402
from ivig_cds._compiler import compile_rules  # noqa: E402
from ivig_cds._engine import DurableMatcher  # noqa: E402
from ivig_cds._evaluate import infer_question  # noqa: E402
from ivig_cds._patient import known_fields  # noqa: E402
from ivig_cds._patient_input import parse_patient  # noqa: E402
from ivig_cds._reference import ReferenceMatcher  # noqa: E402
from tests.strategies import mixed_patients  # noqa: E402

Fact = dict[str, Any]
_names = itertools.count()


def _name(action: str) -> str:
    return action[2 : action.index('"', 2)]


def _drain(handle: int, state: int) -> set[str]:
    fired = set()
    action = dre.start_action_for_state(handle, state)
    result = action[1] if action else None
    while result:
        fired.add(_name(result))
        result = dre.complete_and_start_action(handle, state)
    return fired


def host_api(definition: Mapping[str, Any]) -> Callable[[Fact], set[str]]:
    """durable.engine.Host, as the durable docs use it: a fresh sid per patient, then delete."""
    fired: set[str] = set()
    name = f"host{next(_names)}"

    def action(rule_id: str) -> Callable[[object], None]:
        return lambda c: fired.add(rule_id)

    rules = {rule_id: {**rule, "run": action(rule_id)} for rule_id, rule in definition.items()}
    host = Host({name: rules})
    sids = itertools.count()

    def match(fact: Fact) -> set[str]:
        fired.clear()
        sid = str(next(sids))
        with contextlib.suppress(MessageNotHandledException):
            host.assert_fact(name, {**fact, "sid": sid})
        host.delete_state(name, sid)
        return set(fired)

    return match


def module_fresh_sid(definition: Mapping[str, Any]) -> Callable[[Fact], set[str]]:
    """The C module directly, a new sid per patient, deleted after the drain."""
    handle = dre.create_ruleset(f"fresh{next(_names)}", json.dumps(definition))
    sids = itertools.count()

    def match(fact: Fact) -> set[str]:
        sid = str(next(sids))
        code, state = dre.assert_fact(handle, json.dumps({**fact, "sid": sid}))
        fired = _drain(handle, state) if code == 0 else set()
        if code == 0:
            dre.delete_state(handle, sid)
        return fired

    return match


def module_retract(definition: Mapping[str, Any]) -> Callable[[Fact], set[str]]:
    """The C module, one session kept for ever: assert, drain, retract the same fact."""
    handle = dre.create_ruleset(f"retract{next(_names)}", json.dumps(definition))

    def match(fact: Fact) -> set[str]:
        message = json.dumps({**fact, "sid": "1", "id": "1"})
        code, state = dre.assert_fact(handle, message)
        fired = _drain(handle, state) if code == 0 else set()
        dre.retract_fact(handle, message)
        return fired

    return match


def module_batched(
    definition: Mapping[str, Any], size: int
) -> Callable[[list[Fact]], list[set[str]]]:
    """The C module, `assert_facts` of `size` patients in one session, told apart by `id`."""
    handle = dre.create_ruleset(f"batch{next(_names)}", json.dumps(definition))

    def match(facts: list[Fact]) -> list[set[str]]:
        fired: list[set[str]] = [set() for _ in facts]
        message = json.dumps([{**f, "sid": "1", "id": str(i)} for i, f in enumerate(facts)])
        code, state = dre.assert_facts(handle, message)
        if code == 0:
            action = dre.start_action_for_state(handle, state)
            result = action[1] if action else None
            while result:
                decoded = json.loads(result)
                ((rule_id, body),) = decoded.items()
                fired[int(body["m"]["id"])].add(rule_id)
                result = dre.complete_and_start_action(handle, state)
            dre.delete_state(handle, "1")
        return fired

    return match


def _median_us(fn: Callable[[Fact], object], items: list[Fact]) -> float:
    samples = []
    for item in items:
        start = time.perf_counter_ns()
        fn(item)
        samples.append((time.perf_counter_ns() - start) / 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5_000, help="patients per style")
    n = parser.parse_args().n

    kb = load_knowledge_base()
    compiled = compile_rules(kb.conclusions)
    oracle = ReferenceMatcher(kb.conclusions)
    facts, encoded = [], []
    for data in mixed_patients(n, seed=9):
        patient = parse_patient(data)
        f = {**known_fields(patient), "question": infer_question(patient).intended_use}
        facts.append(f)
        encoded.append(compiled.encode(f))
    expected = [set(oracle.match(f)) for f in facts]

    shipped = DurableMatcher(compiled.definition)
    styles: dict[str, Callable[[Fact], set[str]]] = {
        "Host API, fresh sid + delete_state": host_api(compiled.definition),
        "C module, fresh sid + delete_state": module_fresh_sid(compiled.definition),
        "C module, one sid + retract_fact": module_retract(compiled.definition),
        "C module, one sid + delete_state (shipped)": lambda f: set(shipped.match(f)),
    }
    base = _median_us(lambda i: oracle.match(facts[i]), list(range(n)))  # type: ignore[arg-type]
    print(f"{n:,} mixed patients; oracle (plain Python) median {base:.1f} µs\n")
    print(f"{'style':<46}{'median µs':>10}{'x oracle':>10}  agrees")
    for name, fn in styles.items():
        got = [fn(f) for f in encoded]
        agrees = got == expected
        median = _median_us(fn, encoded)
        print(f"{name:<46}{median:>10.1f}{median / base:>10.1f}  {agrees}")
    for size in (10, 100):
        batched = module_batched(compiled.definition, size)
        chunks = [encoded[i : i + size] for i in range(0, n, size)]
        got = [s for chunk in chunks for s in batched(chunk)]
        start = time.perf_counter()
        for chunk in chunks:
            batched(chunk)
        per = (time.perf_counter() - start) / n * 1e6
        label = f"C module, assert_facts x{size} (mean)"
        print(f"{label:<46}{per:>10.1f}{per / base:>10.1f}  {got == expected}")


if __name__ == "__main__":
    main()
