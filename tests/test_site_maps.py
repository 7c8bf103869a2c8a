"""Site code maps (fhir/_site_maps.py, `--codes FILE`): a hospital's own codes read as the
concepts of the code tables, in the library, the CLI, the service and the population audit;
a bad map is refused at start with every problem at its file and line."""

from __future__ import annotations

import copy
import datetime as dt
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from ivig_cds import Evaluator, MSPhenotype
from ivig_cds._yaml import node_positions
from ivig_cds.cli import app
from ivig_cds.fhir import (
    CONCEPT_SYSTEM,
    SiteMapError,
    default_code_tables,
    evaluate_fhir,
    load_site_maps,
    patient_from_fhir,
    site_code_tables,
)
from ivig_cds.fhir._site_formats import json_positions
from ivig_cds.population import PatientAuditor
from ivig_cds.service import create_app
from ivig_cds.service.cards import EXTENSION_KEY
from ivig_cds.service.server import ServeOptions, build_app
from tests.fhir_records import SCT, bundle, condition, patient
from tests.service_support import PV, TODAY, cards_of, request_file, serving

DIAGNOSIS = "http://hospital.example/codes/diagnosis"
FORMULARY = "http://hospital.example/codes/formulary"
CONCEPT_MAP: dict[str, Any] = {
    "resourceType": "ConceptMap",
    "status": "active",
    "group": [
        {
            "source": DIAGNOSIS,
            "target": CONCEPT_SYSTEM,
            "element": [
                {
                    "code": "MS-RR",
                    "display": "MS, relapsing-remitting",
                    "target": [{"code": "ms_diagnosis/RRMS", "equivalence": "equivalent"}],
                },
                {
                    "code": "MS-SP",
                    "target": [{"code": "ms_diagnosis/SPMS", "equivalence": "equivalent"}],
                },
            ],
        },
        {
            "source": FORMULARY,
            "target": CONCEPT_SYSTEM,
            "element": [
                {
                    "code": "IVIG-10",
                    "display": "Immune globulin 10% IV",
                    "target": [{"code": "medication/ivig", "equivalence": "wider"}],
                }
            ],
        },
    ],
}
LOCAL_RRMS = (DIAGNOSIS, "MS-RR", "MS, relapsing-remitting")
LOCAL_IVIG = {"coding": [{"system": FORMULARY, "code": "IVIG-10", "display": "IVIG 10%"}]}


def write(folder: Path, name: str, document: object) -> Path:
    path = folder / name
    text = document if isinstance(document, str) else json.dumps(document, indent=2)
    path.write_text(text, encoding="utf-8")
    return path


def ivig_given(when: str, pid: str = "p") -> dict[str, Any]:
    return {
        "resourceType": "MedicationAdministration",
        "id": "ivig-1",
        "status": "completed",
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        "medicationCodeableConcept": LOCAL_IVIG,
    }


def local_record() -> dict[str, Any]:
    """RRMS and an IVIG dose three weeks before TODAY, both coded only in local systems."""
    when = (TODAY - dt.timedelta(weeks=3)).isoformat()
    return bundle(condition("c1", *LOCAL_RRMS), ivig_given(when))


@pytest.fixture
def concept_map(tmp_path: Path) -> Path:
    return write(tmp_path, "site-map.json", CONCEPT_MAP)


def test_the_local_record_is_unmapped_without_the_map_and_read_with_it(
    concept_map: Path,
) -> None:
    """Library: without the map the local codes are not MS and not IVIG; with it, RRMS and
    IVIG in use, each code's reading noted with the map's file and line."""
    plain = patient_from_fhir(local_record(), as_of=TODAY)
    assert (plain.ms_on_record, plain.patient.ms_phenotype) == (False, MSPhenotype.NOT_MS)
    assert plain.patient.ivig_in_use is None
    codes = default_code_tables().with_site_maps(load_site_maps([concept_map]))
    mapped = patient_from_fhir(local_record(), as_of=TODAY, codes=codes)
    assert (mapped.ms_on_record, mapped.patient.ms_phenotype) == (True, MSPhenotype.RRMS)
    assert mapped.patient.ivig_in_use is True
    assert mapped.sources["ms_phenotype"] == ("Condition/c1",)
    assert [n for n in mapped.notes if "site map" in n] == [
        f"{DIAGNOSIS}|MS-RR read as ms diagnosis: RRMS (site map {concept_map}:10)",
        f"{FORMULARY}|IVIG-10 read as medication: ivig (site map {concept_map}:35)",
    ]


def test_evaluate_fhir_takes_the_tables(concept_map: Path, evaluator: Evaluator) -> None:
    """`evaluate_fhir(..., codes=...)` judges the local record as MS (not outside the
    knowledge base), which it is not without them."""
    codes = site_code_tables((str(concept_map),))
    rec = evaluate_fhir(local_record(), evaluator=evaluator, as_of=TODAY, codes=codes)
    assert rec.tier.value != "not_applicable"
    assert "ms_phenotype" not in rec.missing_data
    plain = evaluate_fhir(local_record(), evaluator=evaluator, as_of=TODAY)
    assert plain.tier.value == "not_applicable"


def test_provenance_names_the_site_file_or_the_shipped_table(concept_map: Path) -> None:
    """Every entry says where it comes from: the site map's file and line, or the shipped
    table with the source it was verified against."""
    codes = site_code_tables((str(concept_map),))
    local = codes.lookup("medication", FORMULARY, "IVIG-10")
    shipped = codes.lookup("ms_diagnosis", SCT, "24700007")
    assert local is not None and shipped is not None
    assert codes.provenance("medication", local) == f"site map {concept_map}:35"
    assert codes.provenance("ms_diagnosis", shipped).startswith(
        "shipped table conditions.yaml, verified against: "
    )


def test_the_hash_follows_the_content_not_the_layout(tmp_path: Path, concept_map: Path) -> None:
    """The same map written on one line hashes the same; another concept hashes otherwise."""
    one_line = write(tmp_path, "compact.json", json.dumps(CONCEPT_MAP))
    first, second = load_site_maps([concept_map]), load_site_maps([one_line])
    assert first.hash == second.hash and first.hash.startswith("sha256:")
    changed = copy.deepcopy(CONCEPT_MAP)
    changed["group"][0]["element"][0]["target"][0]["code"] = "ms_diagnosis/SPMS"
    changed["group"][0]["element"].pop(1)
    assert load_site_maps([write(tmp_path, "spms.json", changed)]).hash != first.hash
    assert first.describe() == {"files": [str(concept_map)], "codes": 3, "hash": first.hash}


def test_a_value_set_per_concept_and_a_yaml_table_read_the_same(tmp_path: Path) -> None:
    """A ValueSet named by its concept identifier, and the tables' own YAML, map the codes."""
    value_set = {
        "resourceType": "ValueSet",
        "status": "active",
        "identifier": [{"system": CONCEPT_SYSTEM, "value": "ms_diagnosis/RRMS"}],
        "compose": {"include": [{"system": DIAGNOSIS, "concept": [{"code": "MS-RR"}]}]},
    }
    table = (
        "groups:\n"
        "  medication:\n"
        "    description: Local formulary\n"
        "    codes:\n"
        f"      - system: {FORMULARY}\n"
        "        code: IVIG-10\n"
        "        display: Immune globulin 10% IV\n"
        "        value: ivig\n"
        "        verified: Pharmacy formulary 2026-12\n"
    )
    maps = load_site_maps(
        [write(tmp_path, "rrms.json", value_set), write(tmp_path, "formulary.yaml", table)]
    )
    mapped = patient_from_fhir(
        local_record(), as_of=TODAY, codes=default_code_tables().with_site_maps(maps)
    )
    assert (mapped.patient.ms_phenotype, mapped.patient.ivig_in_use) == (MSPhenotype.RRMS, True)
    assert {(e.group, e.value, e.line) for e in maps.entries} == {
        ("ms_diagnosis", "RRMS", 16),
        ("medication", "ivig", 6),
    }


def test_every_problem_is_reported_at_once_with_file_and_line(tmp_path: Path) -> None:
    """Unknown concept (with a suggestion), a code given two concepts, a shipped code given
    another concept, a wrong resourceType and malformed JSON: one error, every problem."""

    def element(code: str, concept: str) -> dict[str, Any]:
        return {"code": code, "target": [{"code": concept, "equivalence": "equal"}]}

    bad = {
        "resourceType": "ConceptMap",
        "group": [
            {
                "source": DIAGNOSIS,
                "target": CONCEPT_SYSTEM,
                "element": [
                    element("X1", "ms_diagnosis/RRMs"),
                    element("X2", "ms_diagnosis/SPMS"),
                    element("X2", "ms_diagnosis/PPMS"),
                ],
            },
            {
                "source": SCT,
                "target": CONCEPT_SYSTEM,
                "element": [element("24700007", "ms_diagnosis/RRMS")],
            },
        ],
    }
    paths = [
        write(tmp_path, "bad.json", bad),
        write(tmp_path, "patient.json", {"resourceType": "Patient", "id": "p"}),
        write(tmp_path, "broken.json", '{\n  "resourceType": "ConceptMap",\n  "group": [}\n'),
    ]
    with pytest.raises(SiteMapError) as caught:
        load_site_maps(paths)
    bad_file, other, broken = (str(p) for p in paths)
    assert [str(i) for i in caught.value.issues] == [
        f"{bad_file}:12:15: unknown concept 'ms_diagnosis/RRMs'; did you mean ms_diagnosis/RRMS?",
        f"{bad_file}:27:11: {DIAGNOSIS}|X2 is mapped to two concepts: ms_diagnosis/PPMS here "
        f"and ms_diagnosis/SPMS at {bad_file}:18; keep one",
        f"{bad_file}:42:11: {SCT}|24700007 is ms_diagnosis/unspecified in the shipped table "
        "conditions.yaml; a site map may not make it ms_diagnosis/RRMS",
        f"{other}:1:1: a Patient: expected a FHIR ConceptMap, a ValueSet per concept, a Bundle "
        "of them, or a YAML code table (groups:)",
        f"{broken}:3:13: invalid JSON: Expecting value",
    ]
    assert str(caught.value).startswith("site code maps are invalid (5 problems):\n")


def test_a_map_that_needs_more_than_codes_is_refused(tmp_path: Path) -> None:
    """Another target system, a narrower equivalence, a ValueSet by filter or without its
    concept identifier: each is named, since reading them would guess."""
    other_target = copy.deepcopy(CONCEPT_MAP)
    other_target["group"][0]["target"] = SCT
    other_target["group"][1]["element"][0]["target"][0]["equivalence"] = "narrower"
    by_filter = {
        "resourceType": "ValueSet",
        "compose": {"include": [{"system": SCT, "filter": [{"property": "concept"}]}]},
    }
    paths = [write(tmp_path, "a.json", other_target), write(tmp_path, "b.json", by_filter)]
    with pytest.raises(SiteMapError) as caught:
        load_site_maps(paths)
    messages = [i.message for i in caught.value.issues]
    assert messages == [
        f"group.target must be {CONCEPT_SYSTEM} (the concepts of ivig-cds)",
        "equivalence must be equivalent, equal, wider or subsumes (the concept covers the "
        "code); leave other codes out",
        f"a ValueSet names its concept with one identifier of system {CONCEPT_SYSTEM} and "
        "value <group>/<value> (e.g. ms_diagnosis/RRMS)",
        "the ValueSet lists no codes (compose.include[].concept[])",
        "only codes listed in concept[] are read; expand the filter or value set into codes",
    ]


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_reads_the_local_codes_only_with_the_map(tmp_path: Path, concept_map: Path) -> None:
    """`evaluate --fhir`: not MS without --codes; with it the record's RRMS is read and the
    record names the map and its hash."""
    record = write(tmp_path, "record.json", local_record())
    plain = json.loads(run("evaluate", "--fhir", "-f", "json", record).stdout)
    assert plain["recommendation"]["tier"] == "not_applicable"
    assert "site_codes" not in plain["record"]
    result = run("evaluate", "--fhir", "-f", "json", "--codes", concept_map, record)
    assert (result.exit_code, result.stderr) == (0, "")
    document = json.loads(result.stdout)
    assert document["recommendation"]["tier"] != "not_applicable"
    assert document["record"]["site_codes"] == load_site_maps([concept_map]).describe()
    text = run("evaluate", "--fhir", "-f", "text", "--codes", concept_map, record).stdout
    assert f"Site code maps in force: {concept_map} (sha256:" in text


def test_cli_refuses_a_bad_map_with_exit_1_and_no_traceback(tmp_path: Path) -> None:
    """A contradictory map: exit 1, each problem at file:line, no traceback, nothing run."""
    bad = copy.deepcopy(CONCEPT_MAP)
    bad["group"][0]["element"][1]["code"] = "MS-RR"
    path = write(tmp_path, "bad.json", bad)
    record = write(tmp_path, "record.json", local_record())
    result = run("evaluate", "--fhir", "--codes", path, record)
    assert result.exit_code == 1
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "error: the site code maps are invalid (1 problem); fix these and try again:",
        f"  {path}:20:11: {DIAGNOSIS}|MS-RR is mapped to two concepts: ms_diagnosis/SPMS here "
        f"and ms_diagnosis/RRMS at {path}:10; keep one",
    ]


def test_codes_without_fhir_is_a_usage_error(concept_map: Path, tmp_path: Path) -> None:
    """--codes on patient files: exit 2, saying to add --fhir."""
    result = run("evaluate", "--codes", concept_map, write(tmp_path, "p.json", {"age_years": 3}))
    assert result.exit_code == 2
    assert "applies only to FHIR records: add --fhir" in result.stderr


def test_version_names_the_site_maps_and_their_hash(concept_map: Path) -> None:
    """`ivig-cds --version --codes FILE` (a real process) prints the maps' hash beside the
    knowledge base's; --codes before a command is refused."""
    out = subprocess.run(
        [sys.executable, "-m", "ivig_cds", "--version", "--codes", str(concept_map)],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = out.stdout.splitlines()
    assert lines[1].startswith("knowledge base ")
    assert lines[2] == f"site code maps {concept_map} ({load_site_maps([concept_map]).hash})"
    assert run("--codes", concept_map, "rules", "list").exit_code == 2


def test_service_cards_read_the_local_codes_only_with_the_map(
    concept_map: Path, evaluator: Evaluator
) -> None:
    """patient-view with a local RRMS code: no card without the map, a card with it; an order
    for the local IVIG product: no card without, a warning with; /health and each card name
    the maps' hash."""
    view = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"patientId": "p"},
        "prefetch": {
            "patient": patient(),
            "conditions": {"resourceType": "Bundle", "type": "searchset",
                           "entry": [{"resource": condition("c1", *LOCAL_RRMS)}]},
        },
    }  # fmt: skip
    order = request_file("order-sign-spms-ivig")
    draft = order["context"]["draftOrders"]["entry"][0]["resource"]
    draft["medicationCodeableConcept"] = LOCAL_IVIG
    sign = "/cds-services/ivig-ms-order-sign"
    maps = load_site_maps([concept_map])
    plain = create_app(evaluator, today=lambda: TODAY)
    mapped = create_app(
        evaluator, today=lambda: TODAY, codes=default_code_tables().with_site_maps(maps)
    )
    with serving(plain) as base, httpx.Client(base_url=base, timeout=20) as http:
        assert cards_of(http.post(PV, json=view)) == []
        assert cards_of(http.post(sign, json=order)) == []
        assert "siteCodes" not in http.get("/health").json()
    with serving(mapped) as base, httpx.Client(base_url=base, timeout=20) as http:
        (card,) = cards_of(http.post(PV, json=view))
        assert card["extension"][EXTENSION_KEY]["siteCodes"] == maps.describe()
        (warning,) = cards_of(http.post(sign, json=order))
        assert warning["indicator"] == "warning"
        assert http.get("/health").json()["siteCodes"]["hash"] == maps.hash


def export_folder(root: Path) -> Path:
    folder = root / "export"
    folder.mkdir()
    lines = {
        "Patient": [patient("p1")],
        "Condition": [{**condition("c1", *LOCAL_RRMS), "subject": {"reference": "Patient/p1"}}],
        "MedicationAdministration": [ivig_given("2026-05-01", "p1")],
    }
    for kind, resources in lines.items():
        text = "".join(json.dumps(r) + "\n" for r in resources)
        (folder / f"{kind}.ndjson").write_text(text, encoding="utf-8")
    return folder


def test_population_audit_reads_the_local_codes_only_with_the_map(
    tmp_path: Path, concept_map: Path
) -> None:
    """`population --codes`: the local RRMS patient and IVIG dose are audited (none without
    the map), and summary.json names the maps and their hash."""
    export = export_folder(tmp_path)
    base = ["population", export, "--keep-ids", "--as-of", "2026-06-30", "--workers", "1"]
    plain = run(*base, "--out", tmp_path / "plain")
    assert plain.exit_code == 0, plain.stderr
    assert (tmp_path / "plain" / "results.ndjson").read_text() == ""
    result = run(*base, "--out", tmp_path / "mapped", "--codes", concept_map)
    assert result.exit_code == 0, result.stderr
    (line,) = (tmp_path / "mapped" / "results.ndjson").read_text().splitlines()
    audited = json.loads(line)
    assert (audited["patient"], audited["phenotype"]) == ("p1", "RRMS")
    assert [d["resource"] for d in audited["ivig"]] == ["MedicationAdministration/ivig-1"]
    summary = json.loads((tmp_path / "mapped" / "summary.json").read_text())
    assert summary["site_codes"] == load_site_maps([concept_map]).describe()


def test_population_refuses_a_bad_map_with_exit_1(tmp_path: Path) -> None:
    """A map naming an unknown concept: exit 1 with its file and line, nothing written."""
    bad = copy.deepcopy(CONCEPT_MAP)
    bad["group"][1]["element"][0]["target"][0]["code"] = "medication/ivg"
    path = write(tmp_path, "bad.json", bad)
    result = run(
        "population", export_folder(tmp_path), "--keep-ids", "--out", tmp_path / "out",
        "--codes", path,
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr == (
        "error: site code maps are invalid (1 problem):\n"
        f"{path}:39:15: unknown concept 'medication/ivg'; did you mean medication/ivig?\n"
    )
    assert not (tmp_path / "out").exists()


def test_the_auditor_carries_paths_and_pickles(concept_map: Path) -> None:
    """PatientAuditor holds the maps' paths (for Spark executors), not the tables."""
    auditor = PatientAuditor(dt.date(2026, 6, 30), code_maps=(str(concept_map),))
    assert pickle.loads(pickle.dumps(auditor)) == auditor


def test_serve_refuses_a_bad_map_before_starting(tmp_path: Path) -> None:
    """`serve --codes` with an unreadable map: exit 1 naming the file, nothing listens."""
    missing = tmp_path / "missing.json"
    result = run("serve", "--store", "none", "--port", "1", "--codes", missing)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: the site code maps are invalid (1 problem); fix these and try again:",
        f"  {missing}: cannot read the file: No such file or directory",
    ]


def test_serve_options_carry_the_maps_to_each_worker(concept_map: Path) -> None:
    """`build_app` (what each worker runs) reads the maps named in ServeOptions: /health
    names them."""
    built = build_app(ServeOptions(store="none", code_maps=[str(concept_map)]))
    with serving(built) as base, httpx.Client(base_url=base, timeout=20) as http:
        health = http.get("/health").json()
    assert health["siteCodes"] == load_site_maps([concept_map]).describe()


def test_a_bundle_of_value_sets_reads_their_expansions(tmp_path: Path) -> None:
    """A Bundle of ValueSets, one listing its codes as an expansion, maps like a ConceptMap."""
    rrms = {
        "resourceType": "ValueSet",
        "identifier": [{"system": CONCEPT_SYSTEM, "value": "ms_diagnosis/RRMS"}],
        "expansion": {"contains": [{"system": DIAGNOSIS, "code": "MS-RR"}]},
    }
    ivig = {
        "resourceType": "ValueSet",
        "identifier": [{"system": CONCEPT_SYSTEM, "value": "medication/ivig"}],
        "compose": {"include": [{"system": FORMULARY, "concept": [{"code": "IVIG-10"}]}]},
    }
    document = {"resourceType": "Bundle", "type": "collection",
                "entry": [{"resource": rrms}, {"resource": ivig}]}  # fmt: skip
    maps = load_site_maps([write(tmp_path, "value-sets.json", document)])
    codes = default_code_tables().with_site_maps(maps)
    mapped = patient_from_fhir(local_record(), as_of=TODAY, codes=codes)
    assert (mapped.patient.ms_phenotype, mapped.patient.ivig_in_use) == (MSPhenotype.RRMS, True)


def test_a_yaml_table_is_checked_like_the_shipped_ones(tmp_path: Path) -> None:
    """A YAML map with an unknown group and an entry missing its `verified`: both, at their
    lines."""
    table = (
        "groups:\n"
        "  medications:\n"
        "    codes: []\n"
        "  medication:\n"
        "    codes:\n"
        f"      - system: {FORMULARY}\n"
        "        code: IVIG-10\n"
        "        display: Immune globulin 10% IV\n"
        "        value: ivig\n"
    )
    path = write(tmp_path, "formulary.yml", table)
    with pytest.raises(SiteMapError) as caught:
        load_site_maps([path])
    assert [str(i) for i in caught.value.issues] == [
        f"{path}:2:3: unknown group 'medications'; did you mean medication?",
        f"{path}:6:9: verified: Field required",
    ]


def test_json_positions_agree_with_the_yaml_reader() -> None:
    """The fast JSON locator gives every value the line and column PyYAML's nodes give it."""
    text = json.dumps(
        {'a"b': ["x\\", {"k": [[], {}, "q,]:}"]}], "n": None, "e": -1.5e3, **CONCEPT_MAP},
        indent=1,
    )
    assert json_positions(text) == node_positions(text)
