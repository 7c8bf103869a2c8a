"""Finding and reading patient files: directories, standard input, located errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ivig_cds import MSPhenotype
from ivig_cds.cli.patient_files import (
    STDIN_NAME,
    PatientFileError,
    PatientPathError,
    PatientSource,
    Problem,
    discover,
    read_patient,
)


def no_stdin() -> bytes:
    raise AssertionError("standard input must not be read")


def source(path: Path) -> PatientSource:
    return PatientSource(str(path), path)


def failure(path: Path, text: str) -> PatientFileError:
    path.write_text(text)
    with pytest.raises(PatientFileError) as caught:
        read_patient(source(path), no_stdin)
    return caught.value


def test_directory_means_its_patient_files_sorted_not_subfolders(tmp_path: Path) -> None:
    """A directory expands to its *.json/*.yaml/*.yml files by name; others are skipped."""
    for name in ("b.yaml", "a.json", "c.yml", "notes.md", "d.YAML"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.yaml").write_text("{}")
    names = [Path(s.name).name for s in discover([str(tmp_path)])]
    assert names == ["a.json", "b.yaml", "c.yml", "d.YAML"]


def test_paths_keep_their_order_and_dash_is_stdin(tmp_path: Path) -> None:
    """Files are returned in the order given; `-` is standard input."""
    (tmp_path / "z.yaml").write_text("{}")
    found = discover([str(tmp_path / "z.yaml"), "-"])
    assert found == [PatientSource(str(tmp_path / "z.yaml"), tmp_path / "z.yaml"),
                     PatientSource(STDIN_NAME, None)]  # fmt: skip


def test_missing_path_is_rejected(tmp_path: Path) -> None:
    """A path that does not exist raises PatientPathError naming it."""
    with pytest.raises(PatientPathError, match=r"'.*nothing\.yaml' does not exist"):
        discover([str(tmp_path / "nothing.yaml")])


def test_empty_directory_names_subfolders_that_hold_patients(tmp_path: Path) -> None:
    """A folder with no patient file directly inside points at the subfolders that have some."""
    (tmp_path / "patients").mkdir()
    (tmp_path / "patients" / "p.yaml").write_text("{}")
    (tmp_path / "nothing-here").mkdir()
    with pytest.raises(PatientPathError) as caught:
        discover([str(tmp_path)])
    message = str(caught.value)
    assert "subfolders are not searched" in message
    assert f"'{tmp_path / 'patients'}'" in message and "nothing-here" not in message


def test_reads_yaml_json_and_stdin(tmp_path: Path) -> None:
    """YAML files, JSON files and standard input all give a PatientContext."""
    (tmp_path / "p.yaml").write_text("ms_phenotype: SPMS\nedss: 6.5\n")
    (tmp_path / "p.json").write_text('{"ms_phenotype": "CIS"}')
    assert read_patient(source(tmp_path / "p.yaml"), no_stdin).edss == 6.5
    assert read_patient(source(tmp_path / "p.json"), no_stdin).ms_phenotype is MSPhenotype.CIS
    stdin = PatientSource(STDIN_NAME, None)
    assert read_patient(stdin, lambda: b"ms_phenotype: PPMS\n").ms_phenotype is MSPhenotype.PPMS


def test_invalid_fields_are_located_at_their_line(tmp_path: Path) -> None:
    """Each validation problem carries the line and column of the field it names."""
    error = failure(
        tmp_path / "p.yaml", "patient_id: x\nsex: male\nedss: 10.5\nms_phenotpye: RRMS\n"
    )
    assert error.source == str(tmp_path / "p.yaml")
    assert error.summary == "is not a valid patient context"
    assert error.problems == (
        Problem("edss: Input should be less than or equal to 10 (got 10.5)", 3, 1),
        Problem("'ms_phenotpye': unknown field; did you mean 'ms_phenotype'?", 4, 1),
    )


def test_cross_field_problem_points_at_its_field(tmp_path: Path) -> None:
    """A contradiction (male and pregnant) is located at pregnancy_status."""
    error = failure(tmp_path / "p.yaml", "sex: male\npregnancy_status: pregnant\n")
    assert error.problems == (
        Problem("pregnancy_status: 'pregnant' contradicts sex 'male'; correct one of them", 2, 1),
    )


def test_list_item_problem_points_at_the_item(tmp_path: Path) -> None:
    """A bad entry in a list is located at the entry itself."""
    error = failure(tmp_path / "p.yaml", "thromboembolic_risk_factors:\n  - obesity\n  - ''\n")
    assert len(error.problems) == 1
    assert error.problems[0].message.startswith("thromboembolic_risk_factors.1: ")
    assert (error.problems[0].line, error.problems[0].column) == (3, 5)


def test_not_a_mapping_is_located_at_the_document(tmp_path: Path) -> None:
    """A list at the top is reported at line 1."""
    error = failure(tmp_path / "p.yaml", "- RRMS\n")
    assert error.problems == (Problem("expected a mapping of patient fields, got list", 1, 1),)


def test_yaml_syntax_error_keeps_line_and_column(tmp_path: Path) -> None:
    """A syntax error becomes one located problem; duplicate keys are refused too."""
    error = failure(tmp_path / "p.yaml", "sex: female\nsex: male\n")
    assert error.summary == "is not a valid YAML file"
    assert error.problems == (Problem("duplicate key 'sex'", 2, 1),)
    assert str(error) == f"{tmp_path / 'p.yaml'}: is not a valid YAML file\n" \
        "  - line 2, column 1: duplicate key 'sex'"  # fmt: skip


def test_unreadable_file_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """A path that cannot be read (here a directory) gives "cannot be read"."""
    with pytest.raises(PatientFileError) as caught:
        read_patient(source(tmp_path), no_stdin)
    assert caught.value.summary == "cannot be read"
    assert caught.value.problems == (Problem("Is a directory"),)


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        (  # Python 3.13's reader names the trailing comma itself
            '{\n  "ms_phenotype": "RRMS",\n  "edss": 2.5,\n}\n',
            [Problem("invalid JSON: Illegal trailing comma before end of object", 3, 14)]
            if sys.version_info >= (3, 13)
            else [Problem("invalid JSON: Expecting property name enclosed in double quotes", 4, 1)],
        ),
        (
            '{"ms_phenotype": RRMS}',
            [Problem("invalid JSON: Expecting value", 1, 18)],
        ),
        (
            '{"ms_phenotype": "RRMS",\n "edss": NaN}',
            [Problem("invalid JSON: NaN is not allowed: JSON has no NaN or infinity", 2, 10)],
        ),
        (
            '{"edss": 2.5,\n "edss": 3}',
            [Problem("invalid JSON: key 'edss' appears more than once", 2, 2)],
        ),
        (
            "ms_phenotype: RRMS\n",
            [
                Problem("invalid JSON: Expecting value", 1, 1),
                Problem("the file looks like YAML; YAML files end in .yaml or .yml"),
            ],
        ),
    ],
)
def test_json_files_are_strict_json(tmp_path: Path, text: str, problems: list[Problem]) -> None:
    """.json is JSON: no trailing commas, bare words, NaN or repeated keys; errors are located."""
    error = failure(tmp_path / "p.json", text)
    assert error.summary == "is not valid JSON"
    assert list(error.problems) == problems


def test_json_validation_errors_point_into_the_file(tmp_path: Path) -> None:
    """A valid JSON file with a bad value is located like YAML: at the field's line."""
    error = failure(tmp_path / "p.json", '{\n  "sex": "male",\n  "edss": 11\n}')
    assert error.problems == (
        Problem("edss: Input should be less than or equal to 10 (got 11)", 3, 3),
    )


@pytest.mark.parametrize(
    ("given", "phenotype_or_summary"),
    [
        (b"ms_phenotype: CIS\n", MSPhenotype.CIS),
        (b'  {"ms_phenotype": "SPMS"}', MSPhenotype.SPMS),
        (b'{"ms_phenotype": "SPMS",}', "is not valid JSON"),
        (b"ms_phenotype: [CIS\n", "is not a valid YAML file"),
    ],
)
def test_standard_input_is_read_by_its_content(
    given: bytes, phenotype_or_summary: MSPhenotype | str
) -> None:
    """Standard input starting with { or [ is strict JSON; anything else is YAML."""
    stdin = PatientSource(STDIN_NAME, None)
    if isinstance(phenotype_or_summary, MSPhenotype):
        assert read_patient(stdin, lambda: given).ms_phenotype is phenotype_or_summary
        return
    with pytest.raises(PatientFileError) as caught:
        read_patient(stdin, lambda: given)
    assert caught.value.summary == phenotype_or_summary


def test_yaml_files_stay_yaml_whatever_they_hold(tmp_path: Path) -> None:
    """A .yaml file is read as YAML even when it starts like JSON (flow style)."""
    (tmp_path / "p.yaml").write_text("{ms_phenotype: PPMS, edss: 6.5}\n")
    assert read_patient(source(tmp_path / "p.yaml"), no_stdin).ms_phenotype is MSPhenotype.PPMS


@pytest.mark.parametrize(
    ("document", "summary", "hint"),
    [
        (
            {"resourceType": "Bundle", "type": "collection", "entry": []},
            "is a FHIR Bundle, not a patient context",
            "add --fhir to evaluate it: ivig-cds evaluate --fhir {path}",
        ),
        (
            {"resourceType": "Patient", "gender": "female"},
            "is a FHIR Patient resource, not a patient context",
            "--fhir evaluates a FHIR R4 Bundle holding the patient's resources",
        ),
        (
            {"hook": "patient-view", "hookInstance": "x", "prefetch": {}},
            "is a CDS Hooks request, not a patient context",
            "send it to the CDS Hooks service (ivig-cds serve), or its prefetch Bundle to --fhir",
        ),
    ],
)
def test_fhir_and_cds_hooks_documents_get_a_hint(
    tmp_path: Path, document: dict[str, object], summary: str, hint: str
) -> None:
    """Not a wall of "unknown field" lines: what the file is, and the option that reads it."""
    path = tmp_path / "bundle.json"
    error = failure(path, json.dumps(document))
    assert (error.summary, error.problems) == (summary, (Problem(hint.format(path=path)),))


FHIR_LINE = '{"resourceType": "Patient", "id": "p1", "gender": "female"}\n'
CONTEXT_LINE = '{"patient_id": "p1", "ms_phenotype": "RRMS"}\n'


@pytest.mark.parametrize(
    ("name", "lines", "message"),
    [
        (
            "Patient.ndjson",
            FHIR_LINE * 2,
            "'{path}' holds FHIR resources, one per line (a file of a Bulk Data export), not one "
            "patient; audit the export's folder with: ivig-cds population {folder} --out DIR",
        ),
        (
            "patients.ndjson",
            "\n" + CONTEXT_LINE * 2,
            "'{path}' holds one patient per line (NDJSON); evaluate it with: ivig-cds batch "
            "{path} --out results.ndjson",
        ),
        (
            "odd.jsonl",
            "[1, 2]\n",
            "'{path}' is an NDJSON file (one JSON document per line): ivig-cds batch evaluates "
            "patients given that way, ivig-cds population audits a FHIR Bulk Data export",
        ),
    ],
)
def test_an_ndjson_file_names_the_command_that_reads_it(
    tmp_path: Path, name: str, lines: str, message: str
) -> None:
    """A file of one record per line is not one patient: a usage error naming `population` for
    FHIR resources, `batch` for patient contexts, both when the first line says neither."""
    path = tmp_path / name
    path.write_text(lines)
    with pytest.raises(PatientPathError) as caught:
        discover([str(path)])
    assert str(caught.value) == message.format(path=path, folder=tmp_path)


def test_a_bulk_export_folder_names_population(tmp_path: Path) -> None:
    """A FHIR Bulk Data export (NDJSON per resource type, a manifest beside them) is not a
    folder of patient files: its manifest is not evaluated, `population` is named."""
    (tmp_path / "Patient.ndjson").write_text(FHIR_LINE)
    (tmp_path / "Condition.1.ndjson").write_text(FHIR_LINE.replace("Patient", "Condition"))
    (tmp_path / "manifest.json").write_text('{"transactionTime": "2026-06-30", "output": []}')
    with pytest.raises(PatientPathError) as caught:
        discover([str(tmp_path)])
    assert str(caught.value) == (
        f"'{tmp_path}' is a FHIR Bulk Data export (NDJSON files of resources), not patient "
        f"files; audit it with: ivig-cds population {tmp_path} --out DIR"
    )


def test_a_folder_of_context_ndjson_names_batch(tmp_path: Path) -> None:
    """A folder holding only NDJSON files of patient contexts points to `batch`."""
    (tmp_path / "week1.ndjson").write_text(CONTEXT_LINE)
    with pytest.raises(PatientPathError) as caught:
        discover([str(tmp_path)])
    assert str(caught.value) == (
        f"'{tmp_path}' holds NDJSON files (one patient per line), not patient files; evaluate "
        "each with: ivig-cds batch FILE --out results.ndjson"
    )


def test_ndjson_beside_patient_files_is_left_alone(tmp_path: Path) -> None:
    """examples/ keeps patients.ndjson beside its YAML files: the folder is still evaluated."""
    (tmp_path / "patients.ndjson").write_text(CONTEXT_LINE)
    (tmp_path / "p.yaml").write_text("{}")
    assert [Path(s.name).name for s in discover([str(tmp_path)])] == ["p.yaml"]


@pytest.mark.parametrize(
    ("lines", "hint"),
    [
        (
            CONTEXT_LINE * 2,
            "the file holds one patient per line (NDJSON): evaluate it with ivig-cds batch "
            "{shown} --out results.ndjson",
        ),
        (
            FHIR_LINE * 2,
            "the file holds FHIR resources, one per line, as a Bulk Data export does: "
            "ivig-cds population audits an export's folder",
        ),
    ],
)
def test_ndjson_content_under_another_name_gets_the_same_pointer(
    tmp_path: Path, lines: str, hint: str
) -> None:
    """NDJSON in a .json file or on standard input: the JSON error, then what to use."""
    path = tmp_path / "p.json"
    error = failure(path, lines)
    assert error.problems == (
        Problem("invalid JSON: Extra data", 2, 1),
        Problem(hint.format(shown=path)),
    )
    with pytest.raises(PatientFileError) as caught:
        read_patient(PatientSource(STDIN_NAME, None), lines.encode)
    assert caught.value.problems[1] == Problem(hint.format(shown="-"))
