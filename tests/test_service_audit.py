"""`ivig-cds audit`: summaries with override rates, exports (NDJSON and FHIR GuidanceResponse)
and purging, read from a store the real service wrote (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.guidanceresponse import GuidanceResponse
from typer.testing import CliRunner, Result

from ivig_cds import Evaluator
from ivig_cds._data_dir import DATA_DIR_ENV, STORE_FILE
from ivig_cds._pseudonym import Pseudonymizer
from ivig_cds.cli import app as cli
from ivig_cds.service import audit_cli, create_app
from ivig_cds.service.audit import guidance_response, summarize
from ivig_cds.service.journal import Journal
from ivig_cds.service.recorder import StoreRecorder
from ivig_cds.service.records import decision_row
from ivig_cds.service.store import Store, display_url
from tests.service_support import PV, TODAY, cards_of, request_file, serving

OS = "/cds-services/ivig-ms-order-sign"


def audit(*args: str) -> Result:
    return CliRunner().invoke(cli, ["audit", *args])


def populate(evaluator: Evaluator, url: str, journal: Path) -> dict[str, dict[str, Any]]:
    """Three cards through the real service, and feedback on them and on an unknown card."""
    recorder = StoreRecorder(Store(url), Journal(journal), background=False)
    app = create_app(
        evaluator, recorder=recorder, pseudonymizer=Pseudonymizer(b"k" * 32), today=lambda: TODAY
    )
    with serving(app) as base, httpx.Client(base_url=base, timeout=20) as http:
        cards = {
            "postpartum": cards_of(http.post(PV, json=request_file("patient-view-postpartum")))[0],
            "rrms": cards_of(
                http.post(PV, json=request_file("patient-view-rrms-interferon-intolerant"))
            )[0],
            "spms": cards_of(http.post(OS, json=request_file("order-sign-spms-ivig")))[0],
        }

        def send(path: str, card: str, outcome: str, code: str | None = None) -> None:
            item: dict[str, Any] = {
                "card": card,
                "outcome": outcome,
                "outcomeTimestamp": "2026-11-30T10:00:00Z",
            }
            if code:
                item["overrideReason"] = {"reason": {"code": code, "system": "urn:x"}}
            assert http.post(f"{path}/feedback", json={"feedback": [item]}).status_code == 200

        send(OS, cards["spms"]["uuid"], "overridden", "specialist-decision")
        send(OS, cards["spms"]["uuid"], "overridden", "specialist-decision")
        send(OS, cards["spms"]["uuid"], "overridden", "record-incorrect")
        send(OS, cards["spms"]["uuid"], "accepted")
        send(PV, cards["postpartum"]["uuid"], "accepted")
        send(PV, "00000000-0000-4000-8000-000000000000", "overridden", "evidence-disputed")
    recorder.close()
    return cards


def ext(card: dict[str, Any]) -> dict[str, Any]:
    extension: dict[str, Any] = card["extension"]["org.ivig-cds"]
    return extension


def test_summary_reports_decisions_and_override_rates(
    evaluator: Evaluator, store_url: str, tmp_path: Path
) -> None:
    """Per month, rule and tier: decisions, accepted, overridden, rate and top reasons."""
    cards = populate(evaluator, store_url, tmp_path / "journal")
    result = audit("summary", "--store", store_url, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {(r["rule"], r["tier"]): r for r in json.loads(result.stdout)["rows"]}
    month = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    spms = rows[(ext(cards["spms"])["primaryRule"], ext(cards["spms"])["tier"])]
    assert spms == {
        "month": month,
        "rule": ext(cards["spms"])["primaryRule"],
        "tier": "not_recommended",
        "decisions": 1,
        "accepted": 1,
        "overridden": 3,
        "overrideRate": 0.75,
        "topReasons": [
            {"code": "specialist-decision", "count": 2},
            {"code": "record-incorrect", "count": 1},
        ],
    }
    postpartum = rows[(ext(cards["postpartum"])["primaryRule"], "second_line")]
    assert (postpartum["accepted"], postpartum["overrideRate"]) == (1, 0.0)
    unknown = rows[("(card not in the store)", "-")]
    assert (unknown["decisions"], unknown["overridden"]) == (0, 1)
    assert sum(r["decisions"] for r in rows.values()) == 3


def test_summary_text_and_csv_carry_the_same_figures(evaluator: Evaluator, tmp_path: Path) -> None:
    """The text table shows the 75% override rate; the CSV has one line per row."""
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    cards = populate(evaluator, url, tmp_path / "journal")
    text = audit("summary", "--store", url)
    table = audit("summary", "--store", url, "--format", "csv")
    assert text.exit_code == table.exit_code == 0
    assert text.stdout.startswith("3 decisions, 6 feedback items\n")
    rule = ext(cards["spms"])["primaryRule"]
    (line,) = [ln for ln in text.stdout.splitlines() if f" {rule} " in ln]
    assert "75%" in line and "specialist-decision (2)" in line
    lines = table.stdout.splitlines()
    assert lines[0] == ("month,rule,tier,decisions,accepted,overridden,override_rate,top_reasons")
    assert any(f",{rule},not_recommended,1,1,3,0.750,specialist-decision=2;" in ln for ln in lines)


def test_export_guidance_responses_are_valid_fhir_r4(
    evaluator: Evaluator, store_url: str, tmp_path: Path
) -> None:
    """Each decision becomes a GuidanceResponse that fhir.resources (R4B) parses back, with
    module, status, reason (tier), outputs and data requirements, and no patient id."""
    cards = populate(evaluator, store_url, tmp_path / "journal")
    result = audit("export", "--store", store_url, "--format", "guidance-response")
    assert result.exit_code == 0, result.output
    resources = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(resources) == 3
    by_card = {r["identifier"][0]["value"].removeprefix("urn:uuid:"): r for r in resources}
    spms = by_card[cards["spms"]["uuid"]]
    GuidanceResponse.model_validate(spms)
    assert spms["moduleUri"] == f"urn:ivig-cds:rule:{ext(cards['spms'])['primaryRule']}"
    assert spms["status"] == "success"
    assert spms["reasonCode"][0]["coding"][0]["code"] == "not_recommended"
    (output,) = spms["contained"]
    assert {"name": "tier", "valueCode": "not_recommended"} in output["parameter"]
    assert spms["outputParameters"] == {"reference": "#output"}
    assert "spms" not in json.dumps(spms["subject"])
    for card in cards.values():
        missing = ext(card)["missingData"]
        got = by_card[card["uuid"]].get("dataRequirement", [])
        assert [d["mustSupport"][0] for d in got] == missing


def test_export_ndjson_has_every_record(evaluator: Evaluator, tmp_path: Path) -> None:
    """NDJSON export: 3 decisions then 6 feedback items, each typed."""
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    populate(evaluator, url, tmp_path / "journal")
    out = tmp_path / "export.ndjson"
    result = audit("export", "--store", url, "--output", str(out))
    assert result.exit_code == 0
    kinds = [json.loads(line)["type"] for line in out.read_text().splitlines()]
    assert kinds == ["decision"] * 3 + ["feedback"] * 6


def add_old_decision(url: str, when: dt.datetime = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)) -> None:
    """One more decision, copied from the store's first, recorded at `when`."""
    store = Store(url)
    old = {**store.rows("decisions")[0], "record_id": "old-1", "recorded_at": when}
    store.insert("decisions", [old])
    store.dispose()


def test_purge_removes_only_older_records(
    evaluator: Evaluator, store_url: str, tmp_path: Path
) -> None:
    """Records from before the date go; newer ones stay; it says what it removes first."""
    populate(evaluator, store_url, tmp_path / "journal")
    add_old_decision(store_url)
    result = audit("purge", "--store", store_url, "--before", "2021-01-01", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "1 decision and 0 feedback items recorded before 2021-01-01 will be removed from "
        f"{display_url(store_url)}\n"
        "removed 1 decision and 0 feedback items recorded before 2021-01-01\n"
    )
    assert json.loads(audit("summary", "--store", store_url, "-f", "json").stdout)["rows"]


def stored_decisions(url: str) -> int:
    store = Store(url)
    count = len(store.rows("decisions"))
    store.dispose()
    return count


def test_purge_asks_before_removing(
    evaluator: Evaluator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At a terminal, purge says what it will remove and asks; "n" removes nothing (exit 1),
    "y" removes them."""
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    populate(evaluator, url, tmp_path / "journal")
    add_old_decision(url)
    monkeypatch.setattr(audit_cli, "_interactive", lambda: True)
    preview = (
        "1 decision and 0 feedback items recorded before 2021-01-01 will be removed from "
        f"{url}\nRemove them? [y/N]: "
    )
    declined = CliRunner().invoke(
        cli, ["audit", "purge", "--store", url, "--before", "2021-01-01"], input="n\n"
    )
    assert (declined.exit_code, declined.stdout) == (1, preview + "n\nnothing removed\n")
    assert stored_decisions(url) == 4
    accepted = CliRunner().invoke(
        cli, ["audit", "purge", "--store", url, "--before", "2021-01-01"], input="y\n"
    )
    assert (accepted.exit_code, accepted.stdout) == (
        0,
        preview + "y\nremoved 1 decision and 0 feedback items recorded before 2021-01-01\n",
    )
    assert stored_decisions(url) == 3


def test_purge_without_a_terminal_needs_yes_and_never_waits(
    evaluator: Evaluator, tmp_path: Path
) -> None:
    """From a pipe or a cron job (stdin not a terminal) without --yes, purge removes nothing,
    says to add --yes and exits 1 at once, as a real process with stdin closed."""
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    populate(evaluator, url, tmp_path / "journal")
    add_old_decision(url)
    done = subprocess.run(
        [sys.executable, "-m", "ivig_cds", "audit", "purge", "--store", url,
         "--before", "2021-01-01"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout == (
        f"1 decision and 0 feedback items recorded before 2021-01-01 will be removed from {url}\n"
    )
    assert done.stderr == (
        "ivig-cds: error: standard input is not a terminal, so nothing was removed; add --yes\n"
    )
    assert stored_decisions(url) == 4


def test_purge_refuses_a_future_date_and_says_when_nothing_is_older(
    evaluator: Evaluator, tmp_path: Path
) -> None:
    """A date after today is a usage error naming it and today; a date with nothing older
    says so and removes nothing."""
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    populate(evaluator, url, tmp_path / "journal")
    today = dt.datetime.now(dt.UTC).date()
    future = (today + dt.timedelta(days=1)).isoformat()
    result = audit("purge", "--store", url, "--before", future, "--yes")
    assert result.exit_code == 2
    assert (
        f"Invalid value for '--before': {future} is in the future (today is "
        f"{today.isoformat()}, UTC)" in " ".join(result.stderr.split())
    )
    assert stored_decisions(url) == 3
    result = audit("purge", "--store", url, "--before", "2021-01-01", "--yes")
    assert (result.exit_code, result.stdout) == (
        0,
        "nothing to remove: no decision or feedback recorded before 2021-01-01\n",
    )


def test_counts_are_singular_for_one(evaluator: Evaluator, tmp_path: Path) -> None:
    """One decision reads "1 decision, 0 feedback items"; one record exported "1 record"."""
    rec = evaluator.evaluate({"ms_phenotype": "SPMS"})
    row = decision_row(
        rec, card_uuid="c-1", service="s", hook="patient-view", hook_instance="h",
        patient_key="k" * 64, order=None,
    )  # fmt: skip
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    store = Store(url)
    store.migrate()
    store.insert("decisions", [row])
    store.dispose()
    assert audit("summary", "--store", url).stdout.splitlines()[0] == (
        "1 decision, 0 feedback items"
    )
    exported = audit("export", "--store", url, "--output", str(tmp_path / "out.ndjson"))
    assert exported.stderr == f"wrote 1 record to {tmp_path / 'out.ndjson'}\n"


def test_audit_reads_the_store_serve_writes_by_default(
    evaluator: Evaluator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --store, audit reads ivig-cds.sqlite3 in the data folder; when there is none
    yet, it says where it looked and how to make one."""
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    default = f"sqlite:///{tmp_path / STORE_FILE}"
    missing = audit("summary")
    assert missing.exit_code == 1
    assert missing.stderr == (
        f"ivig-cds: error: no store at {default} (`ivig-cds serve` creates it there on its "
        "first start; or give --store URL)\n"
    )
    populate(evaluator, default, tmp_path / "journal")
    assert audit("summary").stdout.startswith("3 decisions, 6 feedback items\n")


def test_audit_errors_are_sentences(tmp_path: Path) -> None:
    """A missing store, an empty database or a bad date is one line on stderr, no traceback."""
    empty = tmp_path / "empty.sqlite3"
    created = Store(f"sqlite:///{empty}")
    created.ping()
    created.dispose()
    cases = [
        (("summary", "--store", f"sqlite:///{tmp_path / 'nope.sqlite3'}"), 1, "no store at"),
        (("summary", "--store", f"sqlite:///{empty}"), 1, "holds no ivig-cds store"),
        (("purge", "--store", f"sqlite:///{empty}", "--before", "soon"), 2, "'soon' is not a date"),
        (("summary", "--store", "mysql://x"), 2, "is not sqlite:///FILE or postgresql://"),
    ]
    for args, code, message in cases:
        result = audit(*args)
        assert result.exit_code == code, (args, result.output)
        assert "Traceback" not in result.output
        assert message in " ".join(result.stderr.split())


def test_the_store_keeps_and_summarises_outside_evidence(
    evaluator: Evaluator, tmp_path: Path
) -> None:
    """A child's card (v3 tier outside_evidence) is stored, summarised under its own tier and
    exported as a GuidanceResponse that succeeded (it waits on no data)."""
    rec = evaluator.evaluate({"ms_phenotype": "RRMS", "first_line_dmt": "suitable", "age_years": 9})
    assert rec.tier == "outside_evidence"
    row = decision_row(
        rec, card_uuid="c-1", service="s", hook="patient-view", hook_instance="h",
        patient_key="k" * 64, order=None,
    )  # fmt: skip
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    store.migrate()
    store.insert("decisions", [row])
    stored = store.rows("decisions")
    store.dispose()
    assert [r["tier"] for r in stored] == ["outside_evidence"]
    [summary] = summarize(stored, [])
    assert (summary.rule, summary.tier, summary.decisions) == (rec.primary_rule, rec.tier, 1)
    resource = guidance_response(stored[0])
    assert resource["status"] == "success"
    assert resource["reasonCode"][0]["coding"][0]["code"] == "outside_evidence"
