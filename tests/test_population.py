"""`ivig-cds population` on generated bulk exports: tiers by construction, every line counted."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ivig_cds._data_dir import DATA_DIR_ENV, KEY_FILE
from ivig_cds._pseudonym import Pseudonymizer, ensure_key
from ivig_cds.cli import app
from ivig_cds.fhir import (
    default_code_tables,
    patient_from_fhir,
    patient_from_resources,
    project,
    resources_of,
)
from ivig_cds.population import (
    EngineUnavailableError,
    ExportError,
    _engines,
    duckdb_engine,
    run_population,
    spark_engine,
)
from ivig_cds.population._command import summary_line
from ivig_cds.population._engines import _cuts
from ivig_cds.population._error_log import ErrorLog
from ivig_cds.population._export import read_lines
from ivig_cds.population._medications import MedicationIndex
from ivig_cds.population._report import render_report
from ivig_cds.population._run import PopulationRun, _Tally
from tests.bulk_export import Export, generate

EXAMPLES = Path(__file__).parent.parent / "examples" / "fhir"


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Export]:
    folder = tmp_path_factory.mktemp("bulk") / "export"
    return folder, generate(folder, 9 * 12, malformed_every=9)


@pytest.fixture(scope="module")
def audited(export: tuple[Path, Export], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out")
    run_population(export[0], out)
    return out


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_patient_gets_the_tier_it_was_built_for(
    export: tuple[Path, Export], audited: Path
) -> None:
    """Tier and primary rule now, and each IVIG dose's tier at its date, match construction;
    patients without MS on record get no line."""
    results = {r["patient"]: r for r in _lines(audited / "results.ndjson")}
    expected = {pid: e for pid, e in export[1].patients.items() if e.tier is not None}
    assert set(results) == set(expected)
    for pid, want in expected.items():
        got = results[pid]
        assert (got["tier"], got["primary_rule"]) == (want.tier, want.primary_rule), pid
        doses = sorted((d["kind"], d["date"], d["tier"]) for d in got["ivig"])
        assert doses == sorted(want.doses), pid


def test_every_line_is_used_skipped_or_an_error(export: tuple[Path, Export], audited: Path) -> None:
    """Per file, lines read = used + skipped + errors, and the errors are the bad lines."""
    summary = json.loads((audited / "summary.json").read_text())
    built = export[1]
    errors = _lines(audited / "errors.ndjson")
    for count in summary["files"]:
        name = count["name"]
        assert count["read"] == built.lines[name], name
        assert count["errors"] == built.errors[name], name
        assert count["skipped"] == built.skipped[name], name
        assert count["read"] == count["used"] + count["skipped"] + count["errors"], name
        assert sum(1 for e in errors if e["file"] == name) == built.errors[name]
    reasons = {e["error"].split(":")[0] for e in errors}
    assert reasons == {
        "blank line",
        "invalid JSON",
        "not UTF-8 (byte 40)",
        "expected a FHIR resource (a JSON object), got list",
        "no patient",
        "'Encounter' in a file of Observation resources",
        "invalid FHIR",
        "no id",
    }
    medications = next(f for f in summary["files"] if f["name"] == "Medication.ndjson")
    assert (medications["used"], medications["skipped"], medications["errors"]) == (2, 1, 2)


def test_doses_named_by_a_shared_medication_are_joined(
    export: tuple[Path, Export], audited: Path, tmp_path: Path
) -> None:
    """An IVIG administration or order whose drug is a Medication resource of the export is
    found and judged; without the Medication file it is not IVIG at all."""
    by_reference = {
        f"{r['resourceType']}/{r['id']}"
        for path in export[0].glob("Medication[AR]*.ndjson")
        for r in map(json.loads, path.read_text().splitlines())
        if "medicationReference" in r
    }
    doses = {d["resource"] for r in _lines(audited / "results.ndjson") for d in r["ivig"]}
    assert len(doses & by_reference) >= 20
    partial = tmp_path / "export"
    shutil.copytree(export[0], partial)
    (partial / "Medication.ndjson").unlink()
    run_population(partial, tmp_path / "out")
    without = {
        d["resource"] for r in _lines(tmp_path / "out" / "results.ndjson") for d in r["ivig"]
    }
    assert without == doses - by_reference


def test_results_are_keyed_by_pseudonym(
    export: tuple[Path, Export], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a key, every line is keyed by HMAC-SHA256 of the FHIR id, and no id is written."""
    key = b"k" * 32
    run_population(export[0], tmp_path, pseudonymizer=Pseudonymizer(key))
    text = (tmp_path / "results.ndjson").read_text()
    keys = [r["patient"] for r in _lines(tmp_path / "results.ndjson")]
    want = sorted(
        hmac.new(key, pid.encode(), hashlib.sha256).hexdigest()
        for pid, e in export[1].patients.items()
        if e.tier is not None
    )
    assert keys == want
    assert '"patient":"pt0' not in text


def test_the_stewardship_report_shows_doses_by_tier_as_images(audited: Path) -> None:
    """report.html counts the unsupported doses and draws its charts as embedded SVG."""
    page = (audited / "report.html").read_text()
    summary = json.loads((audited / "summary.json").read_text())
    ivig = summary["ivig"]
    assert ivig["doses_by_tier"] == {
        "indeterminate": 12,
        "insufficient_evidence": 12,
        "not_recommended": 12,
        "second_line": 24,
    }
    assert ivig["doses_unsupported"] == 36
    assert ivig["doses_outside_evidence"] == 0
    assert "<strong>36 of 60 IVIG administrations and orders</strong>" in page
    assert "<em>not recommended</em> or <em>insufficient evidence</em>" in page
    assert "<code>not_recommended</code>" not in page
    assert page.count('src="data:image/svg+xml;base64,') == 4
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    missing = summary["missing_data_when_indeterminate"]
    assert {m["fact"]: m["count"] for m in missing}["first_line_dmt"] == 12


def test_the_date_comes_from_the_manifest_then_from_lastupdated(
    export: tuple[Path, Export], tmp_path: Path
) -> None:
    """Without a manifest, the newest meta.lastUpdated dates the export; with neither, the
    error says to give --as-of."""
    copy = tmp_path / "export"
    shutil.copytree(export[0], copy)
    (copy / "manifest.json").unlink()
    run = run_population(copy, tmp_path / "a")
    assert (run.as_of, run.as_of_source) == (
        dt.date(2026, 6, 29),
        "the newest meta.lastUpdated in the export",
    )
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "a"}\n')
    with pytest.raises(ExportError, match=r"no export date .* give one with --as-of"):
        run_population(bare, tmp_path / "b")


def test_as_of_judges_the_record_at_that_date(export: tuple[Path, Export], tmp_path: Path) -> None:
    """In 2018 the SPMS story was RRMS with first-line therapy unknown: indeterminate."""
    run_population(export[0], tmp_path, as_of=dt.date(2018, 1, 1))
    results = {r["patient"]: r for r in _lines(tmp_path / "results.ndjson")}
    spms = [pid for pid, e in export[1].patients.items() if e.primary_rule == "C05"]
    assert {(results[p]["tier"], results[p]["phenotype"]) for p in spms} == {
        ("indeterminate", "RRMS")
    }


def test_not_an_export_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no NDJSON file named by its resource type"):
        run_population(tmp_path, tmp_path / "out")


def test_cli_needs_a_key_or_keep_ids(
    export: tuple[Path, Export], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No key (none in the data folder either): exit 2 and how to get one, nothing created;
    with --keep-ids: exit 1 (some lines were errors), the counts, then what was written."""
    monkeypatch.delenv("IVIG_CDS_PSEUDONYM_KEY", raising=False)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(app, ["population", str(export[0]), "--out", str(out)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: no pseudonym key at {tmp_path / 'data' / KEY_FILE}, where `ivig-cds serve` "
        "keeps it: run `ivig-cds serve` once to create it, pass --key-file PATH (or set "
        "IVIG_CDS_PSEUDONYM_KEY), or keep FHIR ids with --keep-ids\n"
    )
    assert not (tmp_path / "data").exists() and not out.exists()
    result = runner.invoke(app, ["population", str(export[0]), "--out", str(out), "--keep-ids"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "108 patients, 96 with MS on record, as of 2026-06-30; 36 of 60 IVIG doses unsupported "
        "at their date; 26 unreadable lines (errors.ndjson)",
        f"wrote {out}/results.ndjson, {out}/errors.ndjson, {out}/summary.json, {out}/report.html",
    ]


def test_cli_reads_the_key_serve_made_by_default(
    export: tuple[Path, Export], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --key-file, results are keyed under the key in the data folder."""
    monkeypatch.delenv("IVIG_CDS_PSEUDONYM_KEY", raising=False)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert ensure_key(tmp_path / KEY_FILE)  # as `serve` makes it
    key = (tmp_path / KEY_FILE).read_text().strip().encode()
    result = CliRunner().invoke(
        app, ["population", str(export[0]), "--out", str(tmp_path / "out"), "--workers", "1"]
    )
    assert result.exit_code == 1, result.output
    keys = {r["patient"] for r in _lines(tmp_path / "out" / "results.ndjson")}
    assert keys == {
        hmac.new(key, pid.encode(), hashlib.sha256).hexdigest()
        for pid, e in export[1].patients.items()
        if e.tier is not None
    }


def test_out_naming_a_file_is_one_line_before_any_work(
    export: tuple[Path, Export], tmp_path: Path
) -> None:
    """--out naming a file, or a folder under a file, is exit 2 with one sentence naming the
    path, and the file is left alone."""
    taken = tmp_path / "results.txt"
    taken.write_text("mine\n")
    for out, message in [
        (taken, f"{taken} is a file; --out names a folder (for results.ndjson, errors.ndjson, "
                "summary.json and report.html)"),
        (taken / "audit", f"cannot create the output folder {taken / 'audit'}: Not a directory"),
    ]:  # fmt: skip
        result = CliRunner().invoke(
            app, ["population", str(export[0]), "--out", str(out), "--keep-ids"]
        )
        assert (result.exit_code, result.stderr) == (2, f"error: {message}\n")
    assert taken.read_text() == "mine\n"


def test_an_empty_export_reads_as_empty(tmp_path: Path) -> None:
    """No patients: the summary line and report.html say so in words, never "0 of 0"."""
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "Patient.ndjson").write_text("")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["population", str(tmp_path / "export"), "--out", str(out), "--keep-ids",
         "--as-of", "2026-01-01"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        "No patients in this export (as of 2026-01-01); every line read"
    )
    page = (out / "report.html").read_text()
    assert "<p>No patients in this export.</p>" in page
    assert "<p>No IVIG doses in this export.</p>" in page
    assert "<p>No patient in this export has an MS-family diagnosis on record.</p>" in page
    assert " 0 of 0 " not in page and "0 patients" not in page
    assert 'src="data:image/svg+xml' not in page


def test_the_summary_line_counts_one_in_the_singular() -> None:
    """One patient, one dose, one unreadable line: no "1 patients" or "1 IVIG doses"."""
    summary = _summary_of(
        [{"ms": True, "phenotype": "SPMS", "tier": "not_recommended", "missing": [],
          "doses": [["administration", "not_recommended", []]]}]
    )  # fmt: skip
    assert summary_line(summary, 1) == (
        "1 patient, 1 with MS on record, as of 2026-12-01; 1 of 1 IVIG dose unsupported at "
        "their date; 1 unreadable line (errors.ndjson)"
    )
    summary = _summary_of([{"ms": False, "phenotype": None}])
    assert summary_line(summary, 0) == (
        "1 patient, 0 with MS on record, as of 2026-12-01; no IVIG doses in this export; "
        "every line read"
    )
    child = {"ms": True, "phenotype": "RRMS", "tier": "outside_evidence", "missing": [],
             "doses": [["administration", "outside_evidence", []]]}  # fmt: skip
    page = render_report(_summary_of([child]))
    assert "<p>1 patient in the export, 1 with an MS-family diagnosis on record.</p>" in page
    assert "<strong>0 of 1 IVIG administration or order</strong> were given" in page
    assert "<strong>1 IVIG administration or order to review</strong> was given to a " in page


def _charts(export: tuple[Path, Export], limit: int) -> list[list[dict[str, Any]]]:
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(export[0].glob("*.ndjson")):
        for line in path.read_bytes().splitlines():
            try:
                raw = json.loads(line)
            except ValueError:
                continue
            if not isinstance(raw, dict) or raw.get("resourceType") in (None, "Encounter"):
                continue
            owner = raw.get("id") if raw["resourceType"] == "Patient" else None
            owner = owner or (raw.get("subject") or {}).get("reference", "").split("/")[-1]
            if owner and not str(raw.get("id", "")).endswith("-bad"):
                by_patient.setdefault(owner, []).append(raw)
    return list(by_patient.values())[:limit]


def test_parsing_only_what_is_read_maps_the_same(export: tuple[Path, Export]) -> None:
    """The projection changes no mapping: the examples and generated charts, both ways."""
    day = dt.date(2026, 6, 30)
    bundles = [json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))]
    charts = [
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in c]}
        for c in _charts(export, 27)
    ]
    for bundle in bundles + charts:
        whole = patient_from_fhir(bundle, as_of=day)
        entries = [e["resource"] for e in bundle["entry"]]
        cut = patient_from_resources(
            [r for e in entries for r in resources_of(project(e))], as_of=day
        )
        assert cut == whole


FIXTURES = Path(__file__).parent / "fixtures" / "fhir"


def _thrombotic_and_ivig_chart() -> dict[str, Any]:
    """The v3 fixture plus what only the projection could lose: an unmapped thrombotic code, an
    IVIG order whose end is in `dispenseRequest`, and one ended by its dosage period."""
    bundle: dict[str, Any] = json.loads((FIXTURES / "rrms-vte-history-on-ivig.json").read_text())
    subject = {"reference": "Patient/rrms-vte"}
    atc = {"coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}]}
    extra = [
        {
            "resourceType": "Condition",
            "id": "calf-dvt",
            "code": {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/sid/icd-10-cm",
                        "code": "I82.4Z2",
                        "display": "Acute DVT of left distal lower extremity",
                    }
                ]
            },
            "subject": subject,
            "recordedDate": "2024-05-02",
        },
        {
            "resourceType": "MedicationRequest",
            "id": "o-valid",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": atc,
            "subject": subject,
            "authoredOn": "2026-03-01",
            "dispenseRequest": {"validityPeriod": {"end": "2026-04-30"}},
        },
        {
            "resourceType": "MedicationRequest",
            "id": "o-bounds",
            "status": "active",
            "intent": "plan",
            "medicationCodeableConcept": atc,
            "subject": subject,
            "authoredOn": "2026-02-01",
            "dosageInstruction": [
                {"timing": {"repeat": {"boundsPeriod": {"end": "2026-05-15"}}}, "text": "q4w"}
            ],
        },
    ]
    bundle["entry"] += [{"resource": r} for r in extra]
    return bundle


@pytest.mark.parametrize("day", [dt.date(2026, 5, 20), dt.date(2026, 11, 22), dt.date(2027, 3, 1)])
def test_the_v3_fields_survive_the_projection(day: dt.date) -> None:
    """Thrombotic risk factors, unmapped thrombotic codes, first-line classes and IVIG use (from
    administrations and from order end dates) map the same whole and projected."""
    bundles = [json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))]
    for bundle in [*bundles, _thrombotic_and_ivig_chart()]:
        whole = patient_from_fhir(bundle, as_of=day)
        entries = [e["resource"] for e in bundle["entry"]]
        cut = patient_from_resources(
            [r for e in entries for r in resources_of(project(e))], as_of=day
        )
        assert cut == whole, bundle.get("id")
    chart = patient_from_fhir(_thrombotic_and_ivig_chart(), as_of=dt.date(2026, 5, 20))
    assert chart.patient.ivig_in_use is True
    assert chart.sources["ivig_in_use"] == (
        "MedicationRequest/o-bounds",
        "MedicationRequest/o-valid",
    )
    assert any(u.startswith("Condition/calf-dvt:") for u in chart.unmapped)


def test_population_results_match_the_adapter_for_the_v3_fields(tmp_path: Path) -> None:
    """An export of one chart (Medication shared, Conditions of other kinds beside it): its
    results line carries the adapter's notes and unmapped codes, and each IVIG dose is judged."""
    bundle = _thrombotic_and_ivig_chart()
    export = tmp_path / "export"
    export.mkdir()
    resources = [e["resource"] for e in bundle["entry"]]
    for kind in sorted({r["resourceType"] for r in resources}):
        lines = [json.dumps(r) for r in resources if r["resourceType"] == kind]
        (export / f"{kind}.ndjson").write_text("\n".join(lines) + "\n")
    day = dt.date(2026, 11, 22)
    run_population(export, tmp_path / "out", as_of=day)
    (result,) = _lines(tmp_path / "out" / "results.ndjson")
    mapping = patient_from_fhir(bundle, as_of=day)
    assert mapping.patient.ivig_in_use is True
    assert (result["notes"], result["unmapped"]) == (list(mapping.notes), list(mapping.unmapped))
    assert [(d["resource"], d["date"]) for d in result["ivig"]] == [  # a plan is not a dose
        ("MedicationRequest/ivig-order-2025", "2025-01-10"),
        ("MedicationRequest/o-valid", "2026-03-01"),
        ("MedicationAdministration/ivig-2026-09-13", "2026-09-13"),
        ("MedicationAdministration/ivig-2026-11-01", "2026-11-01"),
    ]
    assert all(d["tier"] is not None for d in result["ivig"])


def test_spark_missing_says_how_to_install_it(
    export: tuple[Path, Export], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    with pytest.raises(EngineUnavailableError, match=r"pip install 'ivig-cds\[spark\]'"):
        run_population(export[0], tmp_path, engine=spark_engine("local[1]"))


def test_worker_processes_write_the_same_files(
    export: tuple[Path, Export], audited: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two spawned workers auditing chunks of patients give the one-process bytes."""
    monkeypatch.setattr("ivig_cds.population._engines.CHUNK_PATIENTS", 10)  # 11 chunks
    run_population(export[0], tmp_path, engine=duckdb_engine(workers=2))
    for name in ("results.ndjson", "errors.ndjson", "summary.json"):
        assert (tmp_path / name).read_bytes() == (audited / name).read_bytes(), name


def test_sorting_in_key_ranges_writes_the_same_files(
    export: tuple[Path, Export], audited: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index cut into many key ranges, each sorted alone, gives the one-sort bytes."""
    split = _engines.split_by_key
    seen: list[list[Path]] = []

    def spy(*args: Any) -> list[Path]:
        seen.append(split(*args))
        return seen[-1]

    monkeypatch.setattr(_engines, "BUCKET_BYTES", 4_000)
    monkeypatch.setattr(_engines, "split_by_key", spy)
    run_population(export[0], tmp_path)
    assert len(seen) == 1
    assert len(seen[0]) > 10  # ranges, not one sort
    for name in ("results.ndjson", "errors.ndjson", "summary.json"):
        assert (tmp_path / name).read_bytes() == (audited / name).read_bytes(), name


def test_errors_spilled_in_sorted_runs_are_written_in_order(
    export: tuple[Path, Export], audited: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Errors kept on disk in runs of 3 give the same errors.ndjson as errors kept in memory."""
    monkeypatch.setattr("ivig_cds.population._error_log.RUN_ROWS", 3)
    run_population(export[0], tmp_path)
    errors = (tmp_path / "errors.ndjson").read_bytes()
    assert errors == (audited / "errors.ndjson").read_bytes()
    assert len(errors.splitlines()) > 3 * 5


def test_error_log_merges_runs_by_file_and_line(tmp_path: Path) -> None:
    log = ErrorLog(tmp_path, run_rows=2)
    for index, line in [(1, 9), (0, 5), (1, 2), (0, 7), (2, 1)]:
        log.add(index, line, f"reason {index}.{line}")
    log.write(tmp_path / "errors.ndjson", ["A.ndjson", "B.ndjson", "C.ndjson"])
    written = [(e["file"], e["line"]) for e in _lines(tmp_path / "errors.ndjson")]
    assert written == [
        ("A.ndjson", 5),
        ("A.ndjson", 7),
        ("B.ndjson", 2),
        ("B.ndjson", 9),
        ("C.ndjson", 1),
    ]
    assert dict(log.per_file) == {0: 2, 1: 2, 2: 1}
    assert len(list(tmp_path.glob("errors-*.ndjson"))) == 2


def test_a_medication_is_indexed_once_and_counted_where_it_is() -> None:
    """Only Medications naming a drug of the tables are joined; a repeated id is an error;
    each line counts once, as used only if an order names it."""
    index = MedicationIndex(with_text=True)
    ivig = {
        "resourceType": "Medication",
        "id": "m1",
        "code": {"coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}]},
    }
    other = {"resourceType": "Medication", "id": "m2", "code": {"text": "saline"}}
    assert index.add("m1", ivig, json.dumps(ivig), (3, 1, 0, 90)) is None
    assert index.add("m2", other, json.dumps(other), (3, 2, 91, 60)) is None
    assert index.add("m1", ivig, json.dumps(ivig), (3, 3, 152, 90)) == (
        "Medication/m1 appears twice in the export"
    )
    assert index.referred("m2") is None
    assert index.referred("absent") is None
    assert list(index.counts()) == [(3, 0, 2)]
    assert index.referred("m1") == (3, 1, 0, 90, json.dumps(ivig))
    assert list(index.counts()) == [(3, 1, 1)]


def test_duckdb_failing_is_a_clear_error_without_a_traceback(
    export: tuple[Path, Export], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_engines, "DUCKDB_MEMORY", "1MB")
    run = CliRunner().invoke(
        app, ["population", str(export[0]), "--out", str(tmp_path), "--keep-ids", "--workers", "1"]
    )
    assert run.exit_code == 2
    assert run.stderr.startswith(
        "error: DuckDB stopped while grouping the export (OutOfMemoryException); it needs 1MB "
        "of memory and, in the temporary folder ("
    )
    assert "Traceback" not in run.output and "pt0" not in run.output


def test_key_range_cuts_are_sample_quantiles_without_repeats() -> None:
    keys = sorted(["a", "a", "a", "b", "c", "c", "d", "e"])
    assert _cuts(keys, 4) == ["a", "c", "d"]
    assert _cuts(["a"] * 8, 4) == ["a"]  # one key everywhere: two ranges, one empty


def test_lines_are_numbered_and_over_long_ones_skipped_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks split anywhere: numbering, CRLF, a final line without newline, long lines."""
    monkeypatch.setattr("ivig_cds.population._export.MAX_LINE_BYTES", 8)
    monkeypatch.setattr("ivig_cds.population._export._BLOCK_BYTES", 3)
    path = tmp_path / "Patient.ndjson"
    path.write_bytes(b"abc\r\n\nthis line is long\n12345678\nlast")
    assert list(read_lines(path)) == [
        (1, 0, b"abc"),
        (2, 5, b""),
        (3, 6, None),
        (4, 24, b"12345678"),
        (5, 33, b"last"),
    ]
    path.write_bytes(b"a\nthis one is long too")
    assert list(read_lines(path)) == [(1, 0, b"a"), (2, 2, None)]
    path.write_bytes(b"")
    assert list(read_lines(path)) == []


def test_cli_rejects_a_bad_date(export: tuple[Path, Export], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["population", str(export[0]), "--out", str(tmp_path), "--as-of", "2026-13-01"]
    )
    assert result.exit_code == 2
    assert "'2026-13-01' is not a date YYYY-MM-DD" in result.output


def test_each_dose_is_judged_as_an_ivig_order_on_the_record_before_it(tmp_path: Path) -> None:
    """A dose is judged as the order it was: with no thrombotic risk factor on record, each
    dose asks for them, while the patient's own answer today need not."""
    bundle = _thrombotic_and_ivig_chart()
    tables = default_code_tables()
    resources = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] != "Condition"
        or not any(
            tables.lookup("thromboembolic_risk", c.get("system"), c.get("code"))
            for c in e["resource"].get("code", {}).get("coding", [])
        )
    ]
    export = tmp_path / "export"
    export.mkdir()
    for kind in sorted({r["resourceType"] for r in resources}):
        lines = [json.dumps(r) for r in resources if r["resourceType"] == kind]
        (export / f"{kind}.ndjson").write_text("\n".join(lines) + "\n")
    run_population(export, tmp_path / "out", as_of=dt.date(2026, 11, 22))
    (result,) = _lines(tmp_path / "out" / "results.ndjson")
    judged = [d for d in result["ivig"] if d["tier"] is not None]
    assert judged
    assert all("thromboembolic_risk_factors" in d["missing_data"] for d in judged)


def _summary_of(tallies: list[dict[str, Any]]) -> dict[str, Any]:
    tally = _Tally()
    for one in tallies:
        tally.add(one)
    return tally.summary(PopulationRun(dt.date(2026, 12, 1), "--as-of", []))


def test_doses_outside_the_evidence_are_their_own_category() -> None:
    """IVIG given to a patient the sources do not address is counted for review, apart from
    the unsupported doses, and the report names it in words with its own colour."""
    summary = _summary_of(
        [
            {"ms": True, "phenotype": "RRMS", "tier": "outside_evidence", "missing": [],
             "doses": [["administration", "outside_evidence", []],
                       ["order", "outside_evidence", []]]},
            {"ms": True, "phenotype": "SPMS", "tier": "not_recommended", "missing": [],
             "doses": [["administration", "not_recommended", []]]},
            {"ms": True, "phenotype": None, "tier": "indeterminate", "missing": ["ms_phenotype"],
             "doses": [["order", "indeterminate", ["ms_phenotype"]]]},
        ]
    )  # fmt: skip
    ivig = summary["ivig"]
    assert (ivig["doses_unsupported"], ivig["doses_outside_evidence"]) == (2, 2)
    assert ivig["patients_by_tier"]["outside_evidence"] == 1
    page = render_report(summary)
    assert "<strong>2 IVIG administrations and orders to review</strong>" in page
    assert "<strong>2 of 4 IVIG administrations and orders</strong>" in page
    svg = "".join(
        base64.b64decode(part.split('"', 1)[0]).decode()
        for part in page.split('src="data:image/svg+xml;base64,')[1:]
    )
    assert ">Outside the evidence</text>" in svg
    assert 'fill="#00838f"' in svg  # its own colour
    assert ">MS course</text>" in svg  # the missing fact in words
    for code in ("outside_evidence", "not_recommended", "ms_phenotype"):
        assert code not in re.sub(r'src="[^"]*"', "", page), code


def test_an_older_summary_without_the_category_still_renders() -> None:
    """A summary.json from before 3.0.0 has no outside-evidence count: the page says none."""
    summary = _summary_of(
        [{"ms": True, "phenotype": "SPMS", "tier": "not_recommended", "missing": [],
          "doses": [["administration", "not_recommended", []]]}]
    )  # fmt: skip
    del summary["ivig"]["doses_outside_evidence"]
    assert (
        '<p class="review">No IVIG administration or order was given to a patient the sources '
        "do not address" in render_report(summary)
    )
