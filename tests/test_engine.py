"""The durable_rules wall: isolated, thread-safe, leak-free, and silent about patients."""

from __future__ import annotations

import ctypes
import importlib.metadata
import json
import multiprocessing
import platform
import random
import sys
import threading
from typing import Any

import pytest

from ivig_cds import (
    EngineError,
    EngineUnavailableError,
    Evaluator,
    KnowledgeBase,
    _engine,
    evaluate,
)
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
    durable = _engine.load_durable()
    real = durable.assert_fact
    monkeypatch.setattr(durable, "assert_fact", lambda handle, message: (2, 0))
    with pytest.raises(EngineError, match=r"failed while matching \(durable_rules error code 2\)"):
        matcher.match(fact)
    monkeypatch.setattr(durable, "assert_fact", real)
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


@pytest.fixture
def durable_unloadable(monkeypatch: pytest.MonkeyPatch) -> None:
    """durable's C module cannot be imported (as on Python 3.13 without our compat module)."""
    monkeypatch.setattr(_engine, "_loaded", None)
    monkeypatch.setitem(sys.modules, "durable_rules_engine", None)  # import raises ImportError


@pytest.mark.usefixtures("durable_unloadable")
def test_an_unloadable_durable_is_one_clear_error(kb: KnowledgeBase) -> None:
    """Not an ImportError traceback: which Python, which durable, and the command that fixes it."""
    with pytest.raises(EngineUnavailableError) as caught:
        Evaluator(kb)
    message = str(caught.value)
    assert message.startswith(
        f"the rule engine cannot be loaded on Python {platform.python_version()} "
        f"(CPython, {sys.executable}): durable-rules {importlib.metadata.version('durable-rules')}"
        " does not load ("
    )
    assert "pip install --force-reinstall --no-cache-dir 'durable-rules==2.0.28'" in message
    assert "with gcc 14 or later, with CPPFLAGS=-DPyEval_CallObject=PyObject_CallObject" in message


@pytest.mark.usefixtures("durable_unloadable")
def test_the_reference_engine_needs_no_durable(kb: KnowledgeBase) -> None:
    """durable is loaded on first use: importing ivig_cds and the oracle engine work without it."""
    assert (
        Evaluator(kb, engine="reference").evaluate({"ms_phenotype": "PPMS"}).primary_rule == "C06"
    )


def test_a_missing_durable_is_named_with_the_gcc_14_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not installed: the pip command, the compiler it needs, and CPPFLAGS for gcc 14."""
    monkeypatch.setattr(_engine, "durable_version", lambda: None)
    message = _engine._unavailable(ModuleNotFoundError("no", name="durable_rules_engine"))
    assert message.endswith(
        ": durable-rules is not installed. Install it with pip install 'durable-rules==2.0.28' "
        "(it compiles C: gcc and the Python headers are needed, e.g. apt-get install gcc "
        "python3-dev); with gcc 14 or later set "
        "CPPFLAGS=-DPyEval_CallObject=PyObject_CallObject for that command."
    )


def test_a_missing_compat_module_says_to_rebuild_ivig_cds() -> None:
    """On 3.13 an ivig-cds built without its C module is told apart from a broken durable."""
    message = _engine._unavailable(ModuleNotFoundError("no", name="ivig_cds._durable_compat"))
    assert "lacks its compiled module ivig_cds._durable_compat" in message
    assert "pip install -e . in a checkout" in message


def test_the_compat_module_defines_pyeval_callobject_exactly_where_python_lacks_it() -> None:
    """Built for every Python; defines the symbol from 3.13 on, where durable's build lacks it."""
    _engine.load_durable()
    from ivig_cds import _durable_compat  # noqa: PLC0415 (after load_durable, as in use)

    library = ctypes.CDLL(_durable_compat.__file__)
    if sys.version_info >= (3, 13):
        assert _durable_compat.PROVIDES_CALL_OBJECT == 1
        assert library.PyEval_CallObject  # exported, and loaded globally before durable
        assert "ivig_cds._durable_compat" in sys.modules
    else:
        assert _durable_compat.PROVIDES_CALL_OBJECT == 0
        with pytest.raises(AttributeError):
            getattr(library, "PyEval_CallObject")  # noqa: B009 (libpython's own one stays in use)
