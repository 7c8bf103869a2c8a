"""The decision store: a SQL database reached through SQLAlchemy 2 Core.

SQLite (default, one file, WAL) suits one host; PostgreSQL (psycopg 3) a store shared by
several processes or hosts. The schema is created and evolved by the Alembic migrations in
`migrations/`. Inserts are idempotent by `record_id`, so a journal replayed twice adds nothing.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ivig_cds.service.schema import decisions, feedback

__all__ = [
    "Store",
    "StoreError",
    "checkpoint",
    "display_url",
    "engine_for",
    "retry_locked",
    "writer_of",
]

WRITE_OPTION = "ivig_cds_write"
TABLES = {"decisions": decisions, "feedback": feedback}
_MIGRATIONS = Path(__file__).with_name("migrations")

StoreError = (sa.exc.SQLAlchemyError, OSError)
"""What a store that is away raises (connection refused, disk full, locked too long)."""


def engine_for(url: str) -> sa.Engine:
    """An engine for `url`: `postgresql://` goes through psycopg 3; SQLite gets WAL mode."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        # No busy timeout in SQLite itself: its busy handler sleeps 1, 2, 5, 10, 15... ms, so a
        # worker that finds the other one writing waits tens of milliseconds; `retry_locked`
        # retries every half millisecond instead.
        engine = sa.create_engine(parsed, connect_args={"timeout": 0})

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_connection: Any, _: Any) -> None:
            dbapi_connection.isolation_level = None  # transactions begin below, not in pysqlite
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # No checkpoint (and its fsync) inside a request's commit: the recorder's
            # background thread checkpoints every second instead (`Store.checkpoint`).
            cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(connection: sa.Connection) -> None:
            # Writers take the write lock at BEGIN, so that a second worker waits (and retries)
            # instead of failing with a stale snapshot when it upgrades a read to a write.
            # Readers never block in WAL mode.
            writing = connection.get_execution_options().get(WRITE_OPTION)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")

        return engine
    return sa.create_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=4,
        connect_args={"connect_timeout": 3},
    )


def writer_of(engine: sa.Engine) -> sa.Engine:
    """The same engine, marked so that its transactions take SQLite's write lock at BEGIN."""
    return engine.execution_options(**{WRITE_OPTION: True})


def checkpoint(engine: sa.Engine) -> None:
    """PASSIVE checkpoint of a SQLite engine's log, outside any transaction (best effort)."""
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
        cursor.close()
    except sqlite3.Error:
        pass  # busy or locked: the next one will do
    finally:
        raw.close()


def display_url(url: str) -> str:
    """The URL with any password masked, for start-up lines and errors."""
    return sa.make_url(url).render_as_string(hide_password=True)


class Store:
    """Decisions and feedback in one database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = engine_for(url)
        self.writer = writer_of(self.engine)

    def migrate(self) -> None:
        """Bring the schema to the newest revision (creates it in an empty database)."""
        if self.revision() == self.head():
            return  # the usual case for every worker after `serve` migrated at start-up
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))

        def upgrade() -> None:
            with self.writer.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")

        retry_locked(upgrade)

    def revision(self) -> str | None:
        """The schema revision the database is at (None: not created yet)."""

        def read() -> str | None:
            with self.engine.connect() as connection:
                return MigrationContext.configure(connection).get_current_revision()

        return retry_locked(read)

    @staticmethod
    def head() -> str | None:
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        return ScriptDirectory.from_config(config).get_current_head()

    def insert(self, table: str, rows: Sequence[dict[str, Any]]) -> int:
        return retry_locked(lambda: self._insert_missing(table, rows))

    def _insert_missing(self, table: str, rows: Sequence[dict[str, Any]]) -> int:
        """Insert the rows not already present (by record_id) in one transaction; count them.
        (For replaying the journal, which may hold rows an interrupted replay already stored.)"""
        target = TABLES[table]
        if not rows:
            return 0
        ids = [row["record_id"] for row in rows]
        with self.writer.begin() as connection:
            present = set(
                connection.scalars(sa.select(target.c.record_id).where(target.c.record_id.in_(ids)))
            )
            fresh = [_typed(row) for row in rows if row["record_id"] not in present]
            if fresh:
                connection.execute(sa.insert(target), fresh)
        return len(fresh)

    def insert_new(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows just made (fresh random record ids), in one transaction."""
        statement = sa.insert(TABLES[table])

        def write() -> None:
            with self.writer.begin() as connection:
                connection.execute(statement, list(rows))

        retry_locked(write)

    def known_cards(self, card_uuids: Iterable[str]) -> set[str]:
        wanted = list(card_uuids)
        with self.engine.connect() as connection:
            return set(
                connection.scalars(
                    sa.select(decisions.c.card_uuid)
                    .where(decisions.c.card_uuid.in_(wanted))
                    .distinct()
                )
            )

    def checkpoint(self) -> None:
        """Copy the SQLite write-ahead log into the database (PASSIVE: never blocks writers)."""
        checkpoint(self.engine)

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    def count_before(self, before: dt.datetime) -> dict[str, int]:
        """How many decisions and feedback items `purge(before)` would delete, per table."""
        with self.engine.connect() as connection:
            return {
                name: connection.scalar(
                    sa.select(sa.func.count())
                    .select_from(table)
                    .where(table.c.recorded_at < before)
                )
                or 0
                for name, table in TABLES.items()
            }

    def purge(self, before: dt.datetime) -> dict[str, int]:
        """Delete decisions and feedback recorded before `before`; counts per table."""
        removed: dict[str, int] = {}
        with self.writer.begin() as connection:
            for name, table in TABLES.items():
                result = connection.execute(sa.delete(table).where(table.c.recorded_at < before))
                removed[name] = result.rowcount
        return removed

    def rows(self, table: str, since: dt.datetime | None = None) -> list[dict[str, Any]]:
        """Every record of `table` (optionally since a time), oldest first."""
        target = TABLES[table]
        query = sa.select(target).order_by(target.c.recorded_at, target.c.record_id)
        if since is not None:
            query = query.where(target.c.recorded_at >= since)
        with self.engine.connect() as connection:
            return [_aware(dict(row._mapping)) for row in connection.execute(query)]

    def dispose(self) -> None:
        self.engine.dispose()


_T = TypeVar("_T")
_LOCK_WAIT_SECONDS = 10.0


def retry_locked(action: Callable[[], _T]) -> _T:
    """Run `action`, retrying while another process holds SQLite's write lock (up to 10 s)."""
    deadline = time.monotonic() + _LOCK_WAIT_SECONDS
    pause = 0.0005
    while True:
        try:
            return action()
        except sa.exc.OperationalError as exc:
            locked = "database is locked" in str(exc.orig)
            if not locked or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 1.5, 0.005)


def _typed(row: dict[str, Any]) -> dict[str, Any]:
    """A row as read back from the journal (ISO time strings) made insertable again."""
    stamp = row["recorded_at"]
    if isinstance(stamp, str):
        return {**row, "recorded_at": dt.datetime.fromisoformat(stamp)}
    return row


def _aware(row: dict[str, Any]) -> dict[str, Any]:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    stamp = row.get("recorded_at")
    if isinstance(stamp, dt.datetime) and stamp.tzinfo is None:
        row["recorded_at"] = stamp.replace(tzinfo=dt.UTC)
    return row
