"""Recording that loses nothing: the store when it answers, the journal while it does not.

    record(rows) -> store committed   (state "writing")
                 -> journal fsync'ed   (state "journalling": the store is away or the journal
                                        still holds records that must reach it first, in order)
                 -> StoreUnavailableError (neither: feedback gets 503, /health 503)

A background thread retries the replay every second, so the journal drains when the store
returns even if no request arrives, and checkpoints SQLite's write-ahead log off the request path.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from typing import Any

from ivig_cds.service.journal import Journal, JournalError
from ivig_cds.service.logs import log_event, log_warning
from ivig_cds.service.records import StoreUnavailableError
from ivig_cds.service.store import Store, StoreError, display_url

__all__ = ["StoreRecorder"]

_RETRY_SECONDS = 1.0
_RECENT_CARDS = 10_000


class StoreRecorder:
    """The `Recorder` over a SQL store and a local journal."""

    def __init__(self, store: Store, journal: Journal, *, background: bool = True) -> None:
        self.store = store
        self.journal = journal
        self._lock = threading.RLock()
        self._migrated = False
        self._store_ok = True
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._retry_loop, daemon=True)
            self._thread.start()

    def record(self, table: str, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            if table == "decisions":
                self._remember(row["card_uuid"] for row in rows)
            if not self.journal.pending() and self._write(table, rows):
                return
            try:
                self.journal.append(table, rows)
            except JournalError as exc:
                log_warning("journal-failed", reason=str(exc))
                raise StoreUnavailableError(str(exc)) from None
            self.drain()

    def drain(self) -> bool:
        """Replay the journal into the store; True when nothing is left waiting."""
        with self._lock:
            if not self.journal.waiting():
                return True
            try:
                self._ensure_schema()
                added = self.journal.replay(self.store.insert)
            except StoreError:
                self._set_store_ok(False)
                return False
            self._set_store_ok(True)
            if added:
                log_event("journal-replayed", records=added)
            return not self.journal.pending()

    def known_cards(self, card_uuids: list[str]) -> set[str]:
        known = {u for u in card_uuids if u in self._recent}
        if len(known) == len(set(card_uuids)):
            return known
        try:
            return known | self.store.known_cards(card_uuids)
        except StoreError:
            return known

    def state(self) -> str:
        with self._lock:
            if self.journal.pending() and not self.drain():
                return "journalling" if self.journal.writable() else "unavailable"
            try:
                self.store.ping()
            except StoreError:
                self._set_store_ok(False)
                return "journalling" if self.journal.writable() else "unavailable"
            return "writing"

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.journal.close()
        self.store.dispose()

    def _write(self, table: str, rows: list[dict[str, Any]]) -> bool:
        try:
            self._ensure_schema()
            self.store.insert_new(table, rows)
        except StoreError:
            self._set_store_ok(False)
            return False
        self._set_store_ok(True)
        return True

    def _ensure_schema(self) -> None:
        if not self._migrated:
            self.store.migrate()
            self._migrated = True

    def _set_store_ok(self, ok: bool) -> None:
        if ok != self._store_ok:
            self._store_ok = ok
            event = "store-writing" if ok else "store-away-journalling"
            log_event(event, store=display_url(self.store.url))

    def _remember(self, uuids: Any) -> None:
        for card in uuids:
            self._recent[card] = None
            self._recent.move_to_end(card)
        while len(self._recent) > _RECENT_CARDS:
            self._recent.popitem(last=False)

    def _retry_loop(self) -> None:
        self.drain()  # what a stopped process left behind
        while not self._stop.wait(_RETRY_SECONDS):
            if self.journal.waiting():
                self.drain()
            with contextlib.suppress(*StoreError):
                self.store.checkpoint()
