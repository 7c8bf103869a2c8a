"""Batch evaluation: patients as NDJSON lines in, one result or error line per input line out.

The run around `_records`' per-line evaluation, in two parts:

- `read_chunks` splits a byte stream into numbered lines, in bounded chunks, without ever
  holding an over-long line in memory;
- `run_batch` feeds chunks to worker processes, a bounded number at a time (constant memory
  whatever the input size), and writes the outcomes in input order.

Every input line ends as exactly one result or one error record, so lines = results + errors.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from typing import IO, NamedTuple

from ivig_cds._errors import IvigCdsError
from ivig_cds._records import MAX_LINE_BYTES, Outcome, Record

CHUNK_LINES = 2_000  # measured: 500 to 5,000 lines per chunk run equally fast; fewer is slower
CHUNK_BYTES = 4 << 20  # so that a chunk of long lines stays small too
IN_FLIGHT_PER_WORKER = 3  # enough to keep every worker busy while the parent writes


class BatchAbortedError(IvigCdsError):
    """The batch stopped before the end of its input (a worker died or an output failed)."""

    summary: BatchSummary | None = None  # the lines written before it stopped


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
