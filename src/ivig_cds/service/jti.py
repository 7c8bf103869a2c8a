"""Which JWT ids (`jti`) were already used, remembered until the token expires.

A replayed token must be refused by every worker process, so the memory that matters lives in a
database all of them reach: the decision store, or a small shared SQLite file when the store is
off. `LocalJtiMemory` serves a single process (and the tests).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

import sqlalchemy as sa

from ivig_cds.service.schema import jti_seen, metadata
from ivig_cds.service.store import checkpoint, engine_for, retry_locked, writer_of

__all__ = [
    "FallbackJtiMemory",
    "JtiMemory",
    "LocalJtiMemory",
    "SqlJtiMemory",
    "shared_file_memory",
]

_LIMIT = 100_000  # at most this many unexpired ids per process before refusing new tokens


class JtiMemory(Protocol):
    def remember(self, issuer: str, jti: str, expires_at: float) -> bool:
        """Record `jti` until `expires_at`; False when it was already recorded (a replay)."""
        ...


class LocalJtiMemory:
    """The ids seen by this process only."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def remember(self, issuer: str, jti: str, expires_at: float) -> bool:
        now = time.time()
        with self._lock:
            if len(self._seen) >= _LIMIT:
                self._seen = {k: exp for k, exp in self._seen.items() if exp > now}
            key = (issuer, jti)
            if self._seen.get(key, 0.0) > now:
                return False
            if len(self._seen) >= _LIMIT:
                return False
            self._seen[key] = expires_at
            return True


class SqlJtiMemory:
    """The ids in a database table shared by every process; the primary key refuses a replay."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = writer_of(engine)
        self._last_purge = 0.0
        self._checkpoint = False

    def close(self) -> None:
        """Release the database connections (the store's own engine, when shared, too)."""
        self._engine.dispose()

    def remember(self, issuer: str, jti: str, expires_at: float) -> bool:
        fresh = retry_locked(lambda: self._remember(issuer, jti, expires_at))
        if self._checkpoint:
            self._checkpoint = False  # a minute's log into the file (no request checkpoints)
            checkpoint(self._engine)
        return fresh

    def _remember(self, issuer: str, jti: str, expires_at: float) -> bool:
        now = time.time()
        with self._engine.begin() as connection:
            if now - self._last_purge > 60:
                connection.execute(sa.delete(jti_seen).where(jti_seen.c.expires_at < now))
                self._last_purge = now
                self._checkpoint = True
            row = connection.execute(
                sa.select(jti_seen.c.expires_at).where(
                    jti_seen.c.issuer == issuer[:300], jti_seen.c.jti == jti[:300]
                )
            ).first()
            if row is not None and row.expires_at > now:
                return False
            if row is not None:
                connection.execute(
                    sa.delete(jti_seen).where(
                        jti_seen.c.issuer == issuer[:300], jti_seen.c.jti == jti[:300]
                    )
                )
            try:
                connection.execute(
                    sa.insert(jti_seen).values(
                        issuer=issuer[:300], jti=jti[:300], expires_at=expires_at
                    )
                )
            except sa.exc.IntegrityError:  # another worker recorded it in the meantime
                return False
        return True


def shared_file_memory(path: str) -> SqlJtiMemory:
    """A jti memory in a SQLite file that several local worker processes share."""
    engine = engine_for(f"sqlite:///{path}")
    retry_locked(lambda: metadata.create_all(writer_of(engine), tables=[jti_seen]))
    return SqlJtiMemory(engine)


class FallbackJtiMemory:
    """The store's memory, and a local one while the store is away (tokens keep working)."""

    def __init__(self, primary: JtiMemory, fallback: JtiMemory) -> None:
        self._primary = primary
        self._fallback = fallback

    def remember(self, issuer: str, jti: str, expires_at: float) -> bool:
        try:
            return self._primary.remember(issuer, jti, expires_at)
        except (sa.exc.SQLAlchemyError, OSError):
            return self._fallback.remember(issuer, jti, expires_at)
