"""`ivig-cds audit`: summaries with override rates, exports (NDJSON and FHIR GuidanceResponse)
and purging, read from a store the real service wrote (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
from fhir.resources.R4B.guidanceresponse import GuidanceResponse
from typer.testing import CliRunner, Result

from ivig_cds import Evaluator
from ivig_cds._pseudonym import Pseudonymizer
from ivig_cds.cli import app as cli
from ivig_cds.service import create_app
from ivig_cds.service.audit import guidance_response, summarize
from ivig_cds.service.journal import Journal
from ivig_cds.service.recorder import StoreRecorder
from ivig_cds.service.records import decision_row
from ivig_cds.service.store import Store
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


def test_purge_removes_only_older_records(
    evaluator: Evaluator, store_url: str, tmp_path: Path
) -> None:
    """Records from before the date go; newer ones stay."""
    populate(evaluator, store_url, tmp_path / "journal")
    store = Store(store_url)
    old = {**store.rows("decisions")[0], "record_id": "old-1"}
    old["recorded_at"] = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    store.insert("decisions", [old])
    store.dispose()
    result = audit("purge", "--store", store_url, "--before", "2021-01-01")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "removed 1 decisions and 0 feedback items recorded before 2021-01-01\n"
    )
    assert json.loads(audit("summary", "--store", store_url, "-f", "json").stdout)["rows"]


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
