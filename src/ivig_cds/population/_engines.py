"""The engines that group staged resources by patient and run `PatientAuditor` on each group.

Both read the staging file (`key`, file index, line, byte offset and length in the export
file, and for Spark the JSON text; fields separated by U+001F, which a valid JSON line cannot
hold) and hand back outcomes in key order, so the results file is the same whoever ran it:

- DuckDB (embedded, the default) splits the staging index into key ranges of bounded size
  (`BUCKET_BYTES`, cut at the quantiles of a sample of keys), sorts each range in turn and
  streams it; each patient's resources are read back from the export by offset as the rows
  go by and are audited here or in worker processes. One `ORDER BY` over the whole index
  would be simpler, but DuckDB (measured, 2.0) keeps such a sort in memory past its
  `memory_limit`, so its memory grew with the export; ranges keep it flat and keep the
  global key order;
- Spark reads the staging file, text included, as a DataFrame, shuffles it by key into range
  partitions sorted within, and audits each partition with `mapPartitions` on the executors.
"""

# ruff: noqa: PLC0415  # DuckDB and PySpark load only for the engine chosen (PySpark is optional)
from __future__ import annotations

import bisect
import contextlib
import itertools
import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ivig_cds._errors import IvigCdsError
from ivig_cds.population._audit import PatientAuditor, PatientOutcome, Row

SEPARATOR = "\x1f"
FETCH_ROWS = 10_000
PARTITION_BYTES = 64 << 20  # Spark: a partition's resources sort in the executor's memory
CHUNK_PATIENTS = 200  # per task sent to a worker process: a few MB of resources
DUCKDB_MEMORY = "128MB"  # its CSV reader wants ~31 MiB blocks per thread: 64MB is too few
BUCKET_BYTES = 32 << 20  # of staging index per key range, about 500,000 resources
SAMPLE_KEYS = 20_000  # keys sampled to cut the ranges; a few MB
_INDEX = (
    "read_csv(?, delim = '\x1f', quote = '', escape = '', header = false, "
    "auto_detect = false, columns = {'k': 'VARCHAR', 'f': 'INTEGER', 'l': 'BIGINT', "
    "'o': 'BIGINT', 'n': 'INTEGER'})"
)


class EngineUnavailableError(IvigCdsError, RuntimeError):
    """The chosen engine is not installed or could not start."""


class EngineFailedError(IvigCdsError, RuntimeError):
    """The engine stopped while grouping (out of memory or disk, most likely)."""


class Engine(Protocol):
    """Groups a staging file by key and audits each group, in key order."""

    @property
    def with_text(self) -> bool:
        """The staging file must carry each resource's text."""

    def __call__(
        self, staging: Path, sources: Sequence[Path], auditor: PatientAuditor, scratch: Path
    ) -> Iterator[PatientOutcome]: ...


def groups(rows: Iterable[tuple[str, int, int, str]]) -> Iterator[tuple[str, list[Row]]]:
    """Rows sorted by key (then file, line) as one `(key, resources)` group per key; a line
    staged twice for a key (a Medication two of its orders name) is kept once."""
    for key, group in itertools.groupby(rows, key=lambda row: row[0]):
        resources: list[Row] = []
        for _, f, line, text in group:
            if not resources or resources[-1][:2] != (f, line):
                resources.append((f, line, text))
        yield key, resources


def audit_groups(
    rows: Iterable[tuple[str, int, int, str]], auditor: PatientAuditor
) -> Iterator[PatientOutcome]:
    """Audit rows already sorted by key (then file, line): one outcome per key."""
    for key, resources in groups(rows):
        yield auditor(key, resources)


@dataclass(frozen=True)
class _DuckDB:
    workers: int
    with_text: bool = False

    def __call__(
        self, staging: Path, sources: Sequence[Path], auditor: PatientAuditor, scratch: Path
    ) -> Iterator[PatientOutcome]:
        import duckdb

        config: dict[str, str | bool | int | float | list[str]] = {
            "memory_limit": DUCKDB_MEMORY,
            "temp_directory": str(scratch / "duckdb"),
            "preserve_insertion_order": False,
        }
        con = duckdb.connect(config=config)
        with contextlib.ExitStack() as stack:
            stack.callback(con.close)
            handles = [stack.enter_context(path.open("rb")) for path in sources]

            def rows() -> Iterator[tuple[str, int, int, str]]:
                for key, f, line, offset, size in _sorted_index(con, staging, scratch):
                    text = os.pread(handles[f].fileno(), size, offset).decode()
                    yield key, f, line, text

            try:
                if self.workers <= 1:
                    yield from audit_groups(rows(), auditor)
                else:
                    yield from _in_pool(groups(rows()), auditor, self.workers)
            except duckdb.Error as exc:  # its message may quote a key: name the kind only
                raise EngineFailedError(
                    f"DuckDB stopped while grouping the export ({type(exc).__name__}); it "
                    f"needs {DUCKDB_MEMORY} of memory and, in the temporary folder "
                    f"({scratch.parent}; TMPDIR chooses it), free space for the export's "
                    "index twice over, about a tenth of the export's size"
                ) from None


def _sorted_index(
    con: Any, staging: Path, scratch: Path
) -> Iterator[tuple[str, int, int, int, int]]:
    """The staging index's rows in `(key, file, line)` order, one key range at a time."""
    ranges = staging.stat().st_size // BUCKET_BYTES + 1
    parts = [staging]
    if ranges > 1:
        sample = con.execute(
            f"SELECT k FROM {_INDEX} USING SAMPLE reservoir({SAMPLE_KEYS} ROWS) REPEATABLE (1)",
            [str(staging)],
        ).fetchall()
        cuts = _cuts(sorted(k for (k,) in sample), ranges)
        parts = split_by_key(staging, scratch / "ranges", cuts)
    for part in parts:
        cursor = con.execute(f"SELECT k, f, l, o, n FROM {_INDEX} ORDER BY k, f, l", [str(part)])
        while batch := cursor.fetchmany(FETCH_ROWS):
            yield from batch
        if part != staging:
            part.unlink()


def _cuts(keys: list[str], ranges: int) -> list[str]:
    """Keys at the `ranges`-quantiles of sorted `keys`: the lower bounds of ranges 1, 2..."""
    return sorted({keys[len(keys) * i // ranges] for i in range(1, ranges)})


def split_by_key(staging: Path, folder: Path, cuts: list[str]) -> list[Path]:
    """Copy the staging file's lines into one file per key range (range `i` holds the keys
    with `i` cuts at or below them), in one streaming pass; the files in key order, empty
    ones left out. Done here, not by DuckDB: its partitioned write buffers every range at
    once (measured: out of memory under 128 MB at 1,000,000 patients), while this holds one
    small write buffer per range. Keys are ASCII, so bytes sort as DuckDB's strings do."""
    folder.mkdir(parents=True, exist_ok=True)
    bounds = [cut.encode() for cut in cuts]
    paths = [folder / f"{i}.txt" for i in range(len(cuts) + 1)]
    separator = SEPARATOR.encode()
    with contextlib.ExitStack() as stack:
        outs = [stack.enter_context(path.open("wb")) for path in paths]
        with staging.open("rb") as lines:
            for line in lines:
                outs[bisect.bisect_right(bounds, line[: line.index(separator)])].write(line)
    return [path for path in paths if path.stat().st_size]


def duckdb_engine(workers: int = 1) -> Engine:
    """Group with embedded DuckDB (an external sort of the index by key, streamed in batches)
    and audit the groups here (`workers` 1) or in `workers` processes, in order."""
    return _DuckDB(workers)


def _audit_chunk(auditor: PatientAuditor, chunk: list[tuple[str, list[Row]]]) -> list[Any]:
    return [auditor(key, resources) for key, resources in chunk]


def _in_pool(
    grouped: Iterator[tuple[str, list[Row]]], auditor: PatientAuditor, workers: int
) -> Iterator[PatientOutcome]:
    """Chunks of patients through spawned processes (DuckDB's threads make fork unsafe), a
    bounded number in flight, outcomes in order."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending: deque[Future[list[Any]]] = deque()
        while chunk := list(itertools.islice(grouped, CHUNK_PATIENTS)):
            pending.append(pool.submit(_audit_chunk, auditor, chunk))
            if len(pending) >= workers * 3:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


@dataclass(frozen=True)
class _Spark:
    master: str
    partitions: int
    with_text: bool = True

    def __call__(
        self, staging: Path, sources: Sequence[Path], auditor: PatientAuditor, scratch: Path
    ) -> Iterator[PatientOutcome]:
        try:
            from pyspark.sql import SparkSession
            from pyspark.sql import functions as F  # noqa: N812  # Spark's own convention
        except ImportError:
            raise EngineUnavailableError(
                "the Spark engine needs PySpark: pip install 'ivig-cds[spark]' (and Java 17)"
            ) from None
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = SparkSession.builder.master(self.master).appName("ivig-cds population")
        spark = (
            builder.config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.local.dir", str(scratch / "spark"))
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        try:
            parts = F.split(F.col("value"), SEPARATOR, 6)
            frame = spark.read.text(str(staging)).select(
                parts[0].alias("k"),
                parts[1].cast("int").alias("f"),
                parts[2].cast("long").alias("l"),
                parts[5].alias("r"),
            )
            count = self.partitions or max(
                spark.sparkContext.defaultParallelism * 2,
                staging.stat().st_size // PARTITION_BYTES + 1,
            )
            grouped = frame.repartitionByRange(count, "k").sortWithinPartitions("k", "f", "l")
            outcomes = grouped.rdd.mapPartitions(_partition_auditor(auditor))
            yield from outcomes.toLocalIterator(prefetchPartitions=True)
        finally:
            spark.stop()


def spark_engine(master: str, partitions: int = 0) -> Engine:
    """An engine running on Spark at `master` (`local[*]`, `spark://host:7077`, `yarn`...);
    `partitions` 0 sizes them from the staging file."""
    return _Spark(master, partitions)


def _partition_auditor(
    auditor: PatientAuditor,
) -> Callable[[Iterable[Any]], Iterator[PatientOutcome]]:
    def audit(rows: Iterable[Any]) -> Iterator[PatientOutcome]:
        return audit_groups(((r.k, r.f, r.l, r.r) for r in rows), auditor)

    return audit
