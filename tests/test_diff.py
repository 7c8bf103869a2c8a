"""`ivig-cds diff`: which answers a knowledge-base change gives differently, over every input."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from ivig_cds.cli import app
from ivig_cds.population import run_population
from tests.bulk_export import generate
from tests.strategies import mixed_patients

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

EditedKb = Callable[[str, str, str], tuple[Path, Path]]


@pytest.fixture(scope="module")
def edited_kb(tmp_path_factory: pytest.TempPathFactory) -> EditedKb:
    """A copy of the shipped knowledge base with one conclusion's tier changed (or none)."""

    def make(rule: str = "", old_tier: str = "", new_tier: str = "") -> tuple[Path, Path]:
        folder = tmp_path_factory.mktemp(f"kb-{rule or 'copy'}")
        shutil.copytree(REPO / "rules", folder / "rules")
        shutil.copytree(REPO / "evidence", folder / "evidence")
        if rule:
            (path,) = (folder / "rules" / "conclusions").glob(f"{rule}-*.yaml")
            text = path.read_text(encoding="utf-8")
            assert f"\ntier: {old_tier}\n" in text
            path.write_text(text.replace(f"\ntier: {old_tier}\n", f"\ntier: {new_tier}\n"))
        return folder / "rules", folder / "evidence"

    return make


def diff(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["diff", *map(str, args)])


def new_kb(rules: Path, evidence: Path) -> list[str | Path]:
    return ["--rules", rules, "--evidence", evidence]


def expected_examples(rule: str) -> set[str]:
    """The example files whose recorded expected result is decided by `rule` (from the golden
    files in examples/expected/, not from this command)."""
    found = set()
    for golden in (EXAMPLES / "expected").glob("*.json"):
        patient = EXAMPLES / f"{golden.stem}.yaml"
        if patient.exists() and json.loads(golden.read_text())["primary_rule"] == rule:
            found.add(str(patient))
    return found


def changed_items(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize(
    ("rule", "old_tier", "new_tier"),
    [
        ("C06", "insufficient_evidence", "not_recommended"),
        ("C02a", "second_line", "insufficient_evidence"),
    ],
)
def test_an_edited_tier_shows_exactly_the_patients_that_rule_decides(
    edited_kb: EditedKb, rule: str, old_tier: str, new_tier: str
) -> None:
    """One conclusion's tier changed: exactly the examples it decides change, in that tier."""
    rules, evidence = edited_kb(rule, old_tier, new_tier)
    result = diff(EXAMPLES, *new_kb(rules, evidence), "--format", "ndjson")
    assert result.exit_code == 3, result.stderr
    items = changed_items(result)
    assert {item["source"] for item in items} == expected_examples(rule)
    for item in items:
        assert (item["old"]["tier"], item["new"]["tier"]) == (old_tier, new_tier)
        assert item["old"]["primary_rule"] == item["new"]["primary_rule"] == rule
        assert item["changed"][0] == "tier"


def test_an_unchanged_copy_shows_no_change_and_exits_0(edited_kb: EditedKb) -> None:
    """A copy of the shipped knowledge base changes no answer, and says it is the same."""
    result = diff(EXAMPLES, *new_kb(*edited_kb("", "", "")))
    assert result.exit_code == 0, result.stderr
    assert "Both are the same knowledge base (same content hash)" in result.stdout
    assert re.search(r"^\d+ patients compared: 0 with a changed answer", result.stdout, re.M)
    assert "Changed answers" not in result.stdout


def test_text_shows_the_matrix_then_each_group_with_the_deciding_rules(
    edited_kb: EditedKb,
) -> None:
    """Text: a numbered tier matrix, then groups naming each side's rule; tiers never as codes."""
    result = diff(EXAMPLES, *new_kb(*edited_kb("C06", "insufficient_evidence", "not_recommended")))
    out = result.stdout
    assert "Old tier (rows) by new tier (columns), patients:" in out
    tiers = [line for line in out.splitlines() if re.match(r"^  \d  \S", line)]
    assert [line.split("  ")[2] for line in tiers[:4]] == [
        "Second-line option (2002-2008 evidence)",
        "Not first line (2002-2008 evidence)",
        "Insufficient evidence",
        "Not recommended",
    ]
    assert tiers[2].split()[-7:][3] == "1"  # insufficient evidence, now not recommended
    assert "Insufficient evidence → Not recommended: 1 patient" in out
    assert "  decided by: C06 → C06 (1)" in out
    assert f"{EXAMPLES}/c06-ppms.yaml (patient example-c06-ppms): decided by C06 → C06" in out
    assert "insufficient_evidence" not in out and "not_recommended" not in out


def test_summary_leaves_out_each_patient(edited_kb: EditedKb) -> None:
    """--summary keeps the matrix and what changed per group, not the list of patients."""
    rules, evidence = edited_kb("C02a", "second_line", "insufficient_evidence")
    result = diff(EXAMPLES, *new_kb(rules, evidence), "--summary")
    assert result.exit_code == 3
    assert "decided by: C02a → C02a (4)" in result.stdout
    assert "examples/c02a" not in result.stdout


def test_json_is_one_document_with_sides_counts_matrix_groups_and_items(
    edited_kb: EditedKb,
) -> None:
    """--format json: both knowledge bases, per-unit counts and matrix, groups with items."""
    rules, evidence = edited_kb("C06", "insufficient_evidence", "not_recommended")
    result = diff(EXAMPLES, *new_kb(rules, evidence), "--format", "json")
    document = json.loads(result.stdout)
    assert set(document) == {
        "old", "new", "same_knowledge_base", "as_of", "units", "error_count", "errors", "groups",
    }  # fmt: skip
    assert document["old"]["rules"] is None  # the shipped one
    assert document["new"]["rules"] == str(rules)
    assert document["same_knowledge_base"] is False
    patients = document["units"]["patient"]
    assert (patients["changed"], patients["tier_changed"]) == (1, 1)
    assert patients["compared"] == sum(cell["count"] for cell in patients["matrix"])
    (group,) = document["groups"]
    assert (group["old_tier"], group["new_tier"], group["count"]) == (
        "insufficient_evidence",
        "not_recommended",
        1,
    )
    (item,) = group["items"]
    assert set(item) == {
        "unit", "source", "patient", "old", "new", "changed", "added", "removed",
    }  # fmt: skip
    assert "context" not in json.dumps(document)  # the patient context stays internal


def test_ndjson_is_one_changed_item_per_line_with_both_answers(edited_kb: EditedKb) -> None:
    """--format ndjson: each line one changed patient, both answers with every aspect."""
    rules, evidence = edited_kb("C02a", "second_line", "insufficient_evidence")
    items = changed_items(diff(EXAMPLES, *new_kb(rules, evidence), "--format", "ndjson"))
    assert len(items) == 4
    for item in items:
        for side in ("old", "new"):
            assert set(item[side]) == {
                "tier", "primary_rule", "certainty", "cautions", "missing_data", "secondary_rules",
            }  # fmt: skip
        assert set(item["removed"]["cautions"]) >= {"K2", "K3", "K4"}


def test_ndjson_input_gives_the_same_changes_with_workers_as_without(
    edited_kb: EditedKb, tmp_path: Path
) -> None:
    """An NDJSON batch runs through worker processes and finds the same changes, by line."""
    source = tmp_path / "patients.ndjson"
    patients = mixed_patients(4500, seed=3)
    source.write_text("".join(json.dumps(p) + "\n" for p in patients))
    rules, evidence = edited_kb("C06", "insufficient_evidence", "not_recommended")
    runs = [
        diff(source, *new_kb(rules, evidence), "--format", "json", "--workers", n)
        for n in ("1", "2")
    ]
    assert [r.exit_code for r in runs] == [3, 3]
    one, two = (json.loads(r.stdout) for r in runs)
    assert one["units"] == two["units"] and one["groups"] == two["groups"]
    assert one["units"]["patient"]["compared"] == 4500
    (group,) = one["groups"]
    ppms = {
        i + 1
        for i, p in enumerate(patients)
        if p.get("ms_phenotype") == "PPMS" and _asks_long_term(p)
    }
    changed = {item["line"] for item in group["items"]}
    assert changed <= ppms and len(changed) == group["count"] > 0


def _asks_long_term(patient: dict[str, Any]) -> bool:
    return patient.get("intended_use") in (None, "disease_modifying") and not (
        patient.get("intended_use") is None and patient.get("acute_relapse")
    )


def test_bad_ndjson_lines_are_named_by_line_and_exit_1(tmp_path: Path) -> None:
    """Invalid lines are input errors naming the file, the line and the field; exit 1."""
    source = tmp_path / "in.ndjson"
    source.write_text('{"ms_phenotype": "PPMS"}\n{"ms_phenotype": "XMS"}\nnot json\n')
    result = diff(source)
    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"error: {source}, line 2: invalid patient context: ms_phenotype")
    assert errors[1].startswith(f"error: {source}, line 3: invalid JSON")
    assert "1 patient compared" in result.stdout


def test_invalid_patient_files_are_one_line_each_and_exit_1() -> None:
    """Each bad patient file is one error line naming file, position and field; exit 1."""
    result = diff(EXAMPLES / "invalid", EXAMPLES / "c06-ppms.yaml")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == len(list((EXAMPLES / "invalid").iterdir()))
    assert any(
        line.startswith("error: ") and "edss-11.yaml" in line and "line 6, column 1: edss" in line
        for line in lines
    )
    assert "Traceback" not in result.output


def test_an_invalid_knowledge_base_is_one_line_naming_side_file_and_field(
    edited_kb: EditedKb,
) -> None:
    """A knowledge base that does not load (a record window of 0 weeks) is named in one line,
    with its side, file, line and field, and exit code 1."""
    rules, evidence = edited_kb("", "", "")
    windows = rules / "record-windows.yaml"
    text = windows.read_text(encoding="utf-8")
    windows.write_text(text.replace("weeks: 42", "weeks: 0", 1), encoding="utf-8")
    result = diff(EXAMPLES, "--old-rules", rules, "--old-evidence", evidence)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: the old knowledge base is invalid: {windows}:")
    assert "windows.pregnant.weeks: Input should be greater than or equal to 1" in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_release_without_the_ivig_window_is_compared(edited_kb: EditedKb) -> None:
    """Record windows without the IVIG-in-use window (knowledge base 2.0.0) still load, so an
    older release can be compared with the shipped one."""
    rules, evidence = edited_kb("", "", "")
    windows = rules / "record-windows.yaml"
    text = windows.read_text(encoding="utf-8")
    windows.write_text(text[: text.index("  ivig_in_use:")], encoding="utf-8")
    result = diff(EXAMPLES, "--old-rules", rules, "--old-evidence", evidence, "--summary")
    assert result.exit_code == 0, result.stderr


def test_usage_errors_exit_2() -> None:
    """--summary outside text, --fhir with --bulk and a missing path are usage errors."""
    assert diff(EXAMPLES, "--summary", "--format", "json").exit_code == 2
    assert diff(EXAMPLES, "--fhir", "--bulk").exit_code == 2
    assert diff(EXAMPLES / "nowhere.yaml").exit_code == 2


def test_fhir_bundles_are_mapped_and_compared(edited_kb: EditedKb) -> None:
    """--fhir: example Bundles are mapped and compared; the SPMS record moves with C05's tier."""
    rules, evidence = edited_kb("C05", "not_recommended", "insufficient_evidence")
    result = diff(
        EXAMPLES / "fhir", *new_kb(rules, evidence), "--fhir", "--format", "ndjson",
        "--as-of", "2026-12-01",
    )  # fmt: skip
    assert result.exit_code == 3, result.stderr
    (item,) = changed_items(result)
    assert item["source"].endswith("spms-decade-history.json")
    assert (item["old"]["primary_rule"], item["new"]["tier"]) == ("C05", "insufficient_evidence")


def test_a_bulk_export_compares_each_patient_now_and_each_dose_at_its_date(
    edited_kb: EditedKb, tmp_path: Path
) -> None:
    """--bulk: exactly the patients and doses the population audit judges by C06 change."""
    export = tmp_path / "export"
    generate(export, 40, malformed_every=0)
    audited = tmp_path / "audit"
    run_population(export, audited)  # the shipped knowledge base, keyed by FHIR id
    by_c06 = set()
    doses_by_c06 = set()
    for line in (audited / "results.ndjson").read_text().splitlines():
        result = json.loads(line)
        if result["primary_rule"] == "C06":
            by_c06.add(result["patient"])
        doses_by_c06 |= {d["resource"] for d in result["ivig"] if d["primary_rule"] == "C06"}
    assert by_c06 and doses_by_c06
    rules, evidence = edited_kb("C06", "insufficient_evidence", "not_recommended")
    result = diff(
        export, *new_kb(rules, evidence), "--bulk", "--keep-ids", "--format", "ndjson",
        "--workers", "1",
    )  # fmt: skip
    assert result.exit_code == 3, result.stderr
    items = changed_items(result)
    assert {i["patient"] for i in items if i["unit"] == "patient"} == by_c06
    assert {i["dose"]["resource"] for i in items if i["unit"] == "dose"} == doses_by_c06
    assert all(i["changed"] == ["tier"] for i in items)


def test_a_bulk_export_compares_cautions_and_certainty_too(
    edited_kb: EditedKb, tmp_path: Path
) -> None:
    """--bulk: a caution no longer attached to C06 shows as a removed caution for exactly the
    patients and doses C06 decides, with tier and certainty unchanged."""
    export = tmp_path / "export"
    generate(export, 40, malformed_every=0)
    audited = tmp_path / "audit"
    run_population(export, audited)
    results = [json.loads(line) for line in (audited / "results.ndjson").read_text().splitlines()]
    by_c06 = {r["patient"] for r in results if r["primary_rule"] == "C06"}
    assert by_c06 and all("K7" in r["cautions"] for r in results if r["patient"] in by_c06)
    rules, evidence = edited_kb()
    k7 = rules / "cautions" / "K7-uncontrolled-progressive-signal.yaml"
    k7.write_text(k7.read_text().replace("{in: [C05, C06]}", "{in: [C05]}"), encoding="utf-8")
    result = diff(
        export, *new_kb(rules, evidence), "--bulk", "--keep-ids", "--format", "ndjson",
        "--workers", "1",
    )  # fmt: skip
    assert result.exit_code == 3, result.stderr
    items = changed_items(result)
    assert {i["patient"] for i in items if i["unit"] == "patient"} == by_c06
    assert all(i["changed"] == ["cautions"] for i in items)


def test_a_bulk_export_needs_a_pseudonym_key_or_keep_ids(tmp_path: Path) -> None:
    """Without a key or --keep-ids, patients of an export are not named: a usage error."""
    export = tmp_path / "export"
    generate(export, 3, malformed_every=0)
    result = CliRunner(env={"IVIG_CDS_PSEUDONYM_KEY": ""}).invoke(
        app, ["diff", "--bulk", str(export)]
    )
    assert result.exit_code == 2
    assert "no pseudonym key" in result.output


def test_not_an_export_is_an_input_error(tmp_path: Path) -> None:
    """A folder given to --bulk that is not an export is named in one error line; exit 1."""
    result = diff(tmp_path, "--bulk", "--keep-ids")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {tmp_path}: no NDJSON file named by its resource")


def test_the_command_runs_as_a_real_process_with_its_exit_codes(
    edited_kb: EditedKb, tmp_path: Path
) -> None:
    """The installed console script: 3 for changed answers (written with --out), 0 for none."""
    script = Path(sys.executable).with_name("ivig-cds")
    if not script.exists():
        pytest.skip(f"console script not installed next to {sys.executable}; pip install -e .")
    rules, evidence = edited_kb("C06", "insufficient_evidence", "not_recommended")
    out = tmp_path / "diff.txt"
    changed = subprocess.run(
        [script, "diff", EXAMPLES, *new_kb(rules, evidence), "--out", out],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert changed.returncode == 3, changed.stderr
    assert "Insufficient evidence → Not recommended: 1 patient" in out.read_text(encoding="utf-8")
    assert changed.stderr.strip().endswith("changed (1 in tier)")
    same = subprocess.run(
        [script, "diff", EXAMPLES / "c06-ppms.yaml"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert same.returncode == 0
    assert "1 patient compared: 0 with a changed answer" in same.stdout


def test_as_of_must_be_a_date() -> None:
    """A bad --as-of is a usage error naming the value."""
    result = diff(EXAMPLES, "--fhir", "--as-of", "2026-13-01")
    assert result.exit_code == 2
    assert "'2026-13-01' is not a date YYYY-MM-DD" in result.output


def test_help_shows_real_placeholders_and_the_exit_codes() -> None:
    """`diff --help` reads PATH..., DIR, FORMAT (never {PATH} or <list[str]>) and exit code 3."""
    result = diff("--help")
    assert result.exit_code == 0
    assert "Usage: ivig-cds diff [OPTIONS] PATH...\n" in result.stdout
    assert not re.search(r"<(?:list|str|int|bool|float|path|text)[^>]*>", result.stdout)
    assert not re.search(r"\{[A-Z]+\}", result.stdout)
    assert "3 some answers changed" in " ".join(result.stdout.split())


def test_the_command_imports_in_any_order() -> None:
    """`ivig_cds.diff.commands` loads on its own, before the command line that registers it."""
    code = "from ivig_cds.diff import commands; import ivig_cds.cli; print(type(commands).__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "Typer"), done.stderr
