"""The durable_rules wall: isolated, thread-safe, leak-free, and silent about patients."""

from __future__ import annotations

import json
import multiprocessing
import random
import threading
from typing import Any

import pytest

from ivig_cds import EngineError, Evaluator, KnowledgeBase, _engine, evaluate
from ivig_cds._compiler import compile_rules
from ivig_cds._engine import DurableMatcher

from .strategies import mixed_patients

MIXED: list[dict[str, Any]] = [
    {"ms_phenotype": "RRMS", "first_line_dmt": "declined", "thromboembolic_risk_factors": ["DVT"]},
    {"ms_phenotype": "SPMS", "intended_use": "acute_relapse"},
    {"ms_phenotype": "CIS", "first_line_dmt": "suitable", "sex": "female"},
    {"ms_phenotype": "PPMS"},
    {"ms_phenotype": "RRMS", "acute_relapse": True},
    {"ms_phenotype": "RRMS", "sex": "female", "pregnancy_status": "postpartum"},
    {"ms_phenotype": "not_ms"},
    {},
]


def test_every_applicable_rule_fires_not_only_the_first(kb: KnowledgeBase) -> None:
    """Facts, not events: all three matching rules fire for one fact."""
    compiled = compile_rules(kb.conclusions)
    facts = {"ms_phenotype": "RRMS", "first_line_dmt": "suitable", "question": "fixed_deficits"}
    assert DurableMatcher(compiled.definition).match(compiled.encode(facts)) == {"C01", "C09"}


def test_the_same_fact_twice_fires_twice(kb: KnowledgeBase) -> None:
    """Each fact is retracted after matching; durable would otherwise ignore the repeat."""
    compiled = compile_rules(kb.conclusions)
    matcher = DurableMatcher(compiled.definition)
    fact = compiled.encode({"ms_phenotype": "PPMS", "question": "disease_modifying"})
    assert [matcher.match(fact) for _ in range(3)] == [{"C06"}] * 3


def test_many_sequential_evaluations_leave_no_session_behind(evaluator: Evaluator) -> None:
    """Far past durable's 1,024-session cap, evaluations keep working (sessions are deleted)."""
    results = {evaluator.evaluate(MIXED[i % len(MIXED)]).tier for i in range(3000)}
    assert len(results) == 6


def _stress(evaluator: Evaluator, threads: int, per_thread: int) -> None:
    """Each thread evaluates the same mixed patients in its own order; all must match."""
    data = mixed_patients(per_thread, seed=3)
    expected = [evaluator.evaluate(p) for p in data]
    failures: list[str] = []
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        order = list(range(per_thread))
        random.Random(t).shuffle(order)
        start.wait()  # all threads enter the engine together
        for k in order:
            try:
                if evaluator.evaluate(data[k]) != expected[k]:
                    failures.append(f"thread {t} patient {k}: different answer")
            except Exception as exc:
                failures.append(f"thread {t} patient {k}: {exc!r}")

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert failures == []


def test_threads_get_the_sequential_answers(evaluator: Evaluator) -> None:
    """8 threads x 1,500 mixed patients give exactly the answers computed one by one."""
    _stress(evaluator, threads=8, per_thread=1_500)


@pytest.mark.slow
def test_threads_get_the_sequential_answers_at_full_size(evaluator: Evaluator) -> None:
    """8 threads x 10,000 mixed patients give exactly the answers computed one by one."""
    _stress(evaluator, threads=8, per_thread=10_000)


def _tiers_in_child(patients_: list[dict[str, Any]]) -> list[str]:
    return [evaluate(p).model_dump_json() for p in patients_]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_processes_get_the_same_answers(method: str, evaluator: Evaluator) -> None:
    """Forked and spawned workers answer exactly as the parent does."""
    data = mixed_patients(400, seed=5)
    expected = [evaluator.evaluate(p).model_dump_json() for p in data]
    with multiprocessing.get_context(method).Pool(2) as pool:
        assert pool.map(_tiers_in_child, [data[:200], data[200:]]) == [
            expected[:200],
            expected[200:],
        ]


def test_engine_errors_carry_no_fact() -> None:
    """A value durable rejects gives an EngineError with the error code and no fact text."""
    matcher = DurableMatcher({"r": {"all": [{"m": {"$and": [{"k": "v"}, {"x": 1}]}}]}})
    with pytest.raises(EngineError) as caught:
        matcher.match({"k": "v", "x": 1e-05, "secret": "PATIENT-SECRET"})
    assert "PATIENT-SECRET" not in str(caught.value)
    assert str(caught.value).startswith("durable_rules failed while matching")
    # The wall holds: the next call on the same matcher still works.
    assert matcher.match({"k": "v", "x": 1}) == {"r"}


def test_a_failure_code_durable_returns_is_an_engine_error(
    kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Code 2 ("seen before") would mean a stale fact: refuse to answer and reset the session."""
    compiled = compile_rules(kb.conclusions)
    matcher = DurableMatcher(compiled.definition)
    fact = compiled.encode({"ms_phenotype": "PPMS", "question": "disease_modifying"})
    real = _engine._dre.assert_fact
    monkeypatch.setattr(_engine._dre, "assert_fact", lambda handle, message: (2, 0))
    with pytest.raises(EngineError, match=r"failed while matching \(durable_rules error code 2\)"):
        matcher.match(fact)
    monkeypatch.setattr(_engine._dre, "assert_fact", real)
    assert matcher.match(fact) == {"C06"}


def test_rejected_ruleset_is_an_engine_error() -> None:
    """A definition durable cannot compile is reported without durable's exception."""
    with pytest.raises(EngineError, match="rejected the compiled ruleset"):
        DurableMatcher({"r": {"all": [{"m": {"$and": [{"x": float("inf")}]}}]}})


def test_compiled_definition_is_plain_json(kb: KnowledgeBase) -> None:
    """The compiler emits JSON-serialisable data with one durable rule per YAML rule."""
    compiled = compile_rules(kb.conclusions)
    assert set(json.loads(json.dumps(compiled.definition))) == {r.id for r in kb.conclusions}
    assert compiled.definition["C13a"] == {
        "all": [{"m": {"$and": [{"ivig_kind": "facts"}, {"$nex": {"ms_phenotype": 1}}]}}]
    }
