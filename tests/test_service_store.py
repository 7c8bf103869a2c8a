"""The decision and feedback store, against SQLite and a real PostgreSQL: schema migrations,
records committed before the answer, nothing lost while the store is away."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import stat
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from ivig_cds import Evaluator
from ivig_cds._pseudonym import ENV_KEY, Pseudonymizer, ensure_key, read_key
from ivig_cds.service import create_app
from ivig_cds.service.journal import Journal
from ivig_cds.service.jti import SqlJtiMemory
from ivig_cds.service.recorder import StoreRecorder
from ivig_cds.service.store import Store
from tests.postgres_support import PrivatePostgres
from tests.service_support import PV, REPO, TODAY, cards_of, request_file, serving

AHRQ = REPO.parent / "shared" / "fixtures" / "ahrq-cds-hooks-r4"

KEY = b"k" * 32


def recording_app(evaluator: Evaluator, url: str, journal: Path) -> tuple[Any, StoreRecorder]:
    recorder = StoreRecorder(Store(url), Journal(journal), background=False)
    app = create_app(
        evaluator, recorder=recorder, pseudonymizer=Pseudonymizer(KEY), today=lambda: TODAY
    )
    return app, recorder


def feedback_for(card: dict[str, Any], outcome: str = "overridden") -> dict[str, Any]:
    item: dict[str, Any] = {
        "card": card["uuid"],
        "outcome": outcome,
        "outcomeTimestamp": "2026-11-30T10:00:00Z",
    }
    if outcome == "overridden":
        reason = card["overrideReasons"][0]
        item["overrideReason"] = {"reason": {"code": reason["code"], "system": reason["system"]}}
    return {"feedback": [item]}


def test_migrations_bring_an_empty_database_to_head(store_url: str) -> None:
    """Alembic creates the schema; the database then reports the newest revision."""
    store = Store(store_url)
    assert store.revision() is None
    store.migrate()
    store.migrate()  # idempotent
    assert store.revision() == Store.head() == "0001"
    names = set(sa.inspect(store.engine).get_table_names())
    assert {"decisions", "feedback", "jti_seen", "alembic_version"} <= names
    store.dispose()


def test_sqlite_store_runs_in_wal_mode(tmp_path: Path) -> None:
    """The default SQLite store uses write-ahead logging (readers never block the writer)."""
    store = Store(f"sqlite:///{tmp_path / 's.sqlite3'}")
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.dispose()


def test_decision_is_committed_before_the_answer(
    evaluator: Evaluator, store_url: str, tmp_path: Path
) -> None:
    """As soon as the card arrives, another connection finds its decision record, with the
    rules and versions, the knowledge base's hash and a keyed hash instead of the patient id."""
    app, recorder = recording_app(evaluator, store_url, tmp_path / "journal")
    body = request_file("patient-view-postpartum")
    with serving(app) as base:
        (card,) = cards_of(httpx.post(base + PV, json=body, timeout=20))
        reader = Store(store_url)
        (row,) = reader.rows("decisions")
    extension = card["extension"]["org.ivig-cds"]
    patient_id = body["context"]["patientId"]
    assert row["card_uuid"] == card["uuid"]
    assert (row["tier"], row["primary_rule"], row["hook_instance"]) == (
        extension["tier"],
        extension["primaryRule"],
        body["hookInstance"],
    )
    assert row["rules"] == extension["rules"]
    assert row["kb_hash"] == extension["knowledgeBase"]["content_hash"]
    assert row["patient_key"] == hmac.new(KEY, patient_id.encode(), hashlib.sha256).hexdigest()
    assert patient_id not in json.dumps(row, default=str)
    reader.dispose()
    recorder.close()


def test_feedback_survives_a_restart(evaluator: Evaluator, store_url: str, tmp_path: Path) -> None:
    """Feedback acknowledged by one service process is in the store for the next one, which
    also knows the card it refers to."""
    app, recorder = recording_app(evaluator, store_url, tmp_path / "journal")
    with serving(app) as base:
        (card,) = cards_of(
            httpx.post(base + PV, json=request_file("patient-view-postpartum"), timeout=20)
        )
        first = httpx.post(f"{base}{PV}/feedback", json=feedback_for(card), timeout=20)
    recorder.close()
    assert first.status_code == 200
    app, recorder = recording_app(evaluator, store_url, tmp_path / "journal")
    with serving(app) as base:
        again = httpx.post(f"{base}{PV}/feedback", json=feedback_for(card, "accepted"), timeout=20)
    rows = recorder.store.rows("feedback")
    recorder.close()
    assert again.status_code == 200
    assert [(r["outcome"], r["known_card"], r["card_uuid"]) for r in rows] == [
        ("overridden", True, card["uuid"]),
        ("accepted", True, card["uuid"]),
    ]
    assert rows[0]["override_code"] == card["overrideReasons"][0]["code"]


def test_journal_replay_is_in_order_and_without_duplicates(store_url: str, tmp_path: Path) -> None:
    """Records journalled while the store was away arrive once, in order, even if replayed
    twice (a crash between insert and journal removal)."""
    store = Store(store_url)
    store.migrate()
    journal = Journal(tmp_path / "journal")
    rows = [_feedback_row(i) for i in range(5)]
    journal.append("feedback", rows[:3])
    journal.append("feedback", rows[3:])
    copy = (tmp_path / "journal").glob("journal-*.ndjson").__next__().read_text()
    assert journal.replay(store.insert) == 5
    (tmp_path / "journal" / "journal-1-orphan.ndjson").write_text(copy)  # replay again
    assert journal.replay(store.insert) == 0
    assert [r["record_id"] for r in store.rows("feedback")] == [r["record_id"] for r in rows]
    assert not journal.waiting()
    store.dispose()


def _feedback_row(i: int) -> dict[str, Any]:
    return {
        "record_id": str(uuid.UUID(int=i + 1)),
        "recorded_at": dt.datetime(2026, 11, 30, 10, 0, i, tzinfo=dt.UTC),
        "service": "ivig-ms-patient-view",
        "card_uuid": f"card-{i}",
        "known_card": False,
        "outcome": "accepted",
        "outcome_timestamp": "2026-11-30T10:00:00Z",
        "override_system": None,
        "override_code": None,
        "accepted_suggestions": [],
    }


def test_sqlite_store_away_then_back(evaluator: Evaluator, tmp_path: Path) -> None:
    """While the SQLite file cannot be opened, cards and feedback are answered and journalled,
    /health says so; once it can, the journal is replayed and /health says writing."""
    missing_dir = tmp_path / "not-yet"
    url = f"sqlite:///{missing_dir / 'store.sqlite3'}"
    app, recorder = recording_app(evaluator, url, tmp_path / "journal")
    with serving(app) as base, httpx.Client(base_url=base, timeout=20) as http:
        cards = [
            cards_of(http.post(PV, json={**request_file("patient-view-postpartum"),
                                         "hookInstance": f"hook-{i}"}))[0]
            for i in range(3)
        ]  # fmt: skip
        assert http.post(f"{PV}/feedback", json=feedback_for(cards[0])).status_code == 200
        away = http.get("/health").json()["store"]
        lines = sum(
            len(p.read_text().splitlines()) for p in (tmp_path / "journal").glob("*.ndjson")
        )
        missing_dir.mkdir()
        back = http.get("/health").json()["store"]
    rows = recorder.store.rows("decisions")
    assert (away, lines, back) == ("journalling", 4, "writing")
    assert [r["hook_instance"] for r in rows] == ["hook-0", "hook-1", "hook-2"]
    assert len(recorder.store.rows("feedback")) == 1
    assert not recorder.journal.waiting()
    recorder.close()


def test_neither_store_nor_journal_gives_503_but_cards_still_flow(
    evaluator: Evaluator, tmp_path: Path
) -> None:
    """Clinical advice does not wait on the log; feedback and /health say 503 instead."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    url = f"sqlite:///{blocker / 'store.sqlite3'}"
    app, recorder = recording_app(evaluator, url, blocker / "journal")
    with serving(app) as base, httpx.Client(base_url=base, timeout=20) as http:
        (card,) = cards_of(http.post(PV, json=request_file("patient-view-postpartum")))
        feedback = http.post(f"{PV}/feedback", json=feedback_for(card))
        health = http.get("/health")
    assert (feedback.status_code, health.status_code) == (503, 503)
    assert "could not be recorded" in feedback.json()["error"]
    assert health.json()["store"] == "unavailable"
    recorder.close()


def test_postgresql_stopped_mid_run_then_replayed(
    evaluator: Evaluator, postgres: PrivatePostgres, tmp_path: Path
) -> None:
    """Stop PostgreSQL mid-run: answers continue from the journal; start it: every record
    arrives once, in order."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres.url.replace("postgresql://", "postgresql+psycopg://"))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    url = postgres.url.rsplit("/", 1)[0] + f"/{name}"
    app, recorder = recording_app(evaluator, url, tmp_path / "journal")
    sent: list[str] = []
    try:
        with serving(app) as base, httpx.Client(base_url=base, timeout=30) as http:

            def call(i: int) -> dict[str, Any]:
                body = {**request_file("patient-view-postpartum"), "hookInstance": f"h-{i}"}
                sent.append(f"h-{i}")
                return cards_of(http.post(PV, json=body))[0]

            call(0)
            postgres.stop()
            cards = [call(i) for i in range(1, 4)]
            assert http.post(f"{PV}/feedback", json=feedback_for(cards[0])).status_code == 200
            assert http.get("/health").json()["store"] == "journalling"
            journalled = list((tmp_path / "journal").glob("*.ndjson"))
            postgres.start()
            assert http.get("/health").json()["store"] == "writing"
            call(4)
        decisions = recorder.store.rows("decisions")
        feedback = recorder.store.rows("feedback")
    finally:
        if not _running(postgres):
            postgres.start()
        recorder.close()
    assert len(journalled) == 1
    assert [r["hook_instance"] for r in decisions] == sent
    assert [(f["card_uuid"], f["known_card"]) for f in feedback] == [(cards[0]["uuid"], True)]


def _running(server: PrivatePostgres) -> bool:
    return (server.data / "postmaster.pid").exists()


def test_pseudonym_key_file_is_created_private_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the environment variable, a 0600 key file is made once and then read back;
    the variable, when set, wins."""
    monkeypatch.delenv(ENV_KEY, raising=False)
    path = tmp_path / "pseudonym.key"
    assert ensure_key(path)
    first = read_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not ensure_key(path)
    assert read_key(path) == first and len(first) == 64
    monkeypatch.setenv(ENV_KEY, "from-the-environment-0123456789")
    assert read_key(path) == b"from-the-environment-0123456789"


def test_jti_memory_in_the_store_refuses_a_replay_until_expiry(store_url: str) -> None:
    """Workers share used JWT ids through the store: a second use is refused while the token
    lives, and the id may come back once it has expired."""
    store = Store(store_url)
    store.migrate()
    memory = SqlJtiMemory(store.engine)
    now = time.time()
    assert memory.remember("https://ehr.example.org", "jti-1", now + 60)
    assert not SqlJtiMemory(store.engine).remember("https://ehr.example.org", "jti-1", now + 60)
    assert memory.remember("https://other.example.org", "jti-1", now + 60)
    assert memory.remember("https://ehr.example.org", "jti-2", now - 1)
    assert memory.remember("https://ehr.example.org", "jti-2", now + 60)  # the old one expired
    memory.close()
    store.dispose()


@pytest.mark.skipif(not AHRQ.is_dir(), reason=f"shared AHRQ fixtures not found at {AHRQ}")
def test_real_ahrq_requests_record_nothing_and_answer_cors(
    evaluator: Evaluator, tmp_path: Path
) -> None:
    """The real Synthea requests (no MS on record) through the recording service: no card, no
    decision record, CORS headers on each answer."""
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    app, recorder = recording_app(evaluator, url, tmp_path / "journal")
    recorder.store.migrate()  # as `serve` does at start-up
    with serving(app) as base, httpx.Client(base_url=base, timeout=20) as http:
        statuses = []
        for path in sorted(AHRQ.glob("*.json")):
            response = http.post(
                PV, json=json.loads(path.read_text()), headers={"Origin": "https://ehr.example"}
            )
            statuses.append(response.status_code)
            assert response.headers["access-control-allow-origin"] == "*"
            if response.status_code == 200:
                assert response.json() == {"cards": []}
    assert statuses.count(200) == len(statuses) - 2  # two lack the conditions prefetch: 412
    assert recorder.store.rows("decisions") == []
    recorder.close()
