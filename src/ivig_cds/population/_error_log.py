"""The lines and resources that could not be read, kept on disk as they are found and written
out by file and line at the end.

An export with one bad line in a hundred still has tens of thousands of them per million
resources, so they are not held in memory: they are sorted in runs of `RUN_ROWS`, each run
spilled to the scratch folder, and the runs merged into `errors.ndjson`.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

RUN_ROWS = 50_000  # a few MB of errors in memory at most

Error = tuple[int, int, str]
"""File index, line number, reason."""


class ErrorLog:
    """Errors by file index and line, counted per file as they come."""

    def __init__(self, scratch: Path, run_rows: int | None = None) -> None:
        self.per_file: Counter[int] = Counter()
        self._scratch = scratch
        self._run_rows = run_rows or RUN_ROWS
        self._pending: list[Error] = []
        self._runs: list[Path] = []

    def add(self, file_index: int, line: int, reason: str) -> None:
        self.per_file[file_index] += 1
        self._pending.append((file_index, line, reason))
        if len(self._pending) >= self._run_rows:
            self._spill()

    def _spill(self) -> None:
        path = self._scratch / f"errors-{len(self._runs)}.ndjson"
        with path.open("w", encoding="utf-8") as out:
            out.writelines(json.dumps(error) + "\n" for error in sorted(self._pending))
        self._runs.append(path)
        self._pending = []

    def write(self, path: Path, names: Sequence[str]) -> None:
        """All errors, by file and line, as NDJSON `{"file", "line", "error"}` records."""
        with ExitStack() as stack, path.open("w", encoding="utf-8") as out:
            files = [stack.enter_context(run.open(encoding="utf-8")) for run in self._runs]
            runs = [_read_run(file) for file in files]
            for index, line, reason in heapq.merge(*runs, sorted(self._pending)):
                record = {"file": names[index], "line": line, "error": reason}
                out.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n")


def _read_run(lines: Iterable[str]) -> Iterator[Error]:
    for line in lines:
        index, number, reason = json.loads(line)
        yield index, number, reason
