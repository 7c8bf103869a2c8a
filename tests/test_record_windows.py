"""Record windows: knowledge-base data with reasons, validated with positions, shown by the CLI."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ivig_cds import KnowledgeBaseError
from ivig_cds._record_windows import load_record_windows
from ivig_cds.cli import app
from ivig_cds.fhir import patient_from_fhir

REPO = Path(__file__).resolve().parents[1]


def test_shipped_windows_give_every_figure_a_reason() -> None:
    """rules/record-windows.yaml loads; its figures are the documented ones."""
    windows = load_record_windows(REPO / "rules" / "record-windows.yaml")
    assert [(name, w.weeks) for name, w in windows.rows()] == [
        ("pregnant", 42),
        ("not_pregnant", 4),
        ("breastfeeding", 26),
        ("postpartum", 104),
        ("ivig_in_use", 8),
    ]


def test_a_bad_windows_file_fails_with_its_line_and_column(tmp_path: Path) -> None:
    """A misspelled window and a figure out of range are both reported with positions."""
    path = tmp_path / "record-windows.yaml"
    path.write_text(
        "windows:\n"
        "  pregnant: {weeks: 42, reason: A pregnancy lasts at most about 42 weeks.}\n"
        "  not_pregnant: {weeks: 400, reason: A negative answer ages within a cycle.}\n"
        "  breastfeeding: {weeks: 26, reason: Breastfeeding status changes over months.}\n"
        "  postpartm: {weeks: 104, reason: The rules bound the postpartum period.}\n"
        "  ivig_in_use: {weeks: 8, reason: The knowledge spec's eight weeks of IVIG use.}\n"
    )
    with pytest.raises(KnowledgeBaseError) as caught:
        load_record_windows(path)
    assert [str(i).removeprefix(str(path)) for i in caught.value.issues] == [
        ":3:18: windows.not_pregnant.weeks: Input should be less than or equal to 104",
        ":1:1: windows.postpartum: required field is missing",
        ":5:3: windows.postpartm: unknown field",
    ]


def test_rules_windows_lists_each_window_with_its_reason() -> None:
    """`ivig-cds rules windows` prints one tab-separated line per window, reason included."""
    result = CliRunner().invoke(app, ["rules", "windows"])
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert lines[0] == ["window", "weeks", "reason"]
    assert [row[:2] for row in lines[1:]] == [
        ["pregnant", "42"],
        ["not_pregnant", "4"],
        ["breastfeeding", "26"],
        ["postpartum", "104"],
        ["ivig_in_use", "8"],
    ]
    assert lines[2][2].startswith("A negative answer can stop being true within one menstrual")


def test_validate_reports_a_broken_windows_file(tmp_path: Path) -> None:
    """`validate --rules` on a copy whose windows file lacks a window exits 1, located: the
    windows are part of the knowledge base, so loading it fails."""
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    text = (rules / "record-windows.yaml").read_text()
    (rules / "record-windows.yaml").write_text(text.replace("  postpartum:", "  postpartum_:"))
    result = CliRunner().invoke(app, ["validate", "--rules", str(rules)])
    assert result.exit_code == 1
    path = rules / "record-windows.yaml"
    assert f"{path}:4:1: windows.postpartum: required field is missing" in result.output
    assert f"{path}:22:3: windows.postpartum_: unknown field" in result.output


def test_the_adapter_reads_the_ivig_window_from_the_knowledge_base() -> None:
    """A knowledge base with a 2-week IVIG window makes a dose 3 weeks back not in use."""
    windows = load_record_windows(REPO / "rules" / "record-windows.yaml")
    shorter = windows.model_copy(
        update={"ivig_in_use": windows.ivig_in_use.model_copy(update={"weeks": 2})}
    )
    given = {
        "resourceType": "MedicationAdministration",
        "id": "a1",
        "status": "completed",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}]
        },
        "subject": {"reference": "Patient/p"},
        "effectiveDateTime": "2026-11-01",
    }
    day = dt.date(2026, 11, 22)
    assert patient_from_fhir(given, as_of=day).patient.ivig_in_use is True
    mapping = patient_from_fhir(given, as_of=day, windows=shorter)
    assert mapping.patient.ivig_in_use is None
    assert (
        "MedicationAdministration/a1: IVIG last given on 2026-11-01 (over 2 weeks before "
        "2026-11-22); not counted as in use"
    ) in mapping.notes


def test_a_knowledge_base_before_3_0_0_loads_without_the_ivig_window(tmp_path: Path) -> None:
    """Record windows without `ivig_in_use` (knowledge base 2.0.0) load, so that an older
    release can still be evaluated and compared; IVIG in use is then not read from records."""
    path = tmp_path / "record-windows.yaml"
    text = (REPO / "rules" / "record-windows.yaml").read_text(encoding="utf-8")
    path.write_text(text[: text.index("  ivig_in_use:")], encoding="utf-8")
    windows = load_record_windows(path)
    assert windows.ivig_in_use is None
    assert [name for name, _ in windows.rows()] == [
        "pregnant",
        "not_pregnant",
        "breastfeeding",
        "postpartum",
    ]
    bundle = json.loads(
        (REPO / "tests" / "fixtures" / "fhir" / "rrms-vte-history-on-ivig.json").read_text()
    )
    assert patient_from_fhir(bundle, as_of=dt.date(2026, 11, 22)).patient.ivig_in_use is True
    assert (
        patient_from_fhir(bundle, as_of=dt.date(2026, 11, 22), windows=windows).patient.ivig_in_use
        is None
    )
