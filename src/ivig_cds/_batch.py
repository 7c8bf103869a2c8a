"""Batch evaluation: patients as NDJSON lines in, one result or error line per input line out.

Three parts, so that each can be reused or replaced:

- `read_chunks` splits a byte stream into numbered lines, in bounded chunks, without ever
  holding an over-long line in memory;
- `RecordEvaluator` turns `(line number, bytes)` records into `Outcome`s: a plain, picklable
  callable, so that a distributed engine (Spark `mapPartitions`, Dask `map_partitions`) can call
  it on its own partitions;
- `run_batch` feeds chunks to worker processes, a bounded number at a time (constant memory
  whatever the input size), and writes the outcomes in input order.

Every input line ends as exactly one result or one error record, so lines = results + errors.
Error records carry the line number and the reason, never the patient record: at most the one
offending value, shortened, as `InvalidPatientError` quotes it.
"""

from __future__ import annotations

import itertools
import json
import signal
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import IO, Any, NamedTuple

from ivig_cds._errors import EngineError, InvalidPatientError, IvigCdsError
from ivig_cds._evaluate import Evaluator, default_evaluator
from ivig_cds._json import JsonProblem, loads_strict
from ivig_cds._knowledge_base import KnowledgeBase
from ivig_cds._loader import load_knowledge_base
from ivig_cds._recommendation import Recommendation

MAX_LINE_BYTES = 1 << 20  # a patient context is a few hundred bytes; 1 MiB is surely a mistake
CHUNK_LINES = 2_000  # measured: 500 to 5,000 lines per chunk run equally fast; fewer is slower
CHUNK_BYTES = 4 << 20  # so that a chunk of long lines stays small too
IN_FLIGHT_PER_WORKER = 3  # enough to keep every worker busy while the parent writes

Record = tuple[int, bytes | None]
"""One input line: its 1-based number and its bytes without the newline, or None for a line
longer than the size limit, which the reader skipped without keeping it."""


class Outcome(NamedTuple):
    """What became of one input line: a result or an error, and the JSON line to write for it.

    `label` is the result's tier, or the error's kind (`invalid_json`, `invalid_patient`, ...).
    """

    line: int
    ok: bool
    label: str
    json: str


class BatchAbortedError(IvigCdsError):
    """The batch stopped before the end of its input (a worker died or an output failed)."""

    summary: BatchSummary | None = None  # the lines written before it stopped


# --- one line ----------------------------------------------------------------------------------


class _LineError(ValueError):
    """Why one line gave no result: an error kind and its problems, free of patient data."""

    def __init__(self, kind: str, *problems: str) -> None:
        super().__init__(kind)
        self.kind = kind
        self.problems = list(problems)


_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


def _parse(raw: bytes | None, max_line_bytes: int) -> dict[str, Any]:
    """The line's JSON object, or `_LineError` saying why not."""
    if raw is None or len(raw) > max_line_bytes:
        raise _LineError(
            "line_too_long", f"the line is longer than the limit of {max_line_bytes:,} bytes"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _LineError("not_utf8", f"byte {exc.start + 1} is not UTF-8 ({exc.reason})") from None
    if not text.strip():
        raise _LineError("blank_line", "the line is empty; expected a JSON object")
    try:
        data = loads_strict(text)
    except JsonProblem as exc:
        if exc.line is None:  # Python's reader ran out of stack
            raise _LineError("invalid_json", "nested too deeply for a patient context") from None
        raise _LineError("invalid_json", f"{exc.message} at column {exc.column}") from None
    if not isinstance(data, dict):
        kind = "null" if data is None else _KINDS.get(type(data), type(data).__name__)
        raise _LineError("not_an_object", f"expected a JSON object of patient fields, got {kind}")
    return data


def _evaluate(evaluator: Evaluator, data: dict[str, Any]) -> Recommendation:
    try:
        return evaluator.evaluate(data)
    except InvalidPatientError as exc:
        raise _LineError("invalid_patient", *exc.problems) from None
    except EngineError as exc:  # its messages never carry the patient (see _engine.py)
        raise _LineError("not_evaluated", str(exc)) from None
    except RecursionError:
        raise _LineError("invalid_patient", "nested too deeply for a patient context") from None


def _compact(line: int, rec: Recommendation) -> str:
    """The audit line: what was decided, by which rule, on which evidence; ~400 bytes."""
    return json.dumps(
        {
            "line": line,
            "patient_id": rec.patient_id,
            "tier": rec.tier.value,
            "question": rec.question.intended_use.value,
            "question_inferred": rec.question.inferred,
            "primary_rule": rec.primary_rule,
            "secondary_rules": [f.rule_id for f in rec.findings if f.role == "secondary"],
            "certainty": rec.certainty.level.value if rec.certainty else None,
            "citations": [c.id for c in rec.citations],
            "cautions": [c.rule_id for c in rec.cautions],
            "missing_data": rec.missing_data,
            "kb_version": rec.knowledge_base.version,
            "kb_hash": rec.knowledge_base.content_hash,
        },
        separators=(",", ":"),
    )


def evaluate_line(
    evaluator: Evaluator,
    line: int,
    raw: bytes | None,
    *,
    full: bool = False,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Outcome:
    """Evaluate one NDJSON line; every failure becomes an error outcome, none is raised."""
    try:
        rec = _evaluate(evaluator, _parse(raw, max_line_bytes))
    except _LineError as exc:
        record = {"line": line, "error": exc.kind, "problems": exc.problems}
        return Outcome(line, False, exc.kind, json.dumps(record, separators=(",", ":")))
    tier = rec.tier.value
    if full:
        text = f'{{"line":{line},"recommendation":{rec.model_dump_json()}}}'
        return Outcome(line, True, tier, text)
    return Outcome(line, True, tier, _compact(line, rec))


# --- records -> outcomes, in any process --------------------------------------------------------

_EVALUATORS: dict[tuple[Path | None, Path | None], Evaluator] = {}


def evaluator_for(
    rules: Path | None, evidence: Path | None, knowledge_base: KnowledgeBase | None = None
) -> Evaluator:
    """This process's evaluator for a knowledge base, built once (forked workers inherit it).

    Args:
        rules, evidence: the knowledge base's folders; both None for the shipped one.
        knowledge_base: already loaded from those folders, to compile instead of loading again.

    Raises:
        KnowledgeBaseError: the knowledge base is invalid.
        EngineError: durable_rules rejected the compiled rules.
    """
    key = (rules, evidence)
    if key not in _EVALUATORS:
        if knowledge_base is not None:
            _EVALUATORS[key] = Evaluator(knowledge_base)
        elif rules is None and evidence is None:
            _EVALUATORS[key] = default_evaluator()
        else:
            _EVALUATORS[key] = Evaluator(load_knowledge_base(rules, evidence))
    return _EVALUATORS[key]


@dataclass(frozen=True)
class RecordEvaluator:
    """`records -> outcomes` for one knowledge base: picklable, so it can run anywhere.

    Call it with `(line number, line bytes)` records; it returns one `Outcome` per record, in
    order, and raises nothing for bad input. It carries only the knowledge base's folders and
    builds its `Evaluator` once per process, so it suits `ProcessPoolExecutor.submit`, Spark's
    `rdd.mapPartitions(lambda part: RecordEvaluator()(list(part)))` or Dask alike.

    Attributes:
        rules, evidence: folders of another knowledge base; None for the shipped one.
        full: write whole `Recommendation`s instead of the compact audit line.
        max_line_bytes: longer lines become `line_too_long` errors.
    """

    rules: Path | None = None
    evidence: Path | None = None
    full: bool = False
    max_line_bytes: int = MAX_LINE_BYTES

    def __call__(self, records: Iterable[Record]) -> list[Outcome]:
        evaluator = evaluator_for(self.rules, self.evidence)
        full, limit = self.full, self.max_line_bytes
        return [
            evaluate_line(evaluator, line, raw, full=full, max_line_bytes=limit)
            for line, raw in records
        ]


def evaluate_records(
    records: Iterable[Record],
    *,
    rules: Path | None = None,
    evidence: Path | None = None,
    full: bool = False,
) -> list[Outcome]:
    """Evaluate `(line number, line bytes)` records; one `Outcome` per record, in order.

    A module-level function, hence picklable: see `RecordEvaluator` for the details.
    """
    return RecordEvaluator(rules, evidence, full)(records)


# --- reading ------------------------------------------------------------------------------------


class Chunk(NamedTuple):
    records: list[Record]
    end: int  # bytes of input consumed up to the end of this chunk, for the progress bar


def read_chunks(
    stream: IO[bytes],
    *,
    chunk_lines: int = CHUNK_LINES,
    chunk_bytes: int = CHUNK_BYTES,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[Chunk]:
    """Split a stream into chunks of numbered lines; a last line without newline counts too.

    A line longer than `max_line_bytes` is read past in bounded pieces, never held whole, and
    stands in its chunk as `(number, None)`. A UTF-8 byte-order mark opening the input is dropped.
    """
    records: list[Record] = []
    size = consumed = number = 0
    while True:
        raw = stream.readline(max_line_bytes + 1)
        if not raw:
            break
        consumed += len(raw)
        number += 1
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        content = raw[:-1] if raw.endswith(b"\n") else raw
        if len(content) > max_line_bytes:
            while not raw.endswith(b"\n"):
                raw = stream.readline(1 << 16)
                if not raw:
                    break
                consumed += len(raw)
            records.append((number, None))
        else:
            records.append((number, content))
            size += len(content)
        if len(records) >= chunk_lines or size >= chunk_bytes:
            yield Chunk(records, consumed)
            records, size = [], 0
    if records:
        yield Chunk(records, consumed)


# --- running ------------------------------------------------------------------------------------


@dataclass
class BatchSummary:
    """Counts so far; when the run completes, `lines == results + errors`."""

    lines: int = 0
    results: int = 0
    errors: int = 0
    tiers: Counter[str] = field(default_factory=Counter)
    error_kinds: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        """Lines per second."""
        return self.lines / self.elapsed if self.elapsed > 0 else 0.0


RecordsFunction = Callable[[list[Record]], list[Outcome]]
Progress = Callable[[int, BatchSummary], None]


def run_batch(
    source: IO[bytes],
    results: IO[str],
    errors: IO[str],
    evaluate: RecordsFunction,
    *,
    workers: int = 1,
    chunk_lines: int = CHUNK_LINES,
    progress: Progress | None = None,
    mp_context: BaseContext | None = None,
) -> BatchSummary:
    """Evaluate every line of `source`, writing result and error lines in input order.

    Args:
        source: NDJSON patient contexts, one per line.
        results, errors: where result lines and error lines go.
        evaluate: the picklable `records -> outcomes` function (a `RecordEvaluator`).
        workers: processes; 1 evaluates in this process, without a pool.
        chunk_lines: lines per unit of work sent to a worker.
        progress: called after each chunk is written with the input bytes consumed so far.
        mp_context: the multiprocessing start method; None for the platform's default.

    Returns:
        The counts; `lines == results + errors`.

    Raises:
        BatchAbortedError: a worker died or an output could not be written; outputs are incomplete.
        KeyboardInterrupt: after the workers have stopped.
    """
    summary = BatchSummary()
    start = time.perf_counter()

    def write(outcomes: list[Outcome], end: int) -> None:
        good = [o for o in outcomes if o.ok]
        bad = [o for o in outcomes if not o.ok]
        try:
            if good:
                results.write("\n".join(o.json for o in good) + "\n")
            if bad:
                errors.write("\n".join(o.json for o in bad) + "\n")
        except OSError as exc:
            raise BatchAbortedError(f"cannot write the output: {exc.strerror or exc}") from None
        summary.lines += len(outcomes)
        summary.results += len(good)
        summary.errors += len(bad)
        summary.tiers.update(o.label for o in good)
        summary.error_kinds.update(o.label for o in bad)
        summary.elapsed = time.perf_counter() - start
        if progress is not None:
            progress(end, summary)

    try:
        _run(source, evaluate, write, workers=workers, chunk_lines=chunk_lines, context=mp_context)
    except BatchAbortedError as exc:
        summary.elapsed = time.perf_counter() - start
        exc.summary = summary
        raise
    summary.elapsed = time.perf_counter() - start
    return summary


def _run(
    source: IO[bytes],
    evaluate: RecordsFunction,
    write: Callable[[list[Outcome], int], None],
    *,
    workers: int,
    chunk_lines: int,
    context: BaseContext | None,
) -> None:
    reader = read_chunks(source, chunk_lines=chunk_lines)
    ahead = list(itertools.islice(reader, 2))
    chunks = itertools.chain(ahead, reader)
    if workers == 1 or len(ahead) < 2:  # a single chunk is not worth starting processes
        for chunk in chunks:
            write(evaluate(chunk.records), chunk.end)
    else:
        _in_pool(chunks, evaluate, workers=workers, context=context, write=write)


def _quiet_worker() -> None:
    # Ctrl-C reaches the whole process group; only the parent should act on it (and say so).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _in_pool(
    chunks: Iterator[Chunk],
    evaluate: RecordsFunction,
    *,
    workers: int,
    context: BaseContext | None,
    write: Callable[[list[Outcome], int], None],
) -> None:
    """At most IN_FLIGHT_PER_WORKER x workers chunks submitted at once; written first in, first out.

    `Pool.imap` would read the whole input ahead; this holds a bounded number of chunks.
    """
    pending: deque[tuple[Future[list[Outcome]], int]] = deque()
    limit = workers * IN_FLIGHT_PER_WORKER

    def take() -> None:
        future, end = pending.popleft()
        try:
            outcomes = future.result()
        except BrokenProcessPool:
            raise BatchAbortedError(
                "a worker process stopped unexpectedly (killed, or out of memory?)"
            ) from None
        except IvigCdsError as exc:  # e.g. a spawned worker could not load the knowledge base
            raise BatchAbortedError(f"a worker failed: {exc}") from None
        except Exception as exc:  # its message could quote input: name the type only
            raise BatchAbortedError(f"a worker failed with {type(exc).__name__}") from None
        write(outcomes, end)

    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_quiet_worker)
    try:
        for chunk in chunks:
            pending.append((pool.submit(evaluate, chunk.records), chunk.end))
            if len(pending) >= limit:
                take()
        while pending:
            take()
    finally:
        # On an error or Ctrl-C: drop the queued chunks, let running ones finish (milliseconds).
        pool.shutdown(wait=True, cancel_futures=True)
