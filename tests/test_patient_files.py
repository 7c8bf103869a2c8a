"""Finding and reading patient files: directories, standard input, located errors."""

from __future__ import annotations

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
    assert error.summary == "is not a valid YAML or JSON file"
    assert error.problems == (Problem("duplicate key 'sex'", 2, 1),)
    assert str(error) == f"{tmp_path / 'p.yaml'}: is not a valid YAML or JSON file\n" \
        "  - line 2, column 1: duplicate key 'sex'"  # fmt: skip


def test_unreadable_file_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """A path that cannot be read (here a directory) gives "cannot be read"."""
    with pytest.raises(PatientFileError) as caught:
        read_patient(source(tmp_path), no_stdin)
    assert caught.value.summary == "cannot be read"
    assert caught.value.problems == (Problem("Is a directory"),)
