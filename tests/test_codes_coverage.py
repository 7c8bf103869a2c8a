"""`ivig-cds codes coverage`: which codes of a site's data the tables map, and which relevant
ones they do not (never mapped by their words), as text, CSV, JSON and a starter ConceptMap."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from ivig_cds.cli import app
from ivig_cds.codes import (
    Category,
    Coverage,
    Match,
    code_coverage,
    concept_map,
)
from ivig_cds.codes._formats import CSV_COLUMNS
from ivig_cds.codes._words import relevant
from ivig_cds.fhir import CONCEPT_SYSTEM, load_code_tables
from tests.bulk_export import generate
from tests.fhir_records import ICD10GM, SCT

HOSPITAL_DX = "http://hospital.example/fhir/CodeSystem/diagnoses"
FORMULARY = "http://hospital.example/fhir/CodeSystem/formulary"
RRMS = (SCT, "426373005", "Relapsing remitting multiple sclerosis")
LOCAL_MS = (HOSPITAL_DX, "MS-R", "Multiple sclerosis, relapsing")
PRIVIGEN = (FORMULARY, "PRIV10", "Privigen 10% IV")


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def _entry(kind: str, rid: str, patient: str | None = None, **fields: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": kind, "id": rid, **fields}
    if patient is not None:
        resource["subject"] = {"reference": f"Patient/{patient}"}
    return {"fullUrl": f"urn:uuid:{rid}", "resource": resource}


def site_bundle() -> dict[str, Any]:
    """Two patients: a local MS code each, a shipped RRMS code for one, Privigen ordered for
    both (once by code, once through a Medication), and codes that are not relevant."""
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            _entry("Patient", "p1"),
            _entry("Patient", "p2"),
            _entry("Condition", "c1", "p1", code=_concept(*LOCAL_MS)),
            _entry("Condition", "c2", "p2", code=_concept(*LOCAL_MS)),
            _entry("Condition", "c3", "p1", code=_concept(*RRMS)),
            _entry("Condition", "c4", "p2", code=_concept(HOSPITAL_DX, "HTN", "Hypertension")),
            _entry("Medication", "med1", code=_concept(*PRIVIGEN)),
            _entry("MedicationRequest", "m1", "p1", medicationCodeableConcept=_concept(*PRIVIGEN)),
            _entry(
                "MedicationRequest",
                "m2",
                "p2",
                medicationReference={"reference": "Medication/med1"},
            ),
            _entry(  # a laboratory test, not a product: drug names count for medications only
                "Observation", "o1", "p1", code=_concept(HOSPITAL_DX, "IGG", "Immunoglobulin G")
            ),
        ],
    }


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    path = tmp_path / "site.json"
    path.write_text(json.dumps(site_bundle()), encoding="utf-8")
    return path


def run(*args: object) -> Result:
    return CliRunner().invoke(app, ["codes", "coverage", *map(str, args)])


def _by_code(coverage: Coverage) -> dict[str, Any]:
    return {use.code: use for use in (*coverage.unmapped, *coverage.mapped)}


def test_local_codes_are_listed_unmapped_with_the_word_that_matched(bundle: Path) -> None:
    """The local MS diagnosis and the local IVIG product are unmapped, each with its word,
    its patients and its resources (the Medication and both orders for Privigen)."""
    coverage = code_coverage([bundle])
    assert [(u.kind, u.system, u.code) for u in coverage.unmapped] == [
        ("condition", HOSPITAL_DX, "MS-R"),
        ("medication", FORMULARY, "PRIV10"),
    ]
    ms, ivig = coverage.unmapped
    assert (ms.patients, ms.resources, ms.display) == (2, 2, "Multiple sclerosis, relapsing")
    assert ms.matched == Match("Multiple sclerosis", Category.MS_FAMILY)
    assert (ivig.patients, ivig.resources) == (2, 3)
    assert ivig.matched == Match("Privigen", Category.IVIG)
    assert ms.mappings == ivig.mappings == ()


def test_shipped_code_is_listed_mapped_with_its_table(bundle: Path) -> None:
    """SNOMED CT RRMS is mapped: group, value, table file and verified source reported."""
    coverage = code_coverage([bundle])
    [rrms] = coverage.mapped
    assert (rrms.system, rrms.code, rrms.patients, rrms.resources) == (SCT, "426373005", 1, 1)
    [mapping] = rrms.mappings
    assert (mapping.group, mapping.value, mapping.table) == (
        "ms_diagnosis",
        "RRMS",
        "conditions.yaml",
    )
    assert "426373005" in mapping.verified


def test_irrelevant_codes_are_counted_not_listed(bundle: Path) -> None:
    """Hypertension and an immunoglobulin laboratory test are neither listed nor mapped; the
    totals count every resource read and every patient referred to."""
    coverage = code_coverage([bundle])
    assert coverage.other_unmapped == 2
    assert {"HTN", "IGG"}.isdisjoint(_by_code(coverage))
    assert (coverage.resources, coverage.patients, coverage.problems) == (8, 2, ())


def test_a_product_coded_also_by_a_mapped_ingredient_says_so(tmp_path: Path) -> None:
    """A contained Medication with a local code and a shipped ingredient code: the local code
    stays unmapped (words never map), and the report says its resource maps anyway."""
    medication = {
        "resourceType": "Medication",
        "id": "local",
        "code": _concept(FORMULARY, "GLAT20", "Copaxone 20 mg/ml"),
        "ingredient": [{"itemCodeableConcept": _concept(SCT, "108755008", "Glatiramer acetate")}],
    }
    statement = {
        "resourceType": "MedicationStatement",
        "id": "s1",
        "status": "active",
        "contained": [medication],
        "medicationReference": {"reference": "#local"},
        "subject": {"reference": "Patient/p1"},
    }
    path = tmp_path / "statement.json"
    path.write_text(json.dumps(statement), encoding="utf-8")
    coverage = code_coverage([path])
    [local] = coverage.unmapped
    assert (local.code, local.mapped_by_other_code, local.matched) == (
        "GLAT20",
        1,
        Match("Copaxone", Category.FIRST_LINE),
    )
    assert [m.code for m in coverage.mapped] == ["108755008"]


def test_an_icd10_g35_code_is_ms_family_by_its_code(tmp_path: Path) -> None:
    """An unmapped ICD-10-GM G35.9 without a display (tables given: here, none for
    diagnoses) is listed as MS family, like the adapter reports it."""
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "code": {"coding": [{"system": ICD10GM, "code": "G35.9"}]},
        "subject": {"reference": "Patient/p1"},
    }
    path = tmp_path / "condition.json"
    path.write_text(json.dumps(condition), encoding="utf-8")
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "empty.yaml").write_text(
        "groups:\n  ms_diagnosis:\n    description: None yet.\n", encoding="utf-8"
    )
    [use] = code_coverage([path], load_code_tables(tmp_path / "tables")).unmapped
    assert (use.code, use.display, use.matched) == (
        "G35.9",
        None,
        Match("ICD-10 G35", Category.MS_FAMILY),
    )


@pytest.mark.parametrize(
    ("kind", "text", "word"),
    [
        ("condition", "Demyelinating disease of CNS", "Demyelinating"),
        ("condition", "CIS - first demyelinating event", "CIS"),
        ("condition", "cis-platin toxicity", None),
        ("condition", "SPMS (active)", "SPMS"),
        ("condition", "Relapsing-remitting course", "Relapsing-remitting"),
        ("medication", "Solu-Medrol 1 g IV", "Solu-Medrol"),
        ("medication", "OCREVUS 300 mg", "OCREVUS"),
        ("medication", "Peginterferon beta-1a", "Peginterferon beta"),
        ("allergy", "Immune globulin intolerance", "Immune globulin"),
        ("observation", "Immunoglobulin G", None),
        ("medication", "Rituximabulous", None),
    ],
)
def test_relevant_words_match_whole_words(kind: str, text: str, word: str | None) -> None:
    """Words match case-insensitively on word boundaries, CIS only in capitals, drug names
    only for medications and allergies."""
    found = relevant(kind, text)
    assert (found.word if found else None) == word


def test_text_lists_unmapped_first_then_mapped_with_tables(bundle: Path) -> None:
    """The text report: unmapped relevant codes by kind with counts and word, then mapped
    codes with group/value and table; exit 0."""
    result = run(bundle)
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert text.index("Relevant codes the tables do not map (2):") < text.index("Mapped codes (1):")
    assert f'{HOSPITAL_DX}|MS-R  "Multiple sclerosis, relapsing"' in text
    assert "2 patients, 2 resources; matched 'Multiple sclerosis' (MS family)" in text
    assert "2 patients, 3 resources; matched 'Privigen' (IVIG)" in text
    assert "1 patient, 1 resource -> ms_diagnosis/RRMS (conditions.yaml)" in text
    assert "Other unmapped codes: 2" in text


def test_csv_has_one_row_per_unmapped_code_and_per_mapping(bundle: Path) -> None:
    """CSV: the documented columns, unmapped rows with their word, mapped rows with table."""
    result = run(bundle, "--format", "csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["status"], r["code"], r["matched_word"], r["value"]) for r in rows] == [
        ("unmapped", "MS-R", "Multiple sclerosis", ""),
        ("unmapped", "PRIV10", "Privigen", ""),
        ("mapped", "426373005", "", "RRMS"),
    ]
    assert (rows[1]["patients"], rows[1]["resources"]) == ("2", "3")
    assert rows[2]["table"] == "conditions.yaml" and rows[2]["verified"]


def test_json_is_one_document_with_both_lists(bundle: Path, tmp_path: Path) -> None:
    """JSON (--out): counts, unmapped with `matched`, mapped with `mappings`; a summary line
    on standard error."""
    out = tmp_path / "coverage.json"
    result = run(bundle, "-f", "json", "--out", out)
    assert result.exit_code == 0, result.stderr
    document = json.loads(out.read_text(encoding="utf-8"))
    assert set(document) == {
        "inputs", "resources", "patients", "unmapped", "mapped", "other_unmapped", "problems"
    }  # fmt: skip
    assert document["unmapped"][0] == {
        "kind": "condition",
        "system": HOSPITAL_DX,
        "code": "MS-R",
        "display": "Multiple sclerosis, relapsing",
        "patients": 2,
        "resources": 2,
        "mapped_by_other_code": 0,
        "matched": {"word": "Multiple sclerosis", "category": "MS family"},
    }
    [mapping] = document["mapped"][0]["mappings"]
    assert set(mapping) == {"group", "value", "table", "verified"}
    assert "2 relevant unmapped codes, 1 mapped code; wrote" in result.stderr


def test_starter_concept_map_has_a_group_per_system_and_empty_targets(
    bundle: Path, tmp_path: Path
) -> None:
    """--concept-map writes a draft FHIR R4 ConceptMap: one group per source system, each
    unmapped code an element with an empty target, and how to fill targets in."""
    path = tmp_path / "site-map.json"
    result = run(bundle, "--concept-map", path)
    assert result.exit_code == 0, result.stderr
    written = json.loads(path.read_text(encoding="utf-8"))
    assert written == concept_map(code_coverage([bundle]))
    assert (written["resourceType"], written["status"]) == ("ConceptMap", "draft")
    assert written["group"] == [
        {
            "source": HOSPITAL_DX,
            "target": CONCEPT_SYSTEM,
            "element": [{"code": "MS-R", "display": LOCAL_MS[2], "target": []}],
        },
        {
            "source": FORMULARY,
            "target": CONCEPT_SYSTEM,
            "element": [{"code": "PRIV10", "display": PRIVIGEN[2], "target": []}],
        },
    ]
    assert "urn:ivig-cds:concept" in written["description"]
    assert "ms_diagnosis/RRMS" in written["description"]


def test_a_bulk_export_folder_is_counted_per_patient(tmp_path: Path) -> None:
    """A Bulk Data export: every resource of a read type counted, and SNOMED CT RRMS mapped
    with the patients and resources that carry it in the NDJSON files."""
    folder = tmp_path / "export"
    generate(folder, 12, malformed_every=0)
    lines = [
        json.loads(line)
        for path in folder.glob("*.ndjson")
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    carriers = [r for r in lines if "426373005" in json.dumps(r.get("code"))]
    result = run(folder, "-f", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    [rrms] = [u for u in document["mapped"] if u["code"] == "426373005"]
    assert rrms["resources"] == len(carriers)
    assert rrms["patients"] == len({r["subject"]["reference"] for r in carriers})
    read = {"Condition", "Observation", "Medication", "MedicationRequest", "MedicationStatement",
            "MedicationAdministration", "AllergyIntolerance", "Procedure"}  # fmt: skip
    assert document["resources"] == sum(r["resourceType"] in read for r in lines)
    assert document["problems"] == []


def test_bad_export_lines_give_one_line_per_file_and_exit_1(tmp_path: Path) -> None:
    """Malformed NDJSON lines: one line per file naming the first bad line, exit 1, the
    report still written, no traceback."""
    folder = tmp_path / "export"
    generate(folder, 12, malformed_every=3)
    result = run(folder, "-f", "csv")
    assert result.exit_code == 1
    assert result.stdout.startswith("status,kind,")
    errors = result.stderr.splitlines()
    assert errors and all(line.startswith(f"error: {folder}/") for line in errors)
    assert len(errors) == len({line.split(":")[1] for line in errors})  # one per file
    assert all(" not read (first, line " in line for line in errors)
    assert "Traceback" not in result.stderr


def test_an_unreadable_file_gives_one_line_and_exit_1(bundle: Path, tmp_path: Path) -> None:
    """A file that is not JSON: one line naming it, exit 1; the other input is reported."""
    broken = tmp_path / "broken.json"
    broken.write_text('{"resourceType": "Bundle", "entry": [', encoding="utf-8")
    out = tmp_path / "report.txt"
    result = run(broken, bundle, "--out", out)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"error: {broken}: invalid JSON at line 1 column 38; not read"
    )
    assert result.stderr.count("error:") == 1
    report = out.read_text(encoding="utf-8")
    assert "Relevant codes the tables do not map (2):" in report
    assert f"Not read (1):\n  {broken}: invalid JSON" in report


def test_usage_errors_exit_2(bundle: Path, tmp_path: Path) -> None:
    """A path that does not exist, an unknown format or an --out in no folder: exit 2."""
    assert run(tmp_path / "missing.json").exit_code == 2
    assert run(bundle, "--format", "xml").exit_code == 2
    assert run(bundle, "--out", tmp_path / "no" / "such" / "report.txt").exit_code == 2


def test_runs_as_a_real_process(bundle: Path) -> None:
    """`python -m ivig_cds codes coverage` prints the report and exits 0."""
    done = subprocess.run(
        [sys.executable, "-m", "ivig_cds", "codes", "coverage", str(bundle)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Relevant codes the tables do not map (2):" in done.stdout


def test_a_filled_in_starter_map_given_back_maps_the_codes(bundle: Path, tmp_path: Path) -> None:
    """The starter ConceptMap, its targets filled in and given with --codes, maps both local
    codes: they are listed as mapped, with the map file as their table."""
    starter = tmp_path / "starter.json"
    assert run(bundle, "--concept-map", starter).exit_code == 0
    filled = json.loads(starter.read_text(encoding="utf-8"))
    concepts = {"MS-R": "ms_diagnosis/RRMS", "PRIV10": "medication/ivig"}
    for group in filled["group"]:
        for element in group["element"]:
            element["target"] = [{"code": concepts[element["code"]], "equivalence": "equivalent"}]
    site_map = tmp_path / "site-map.json"
    site_map.write_text(json.dumps(filled), encoding="utf-8")
    result = run(bundle, "--codes", site_map, "-f", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["unmapped"] == []
    tables = {
        (use["code"], m["group"], m["value"], m["table"])
        for use in document["mapped"]
        for m in use["mappings"]
    }
    assert tables == {
        ("MS-R", "ms_diagnosis", "RRMS", str(site_map)),
        ("PRIV10", "medication", "ivig", str(site_map)),
        ("426373005", "ms_diagnosis", "RRMS", "conditions.yaml"),
    }
    assert document["site_codes"]["files"] == [str(site_map)]


def test_the_starter_map_as_written_is_refused_by_codes(bundle: Path, tmp_path: Path) -> None:
    """Empty targets map nothing: the unfilled starter map given with --codes is refused
    (exit 1, naming the element), so a code is never mapped without a decision."""
    starter = tmp_path / "starter.json"
    assert run(bundle, "--concept-map", starter).exit_code == 0
    result = run(bundle, "--codes", starter)
    assert result.exit_code == 1
    assert "the element has no target" in result.stderr
    assert result.stdout == ""


def test_public_names_are_pinned() -> None:
    """`ivig_cds.codes.__all__` is this sorted list, and every name in it loads."""
    import ivig_cds.codes  # noqa: PLC0415  # the module object itself, for its __all__

    assert ivig_cds.codes.__all__ == [
        "Category", "CodeUse", "Coverage", "Match", "TableMapping",
        "code_coverage", "commands", "concept_map", "render_csv", "render_json", "render_text",
    ]  # fmt: skip
    for name in ivig_cds.codes.__all__:
        assert getattr(ivig_cds.codes, name) is not None, name


def test_unreadable_inputs_are_named_on_stderr_also_with_text_on_stdout(
    bundle: Path, tmp_path: Path
) -> None:
    """With the text report on standard output, the unreadable file is still one line on
    standard error, and the report's "Not read" section names it."""
    broken = tmp_path / "broken.json"
    broken.write_bytes(b"\xff\xfe not text")
    result = run(bundle, broken)
    assert result.exit_code == 1
    assert result.stderr == f"error: {broken}: not UTF-8 text; not read\n"
    assert f"Not read (1):\n  {broken}: not UTF-8 text; not read\n" in result.stdout
