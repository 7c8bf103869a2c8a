"""The local journal: where records wait, durably, while the store is away.

Each process appends to its own file (`journal-<pid>-<random>.ndjson`, held under an exclusive
`flock`), one JSON line per record, flushed and fsync'ed before the caller answers. Replay reads
every journal file in the directory that no living process holds (its own included), inserts
the records into the store in file order, and removes the file only after the store committed
them; inserts are idempotent, so a replay interrupted half-way repeats nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["Journal", "JournalError"]

Insert = Callable[[str, Sequence[dict[str, Any]]], int]


class JournalError(Exception):
    """The journal could not be written (disk full, directory unwritable)."""


class Journal:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._path = directory / f"journal-{os.getpid()}-{uuid.uuid4().hex[:8]}.ndjson"
        self._file: IO[str] | None = None

    def append(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """Write the rows and fsync them, or raise JournalError."""
        try:
            if self._file is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._file = self._path.open("a", encoding="utf-8")
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            for row in rows:
                self._file.write(json.dumps({"table": table, "row": row}, default=_json) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise JournalError(
                f"cannot write the journal in {self.directory}: {exc.strerror}"
            ) from None

    def close(self) -> None:
        """Close this process's journal file; its records stay on disk for the next replay."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def pending(self) -> bool:
        """Whether this process's own journal holds records the store has not taken yet."""
        return self._file is not None

    def waiting(self) -> bool:
        """Whether any journal file (this process's, or one a stopped process left) waits."""
        if self._file is not None:
            return True
        return any(self.directory.glob("journal-*.ndjson")) if self.directory.is_dir() else False

    def writable(self) -> bool:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError:
            return False
        return os.access(self.directory, os.W_OK | os.X_OK)

    def replay(self, insert: Insert) -> int:
        """Insert every waiting record through `insert` (which raises if the store is away),
        in order; returns how many were new to the store."""
        added = 0
        if self._file is not None:
            added += _replay_file(self._path, insert)
            self._file.close()  # releases the lock
            self._file = None
            self._path.unlink(missing_ok=True)
            self._path = self.directory / f"journal-{os.getpid()}-{uuid.uuid4().hex[:8]}.ndjson"
        if not self.directory.is_dir():
            return added
        for path in sorted(self.directory.glob("journal-*.ndjson"), key=_age):
            with contextlib.ExitStack() as stack:
                try:
                    handle = stack.enter_context(path.open("r", encoding="utf-8"))
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except (BlockingIOError, FileNotFoundError):
                    continue  # a living process writes it, or another replayed it
                added += _replay_file(path, insert)
                path.unlink(missing_ok=True)
        return added


def _replay_file(path: Path, insert: Insert) -> int:
    batches: list[tuple[str, list[dict[str, Any]]]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a crash mid-write was never acknowledged
        if batches and batches[-1][0] == entry["table"]:
            batches[-1][1].append(entry["row"])
        else:
            batches.append((entry["table"], [entry["row"]]))
    return sum(insert(table, rows) for table, rows in batches)


def _age(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _json(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot journal a {type(value).__name__}")
