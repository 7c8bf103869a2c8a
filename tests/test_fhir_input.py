"""`evaluate --fhir` (cli/fhir_input.py): the result, and beside it how the record was read, in
every format; files that are not FHIR are named as what they are."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ivig_cds.cli import app
from tests.fhir_records import RRMS_SCT, bundle, condition, observation

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "fhir"
NEVER_TRIED = EXAMPLES / "rrms-interferon-intolerant-glatiramer-never-tried.json"
CONFLICT = REPO / "tests" / "fixtures" / "fhir" / "phenotype-conflict.json"
GLATIRAMER_NOTE = (
    "first-line therapy as a whole left unknown: interferon-beta not tolerated "
    "(MedicationStatement/ifn), but glatiramer acetate is unaccounted for (never recorded, or "
    "stopped without a reason); the whole is judged over both classes"
)
COURSE_CONFLICT = (
    "MS course conflict: Condition/abc (RRMS) and Condition/def (PPMS) name different courses "
    "(primary progressive MS does not follow a relapsing course)"
)


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def test_json_puts_the_record_beside_the_recommendation() -> None:
    """One Bundle: `{source, recommendation, record}`, the record's notes, conflicts and
    unrecognised codes listed (the README's glatiramer note among them)."""
    result = run("evaluate", "--fhir", "--format", "json", NEVER_TRIED)
    assert (result.exit_code, result.stderr) == (0, "")
    document = json.loads(result.stdout)
    assert list(document) == ["source", "recommendation", "record"]
    assert document["source"] == str(NEVER_TRIED)
    assert document["recommendation"]["primary_rule"] == "C13b"
    assert document["record"] == {"notes": [GLATIRAMER_NOTE], "conflicts": [], "unmapped": []}


def test_json_of_several_bundles_gives_each_its_record() -> None:
    """A folder of Bundles: each item carries its own record, even an empty one."""
    result = run("evaluate", "--fhir", "--format", "json", EXAMPLES)
    assert result.exit_code == 0, result.stderr
    items = {Path(i["source"]).name: i for i in json.loads(result.stdout)}
    assert all(list(i) == ["source", "recommendation", "record"] for i in items.values())
    assert items["rrms-first-line-not-tolerated.json"]["record"] == {
        "notes": [], "conflicts": [], "unmapped": []
    }  # fmt: skip
    assert items["no-ms-on-record.json"]["record"]["notes"] == [
        "no MS diagnosis on record (1 Condition resource read): the patient is taken not to have MS"
    ]


def test_json_of_patient_files_is_unchanged() -> None:
    """Without --fhir there is no record: one file is the recommendation itself, several are
    `{source, recommendation}`."""
    one = json.loads(run("evaluate", REPO / "examples" / "c06-ppms.yaml").stdout)
    assert "record" not in one and one["primary_rule"] == "C06"
    several = json.loads(run("evaluate", REPO / "examples").stdout)
    assert all(list(item) == ["source", "recommendation"] for item in several)


def test_text_says_how_the_record_was_read() -> None:
    """--format text: after the questions that could settle the answer, the record's notes."""
    result = run("evaluate", "--fhir", "--format", "text", NEVER_TRIED)
    assert result.exit_code == 0
    assert (
        "\n\nHow the record was read\n  Notes:\n    - " + GLATIRAMER_NOTE + "\n\n"
    ) in result.stdout
    assert result.stdout.index("What would change or settle") < result.stdout.index(
        "How the record was read"
    )


def test_markdown_says_how_the_record_was_read() -> None:
    """--format markdown: a section with a bold heading per kind of remark."""
    result = run("evaluate", "--fhir", "--format", "markdown", NEVER_TRIED)
    assert result.exit_code == 0
    assert (
        "\n### How the record was read\n\n**Notes:**\n\n- " + GLATIRAMER_NOTE + "\n"
    ) in result.stdout


def test_a_record_without_remarks_has_no_section() -> None:
    """Nothing set aside, nothing left unknown by the reading: no empty heading."""
    result = run(
        "evaluate", "--fhir", "-f", "text", EXAMPLES / "rrms-first-line-not-tolerated.json"
    )
    assert result.exit_code == 0
    assert "How the record was read" not in result.stdout


def test_conflicting_entries_are_shown_with_the_result() -> None:
    """Two MS courses that cannot both hold: the course is left unknown and the result says
    why, as the CDS Hooks card does (it used to be an error with no result)."""
    result = run("evaluate", "--fhir", "--format", "json", CONFLICT)
    assert (result.exit_code, result.stderr) == (0, "")
    document = json.loads(result.stdout)
    assert document["recommendation"]["tier"] == "indeterminate"
    assert "ms_phenotype" in document["recommendation"]["missing_data"]
    assert document["record"]["conflicts"] == [COURSE_CONFLICT]
    text = run("evaluate", "--fhir", "--format", "text", CONFLICT).stdout
    assert (
        "How the record was read\n  Entries that disagree (each leaves its fact unknown):\n"
        f"    - {COURSE_CONFLICT}\n"
    ) in text


def test_a_patient_file_given_to_fhir_is_named_as_one() -> None:
    """A YAML patient file with --fhir: what it is and to drop --fhir, not a list of prefetch
    errors."""
    patient = REPO / "examples" / "c05-spms-progressing.yaml"
    result = run("evaluate", "--fhir", patient)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {patient}: is a patient file, not a FHIR record\n"
        f"  - drop --fhir to evaluate it: ivig-cds evaluate {patient}\n"
    )


def test_a_cds_hooks_request_given_to_fhir_is_named_as_one() -> None:
    """A whole CDS Hooks request: send it to the service, or give --fhir its prefetch."""
    request = REPO / "examples" / "cds-hooks" / "rrms-interferon-intolerant.json"
    result = run("evaluate", "--fhir", request)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {request}: is a CDS Hooks request, not a FHIR Bundle\n"
        "  - send it to the CDS Hooks service (ivig-cds serve), or give --fhir its prefetch\n"
    )


def test_a_bulk_export_given_to_fhir_names_population(tmp_path: Path) -> None:
    """A FHIR Bulk Data export's folder is a usage error naming `ivig-cds population`."""
    (tmp_path / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "p"}\n')
    (tmp_path / "manifest.json").write_text('{"output": []}')
    result = run("evaluate", "--fhir", tmp_path)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"Error: Invalid value for PATH: '{tmp_path}' is a FHIR Bulk Data export (NDJSON files "
        f"of resources), not patient files; audit it with: ivig-cds population {tmp_path} "
        "--out DIR"
    )


def test_unusable_fhir_lists_one_problem_per_line(tmp_path: Path) -> None:
    """Each problem of an unusable Bundle is one item under the file, not a nested list."""
    path = tmp_path / "bad.json"
    data = bundle(condition("a", *RRMS_SCT), condition("b", *RRMS_SCT))
    data["entry"][1]["resource"]["resourceType"] = "Conditoin"
    data["entry"][2]["resource"]["resourceType"] = "Condtion"
    path.write_text(json.dumps(data))
    result = run("evaluate", "--fhir", path)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {path}: is not a usable FHIR Bundle\n"
        "  - input: Bundle (no id): entry.1.resource.resourceType: 'Conditoin' is not a FHIR R4 "
        "resource type\n"
        "  - input: Bundle (no id): entry.2.resource.resourceType: 'Condtion' is not a FHIR R4 "
        "resource type\n"
    )


@pytest.mark.parametrize(("weeks", "status"), [(4, None), (8, "not_pregnant")])
def test_the_record_windows_of_the_knowledge_base_given_are_used(
    tmp_path: Path, weeks: int, status: str | None
) -> None:
    """`--rules DIR --fhir`: a "not pregnant" answer five weeks old counts under that knowledge
    base's window (8 weeks), not the shipped one (4 weeks)."""
    rules, evidence = tmp_path / "rules", tmp_path / "evidence"
    shutil.copytree(REPO / "rules", rules)
    shutil.copytree(REPO / "evidence", evidence)
    windows = rules / "record-windows.yaml"
    windows.write_text(windows.read_text().replace("weeks: 4\n", f"weeks: {weeks}\n", 1))
    when = (dt.date.today() - dt.timedelta(weeks=5)).isoformat()
    path = tmp_path / "record.json"
    answer = observation("o", "82810-3", when, answer="LA26683-5")
    path.write_text(json.dumps(bundle(condition("rrms", *RRMS_SCT), answer)))
    result = run("evaluate", "--fhir", "--rules", rules, "--evidence", evidence, path)
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    pregnancy_asked = "pregnancy_status" in document["recommendation"]["missing_data"]
    assert pregnancy_asked is (status is None)
    stale = f"Observation/o: a 'not pregnant' answer older than {weeks} weeks; not used"
    assert (stale in document["record"]["notes"]) is (status is None)
