"""Batch evaluation: the records function, the reader, the ordered pool and `ivig-cds batch`."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from ivig_cds import EngineError, Evaluator, KnowledgeGapError
from ivig_cds._batch import (
    IN_FLIGHT_PER_WORKER,
    BatchAbortedError,
    BatchSummary,
    read_chunks,
    run_batch,
)
from ivig_cds._records import (
    Outcome,
    Record,
    RecordEvaluator,
    evaluate_line,
    evaluate_records,
)
from ivig_cds._vocabulary import TIER_LABELS, Tier
from ivig_cds.cli import app
from ivig_cds.cli.batch import _batch_progress
from tests.strategies import mixed_patients, patients

REPO = Path(__file__).resolve().parents[1]
SENTINEL = "SENTINEL-7f3a9c"  # a patient_id that must never appear in an error or a log line
ERROR_KINDS = {
    "blank_line",
    "line_too_long",
    "not_utf8",
    "invalid_json",
    "not_an_object",
    "invalid_patient",
    "not_evaluated",
}


def ndjson(items: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(p) + "\n" for p in items).encode()


def mixed_input(n: int) -> tuple[bytes, set[int]]:
    """`n` lines, every seventh one broken in a different way; returns the bad line numbers."""
    broken = [b"", b"{bad", b"[1, 2]", b'{"edss": NaN}', b'{"edss": 11}', b"\xff\xfe", b"   "]
    lines, bad = [], set()
    for i, patient in enumerate(mixed_patients(n, seed=3), start=1):
        if i % 7 == 0:
            lines.append(broken[(i // 7) % len(broken)])
            bad.add(i)
        else:
            lines.append(json.dumps(patient).encode())
    return b"\n".join(lines) + b"\n", bad


def run_text(data: bytes, **options: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    results, errors = io.StringIO(), io.StringIO()
    summary = run_batch(io.BytesIO(data), results, errors, RecordEvaluator(), **options)
    parsed = [json.loads(x) for x in results.getvalue().splitlines()]
    failed = [json.loads(x) for x in errors.getvalue().splitlines()]
    assert (summary.results, summary.errors) == (len(parsed), len(failed))
    return parsed, failed


def one(raw: bytes | None, **options: Any) -> dict[str, Any]:
    (outcome,) = evaluate_records([(7, raw)], **options)
    assert outcome.line == 7
    record: dict[str, Any] = json.loads(outcome.json)
    return record


# --- one line -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind", "problem"),
    [
        (b"", "blank_line", "the line is empty; expected a JSON object"),
        (b" \t\r", "blank_line", "the line is empty; expected a JSON object"),
        (b'{"sex": "f\xffemale"}', "not_utf8", "byte 11 is not UTF-8 (invalid start byte)"),
        (b"\xc3", "not_utf8", "byte 1 is not UTF-8 (unexpected end of data)"),
        (b"{bad", "invalid_json", "Expecting property name enclosed in double quotes at column 2"),
        (b'{"edss": 1} x', "invalid_json", "Extra data at column 13"),
        (
            b'{"edss": NaN}',
            "invalid_json",
            "NaN is not allowed: JSON has no NaN or infinity at column 10",
        ),
        (
            b'{"age_years": -Infinity}',
            "invalid_json",
            "-Infinity is not allowed: JSON has no NaN or infinity at column 15",
        ),
        (b"[" * 100_000, "invalid_json", "nested too deeply for a patient context"),
        (
            b'{"edss": 1, "edss": 2}',
            "invalid_json",
            "key 'edss' appears more than once at column 13",
        ),
        (b"[1]", "not_an_object", "expected a JSON object of patient fields, got an array"),
        (b'"RRMS"', "not_an_object", "expected a JSON object of patient fields, got a string"),
        (b"4.5", "not_an_object", "expected a JSON object of patient fields, got a number"),
        (b"true", "not_an_object", "expected a JSON object of patient fields, got a boolean"),
        (b"null", "not_an_object", "expected a JSON object of patient fields, got null"),
        (
            b'{"edss": 11}',
            "invalid_patient",
            "edss: Input should be less than or equal to 10 (got 11)",
        ),
        (
            b'{"ms_phenotyp": "RRMS"}',
            "invalid_patient",
            "'ms_phenotyp': unknown field; did you mean 'ms_phenotype'?",
        ),
        (None, "line_too_long", "the line is longer than the limit of 1,048,576 bytes"),
    ],
)
def test_each_malformed_line_gets_its_exact_error(
    raw: bytes | None, kind: str, problem: str
) -> None:
    """Every way a line can fail gives one error record: line number, kind and exact reason."""
    assert one(raw) == {"line": 7, "error": kind, "problems": [problem]}


def test_an_invalid_patient_lists_every_problem() -> None:
    """All of a patient's problems are listed, each naming its field."""
    record = one(b'{"sex": "male", "pregnancy_status": "pregnant", "edss": 2.3}')
    assert record["error"] == "invalid_patient"
    assert record["problems"] == [
        "edss: must be from 0 to 10 in steps of 0.5 (got 2.3)",
        "pregnancy_status: 'pregnant' contradicts sex 'male'; correct one of them",
    ]


def test_a_deep_but_parsable_value_is_an_invalid_patient() -> None:
    """Deep nesting that JSON parses is rejected by validation, without the value."""
    record = one(b'{"thromboembolic_risk_factors": ' + b"[" * 500 + b"]" * 500 + b"}")
    assert record["error"] == "invalid_patient"
    assert record["problems"][0].endswith("(got a list)")


class _FailingEvaluator:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def evaluate(self, patient: object) -> None:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [KnowledgeGapError("no rule settles the question"), EngineError("durable_rules failed")],
)
def test_an_engine_failure_is_an_error_record_not_a_crash(error: Exception) -> None:
    """KnowledgeGapError and EngineError become `not_evaluated` records with their message."""
    outcome = evaluate_line(_FailingEvaluator(error), 3, b"{}")  # type: ignore[arg-type]
    assert outcome == Outcome(
        3,
        False,
        "not_evaluated",
        json.dumps({"line": 3, "error": "not_evaluated", "problems": [str(error)]})
        .replace(", ", ",")
        .replace(": ", ":"),
    )


def test_the_records_function_pickles_and_agrees_with_evaluate(evaluator: Evaluator) -> None:
    """RecordEvaluator survives pickle and its results are exactly Evaluator.evaluate's."""
    data = mixed_patients(60, seed=11)
    records: list[Record] = [(i, json.dumps(p).encode()) for i, p in enumerate(data, start=1)]
    compact = pickle.loads(pickle.dumps(RecordEvaluator()))(records)
    full = pickle.loads(pickle.dumps(evaluate_records))(records, full=True)
    for patient, short, whole in zip(data, compact, full, strict=True):
        expected = evaluator.evaluate(patient)
        assert (
            whole.json == f'{{"line":{short.line},"recommendation":{expected.model_dump_json()}}}'
        )
        assert (short.ok, short.label) == (True, expected.tier.value)
        line = json.loads(short.json)
        assert line == {
            "line": short.line,
            "patient_id": expected.patient_id,
            "tier": expected.tier.value,
            "question": expected.question.intended_use.value,
            "question_inferred": expected.question.inferred,
            "primary_rule": expected.primary_rule,
            "secondary_rules": [f.rule_id for f in expected.findings[1:]],
            "certainty": expected.certainty.level.value if expected.certainty else None,
            "citations": [c.id for c in expected.citations],
            "cautions": [c.rule_id for c in expected.cautions],
            "missing_data": list(expected.missing_data),
            "kb_version": expected.knowledge_base.version,
            "kb_hash": expected.knowledge_base.content_hash,
        }
        assert len(short.json) < 600  # a million patients make hundreds of MB, not GB


# --- the reader -----------------------------------------------------------------------------


class _Watched(io.BytesIO):
    """A stream that remembers the largest single read, to prove reads stay bounded."""

    largest = 0

    def readline(self, size: int | None = -1) -> bytes:
        data = super().readline(size)
        self.largest = max(self.largest, len(data))
        return data


def test_an_over_long_line_is_skipped_without_being_held() -> None:
    """A 3 MiB line is read past in bounded pieces; the lines around it keep their numbers."""
    stream = _Watched(b'{"edss": 1}\n' + b"x" * (3 << 20) + b'\n{"edss": 2}')
    chunks = list(read_chunks(stream, max_line_bytes=1000))
    records = [r for c in chunks for r in c.records]
    assert records == [(1, b'{"edss": 1}'), (2, None), (3, b'{"edss": 2}')]
    assert stream.largest <= 1 << 16
    assert chunks[-1].end == len(stream.getvalue())


def test_the_size_limit_excludes_the_newline() -> None:
    """A line of exactly the limit is read; one byte more is too long."""
    records = [
        r
        for c in read_chunks(io.BytesIO(b"abcd\nabcde\nabcd"), max_line_bytes=4)
        for r in c.records
    ]
    assert records == [(1, b"abcd"), (2, None), (3, b"abcd")]


def test_a_final_line_without_newline_and_a_byte_order_mark() -> None:
    """The last line counts without its newline; a BOM opening the file is not part of line 1."""
    data = b'\xef\xbb\xbf{"ms_phenotype": "SPMS"}\r\n\n{"ms_phenotype": "PPMS"}'
    results, errors = run_text(data)
    assert [(r["line"], r["tier"]) for r in results] == [
        (1, "not_recommended"),
        (3, "insufficient_evidence"),
    ]
    assert errors == [{"line": 2, "error": "blank_line", "problems": [errors[0]["problems"][0]]}]


def test_chunks_are_bounded_by_lines_and_by_bytes() -> None:
    """A chunk closes at its line count or its byte budget, whichever comes first."""
    data = b"".join(b"y" * 100 + b"\n" for _ in range(50))
    by_lines = [len(c.records) for c in read_chunks(io.BytesIO(data), chunk_lines=20)]
    by_bytes = [len(c.records) for c in read_chunks(io.BytesIO(data), chunk_bytes=1000)]
    assert (by_lines, by_bytes) == ([20, 20, 10], [10] * 5)


# --- the run: order, counts, pool -----------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_order_is_kept_and_no_line_is_lost(workers: int, evaluator: Evaluator) -> None:
    """Mixed good and bad lines: results and errors in input order; lines = results + errors."""
    data, bad = mixed_input(700)
    progress: list[int] = []
    results, errors = run_text(
        data, workers=workers, chunk_lines=40, progress=lambda end, _: progress.append(end)
    )
    assert [r["line"] for r in results] == [i for i in range(1, 701) if i not in bad]
    assert [e["line"] for e in errors] == sorted(bad)
    assert len(results) + len(errors) == 700
    expected = [
        evaluator.evaluate(p) for i, p in enumerate(mixed_patients(700, seed=3), 1) if i not in bad
    ]
    assert [r["primary_rule"] for r in results] == [e.primary_rule for e in expected]
    assert progress == sorted(progress) and progress[-1] == len(data)


def test_the_summary_counts_tiers_and_error_kinds() -> None:
    """The summary's per-tier and per-kind counts are those of the written lines."""
    data, _ = mixed_input(210)
    out, err = io.StringIO(), io.StringIO()
    summary = run_batch(io.BytesIO(data), out, err, RecordEvaluator(), chunk_lines=50)
    results = [json.loads(x) for x in out.getvalue().splitlines()]
    errors = [json.loads(x) for x in err.getvalue().splitlines()]
    assert summary.lines == 210 == summary.results + summary.errors
    assert summary.tiers == Counter(r["tier"] for r in results)
    assert (
        summary.error_kinds
        == Counter(e["error"] for e in errors)
        == Counter(
            {
                "blank_line": 8,
                "invalid_json": 9,
                "not_an_object": 5,
                "invalid_patient": 4,
                "not_utf8": 4,
            }
        )
    )
    assert summary.elapsed > 0 and summary.rate > 0


def test_spawned_workers_give_the_same_results() -> None:
    """The spawn start method (macOS, Windows, Python 3.14) works: workers load on their own."""
    data, _ = mixed_input(300)
    forked = run_text(data, workers=2, chunk_lines=40)
    spawned = run_text(
        data, workers=2, chunk_lines=40, mp_context=multiprocessing.get_context("spawn")
    )
    assert spawned == forked


class _Counted(io.BytesIO):
    lines = 0

    def readline(self, size: int | None = -1) -> bytes:
        self.lines += 1
        return super().readline(size)


def test_only_a_bounded_number_of_chunks_is_read_ahead() -> None:
    """When the first chunk is written, at most workers x IN_FLIGHT + 1 chunks have been read."""
    stream = _Counted(ndjson(mixed_patients(2000, seed=5)))
    read_at_first_write: list[int] = []

    def first(_: int, __: object) -> None:
        if not read_at_first_write:
            read_at_first_write.append(stream.lines)

    run_batch(
        stream,
        io.StringIO(),
        io.StringIO(),
        RecordEvaluator(),
        workers=2,
        chunk_lines=20,
        progress=first,
    )
    assert read_at_first_write[0] <= (2 * IN_FLIGHT_PER_WORKER + 1) * 20 + 1
    assert stream.lines == 2001  # and then the whole input


def _die(records: list[Record]) -> list[Outcome]:
    os._exit(3)


def _raise(records: list[Record]) -> list[Outcome]:
    raise RuntimeError(f"something with the record in it: {records[0][1]!r}")


@pytest.mark.parametrize(
    ("records_function", "message"),
    [
        (_die, "a worker process stopped unexpectedly (killed, or out of memory?)"),
        (_raise, "a worker failed with RuntimeError"),
    ],
)
def test_a_dying_worker_aborts_with_a_clear_error(records_function: Any, message: str) -> None:
    """A killed worker or a bug in one stops the run with a message, not a hang or the data."""
    data = ndjson([{"patient_id": SENTINEL}] * 100)
    with pytest.raises(BatchAbortedError) as caught:
        run_batch(
            io.BytesIO(data),
            io.StringIO(),
            io.StringIO(),
            records_function,
            workers=2,
            chunk_lines=10,
        )
    assert str(caught.value) == message
    assert caught.value.summary is not None and caught.value.summary.lines == 0


class _Full(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")


def test_an_unwritable_output_aborts_with_a_clear_error() -> None:
    """A full disk stops the run with the system's reason."""
    with pytest.raises(
        BatchAbortedError, match=r"^cannot write the output: No space left on device$"
    ):
        run_batch(io.BytesIO(b"{}\n"), _Full(), io.StringIO(), RecordEvaluator())


# --- fuzzing --------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
_fields = st.sampled_from(
    [
        "patient_id",
        "ms_phenotype",
        "edss",
        "sex",
        "age_years",
        "pregnancy_status",
        "weeks_postpartum",
        "acute_relapse",
        "thromboembolic_risk_factors",
        "intended_use",
        "first_line_dmt",
    ]
)
_patientish = st.dictionaries(_fields, _json, max_size=6) | patients()


def _checked(lines: list[bytes]) -> None:
    records: list[Record] = list(enumerate(lines, start=1))
    outcomes = evaluate_records(records)
    assert [o.line for o in outcomes] == list(range(1, len(lines) + 1))
    for outcome in outcomes:
        record = json.loads(outcome.json)
        assert record["line"] == outcome.line
        if not outcome.ok:
            assert record["error"] == outcome.label in ERROR_KINDS
            assert record["problems"] and all(isinstance(p, str) and p for p in record["problems"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=5))
def test_random_bytes_always_give_one_clear_record_per_line(lines: list[bytes]) -> None:
    """Arbitrary bytes: each line gives exactly one result or one well-formed error record."""
    _checked([line.replace(b"\n", b" ") for line in lines])


@settings(max_examples=150, deadline=None)
@given(st.lists(_json | _patientish, max_size=5))
def test_random_json_always_gives_one_clear_record_per_line(values: list[Any]) -> None:
    """Arbitrary JSON values and patient-shaped objects: one clear record per line."""
    _checked([json.dumps(v).encode() for v in values])


# --- the command line -----------------------------------------------------------------------


def cli(*args: str | Path, stdin: bytes | None = None) -> Result:
    result = CliRunner().invoke(app, ["batch", *map(str, args)], input=stdin)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result


def lines_in(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.binary(max_size=40) | _patientish.map(lambda p: json.dumps(p).encode()), max_size=6
    ),
    st.booleans(),
)
def test_the_command_never_loses_a_line_on_random_input(
    tmp_path: Path, lines: list[bytes], newline_at_end: bool
) -> None:
    """Through the CLI: exit 0 or 1, and lines = results + errors, whatever the bytes."""
    source = tmp_path / "in.ndjson"
    data = b"\n".join(line.replace(b"\n", b"") for line in lines)
    data += b"\n" if newline_at_end and lines else b""
    source.write_bytes(data)
    result = cli(source, "--out", tmp_path / "out.ndjson", "--workers", "1")
    results, errors = lines_of(tmp_path / "out.ndjson"), lines_of(tmp_path / "out.errors.ndjson")
    expected = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    assert len(results) + len(errors) == expected
    assert result.exit_code == (1 if errors else 0)


def test_the_command_writes_results_errors_and_a_summary(tmp_path: Path) -> None:
    """Default errors path beside --out, exit 1 for bad lines, a summary with every count."""
    data, bad = mixed_input(70)
    (tmp_path / "in.ndjson").write_bytes(data)
    result = cli(tmp_path / "in.ndjson", "--out", tmp_path / "results.ndjson", "--workers", "2")
    assert result.exit_code == 1
    results = lines_of(tmp_path / "results.ndjson")
    errors = lines_of(tmp_path / "results.errors.ndjson")
    assert (len(results), [e["line"] for e in errors]) == (60, sorted(bad))
    tiers = Counter(r["tier"] for r in results)
    out = result.stdout.splitlines()
    assert out[0].startswith("70 lines: 60 results, 10 errors, in ")
    assert out[0].endswith(" lines/s)")
    width = max(map(len, TIER_LABELS.values()))
    for tier, count in tiers.items():  # in words: the results file keeps the codes
        assert f"  {TIER_LABELS[Tier(tier)]:<{width}} {count:>12,}" in out
    assert not any(tier in result.stdout for tier in tiers if "_" in tier)
    assert "  error: not_utf8        " in result.stdout
    assert out[-2:] == [
        f"results: {tmp_path / 'results.ndjson'}",
        f"errors:  {tmp_path / 'results.errors.ndjson'}",
    ]
    assert result.stderr == ""


def test_full_writes_whole_recommendations(tmp_path: Path, evaluator: Evaluator) -> None:
    """--full: each result line holds the line number and the whole recommendation."""
    patient = {"ms_phenotype": "RRMS", "first_line_dmt": "not_tolerated", "sex": "female"}
    result = cli(
        "-", "--out", tmp_path / "r.ndjson", "--full", "-q", stdin=json.dumps(patient).encode()
    )
    assert (result.exit_code, result.stdout) == (0, "")
    assert (tmp_path / "r.ndjson").read_text() == (
        f'{{"line":1,"recommendation":{evaluator.evaluate(patient).model_dump_json()}}}\n'
    )
    assert (tmp_path / "r.errors.ndjson").read_text() == ""


def test_no_error_or_message_carries_the_patient(tmp_path: Path) -> None:
    """Bad lines holding a sentinel patient_id: it appears in no error record, no output text."""
    bad = [
        {"patient_id": SENTINEL, "edss": 11},
        {"patient_id": SENTINEL, "sex": "male", "pregnancy_status": "pregnant"},
        {"patient_id": SENTINEL, "ms_phenotype": "RRMS", "unknown": SENTINEL},
        {"patient_id": SENTINEL, "thromboembolic_risk_factors": [SENTINEL * 10, ""]},
    ]
    lines = [json.dumps(b).encode() for b in bad]
    lines += [json.dumps(b).encode()[:-1] for b in bad]  # truncated: invalid JSON
    lines += [json.dumps(b).encode() + b"\xff" for b in bad]  # not UTF-8
    lines += [json.dumps([b]).encode() for b in bad]  # not an object
    (tmp_path / "in.ndjson").write_bytes(b"\n".join(lines))
    result = cli(tmp_path / "in.ndjson", "--out", tmp_path / "o.ndjson")
    errors = (tmp_path / "o.errors.ndjson").read_text()
    assert len(errors.splitlines()) == len(lines)
    assert SENTINEL not in errors + result.output


def test_custom_knowledge_base_is_used(tmp_path: Path) -> None:
    """--rules/--evidence: results carry the edited knowledge base's hash."""
    rules, evidence = tmp_path / "rules", tmp_path / "evidence"
    shutil.copytree(REPO / "rules", rules)
    shutil.copytree(REPO / "evidence", evidence)
    manifest = rules / "knowledge-base.yaml"
    manifest.write_text(manifest.read_text() + "\n# edited\n")
    result = cli(
        "-",
        "--out",
        tmp_path / "r.ndjson",
        "--rules",
        rules,
        "--evidence",
        evidence,
        stdin=b'{"ms_phenotype": "SPMS"}\n',
    )
    assert result.exit_code == 0
    shipped = one(b'{"ms_phenotype": "SPMS"}')
    assert lines_of(tmp_path / "r.ndjson")[0]["kb_hash"] not in ("", shipped["kb_hash"])


def test_an_invalid_knowledge_base_exits_1_before_writing(tmp_path: Path) -> None:
    """A broken rules folder is reported like `evaluate` does, and no output is created."""
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    (rules / "knowledge-base.yaml").write_text("name: [\n")
    result = cli("-", "--out", tmp_path / "r.ndjson", "--rules", rules, stdin=b"{}\n")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: the knowledge base is invalid")
    assert not (tmp_path / "r.ndjson").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.ndjson", "--out", "o.ndjson"], "'missing.ndjson' does not exist"),
        ([".", "--out", "o.ndjson"], "'.' is a directory; give one NDJSON file"),
        (["in.ndjson", "--out", "in.ndjson"], "'in.ndjson' is the input file"),
        (
            ["in.ndjson", "--out", "o.ndjson", "--errors", "./in.ndjson"],
            "'in.ndjson' is the input file",
        ),
        (
            ["in.ndjson", "--out", "o.ndjson", "--errors", "o.ndjson"],
            "'o.ndjson' is also the results file",
        ),
        (
            ["in.ndjson", "--out", "no/such/dir/o.ndjson"],
            "cannot write 'no/such/dir/o.ndjson': No such file or directory",
        ),
        (["in.ndjson", "--out", "o.ndjson", "--workers", "0"], "Invalid value for '--workers'"),
        (["in.ndjson"], "Missing option '--out'"),
    ],
)
def test_usage_errors_exit_2_with_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    """Missing input, a directory, an output that is the input or unwritable: exit 2."""
    monkeypatch.chdir(tmp_path)
    Path("in.ndjson").write_bytes(b"{}\n")
    result = cli(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert Path("in.ndjson").read_bytes() == b"{}\n"


def test_the_progress_bar_shows_lines_and_rate(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At a terminal the bar shows progress by bytes with the line count and rate."""
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then treats the captured stderr as a terminal
    with _batch_progress(1000, show=True) as update:
        assert update is not None
        update(500, BatchSummary(lines=1234, elapsed=2.0))
        time.sleep(0.15)
        update(1000, BatchSummary(lines=2468, elapsed=4.0))
    with _batch_progress(1000, show=False) as nothing:
        assert nothing is None
    err = capsys.readouterr().err
    assert "Evaluating" in err and "2,468 lines, 617/s" in err


# --- as a real process: Ctrl-C --------------------------------------------------------------


def _script() -> Path:
    script = Path(sys.executable).with_name("ivig-cds")
    if not script.exists():
        pytest.skip(f"console script not installed next to {sys.executable}; pip install -e .")
    return script


def test_ctrl_c_stops_workers_and_exits_130_without_traceback(tmp_path: Path) -> None:
    """SIGINT to the whole process group: one clear message, exit 130, no worker tracebacks."""
    source = tmp_path / "in.ndjson"
    source.write_bytes(ndjson(mixed_patients(2000, seed=9)) * 40)
    out = tmp_path / "out.ndjson"
    proc = subprocess.Popen(
        [str(_script()), "batch", str(source), "--out", str(out), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while (not out.exists() or out.stat().st_size == 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert stderr == "error: interrupted; the outputs are incomplete\n"
    assert stdout == ""


# --- large ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_large_run_keeps_every_line_in_constant_memory(tmp_path: Path) -> None:
    """200,000 lines with 2 workers as a process: all accounted for, parent RSS stays small."""
    source, bad = tmp_path / "in.ndjson", 0
    with source.open("wb") as f:
        for block in range(20):  # every fifth block mixes in broken lines
            if block % 5 == 0:
                data, broken = mixed_input(10_000)
                bad += len(broken)
            else:
                data = ndjson(mixed_patients(10_000, seed=block))
            f.write(data)
    out = tmp_path / "out.ndjson"
    probe = (
        "import resource, sys\nfrom ivig_cds.cli import main\n"
        f"sys.argv = ['ivig-cds', 'batch', {str(source)!r}, '--out', {str(out)!r}, "
        "'--workers', '2', '-q']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "print(code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=900
    )
    code, rss_kib = done.stdout.split()
    results, errors = lines_in(out), lines_in(tmp_path / "out.errors.ndjson")
    assert (code, results + errors, errors) == ("1", 200_000, bad)
    assert int(rss_kib) < 200_000  # the input is ~50 MB and the results ~80 MB: neither held


def test_a_yaml_file_given_to_batch_gets_a_hint(tmp_path: Path) -> None:
    """batch reads NDJSON: a YAML patient file is a usage error pointing to `evaluate`."""
    patient = tmp_path / "patient.yaml"
    patient.write_text("ms_phenotype: RRMS\n")
    result = CliRunner().invoke(app, ["batch", str(patient), "--out", str(tmp_path / "r.ndjson")])
    assert result.exit_code == 2
    message = " ".join(result.stderr.replace("│", "").split())
    assert f"'{patient}' is a YAML file, and batch reads NDJSON (one JSON patient" in message
    assert f"evaluate YAML files with `ivig-cds evaluate {patient}`" in message
    assert not (tmp_path / "r.ndjson").exists()
