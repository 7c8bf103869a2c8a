"""`ivig-cds report`, `evaluate --format html` (report/cli.py) and the patient page (patient.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ivig_cds import Evaluator, KnowledgeBase, load_knowledge_base
from ivig_cds._patient_input import parse_patient
from ivig_cds.cli import app
from ivig_cds.report import patient_page
from tests.test_report_site import ENTRY_ID, SEED_FILE, visible

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
INTOLERANT = EXAMPLES / "c02a-rrms-interferon-intolerant.yaml"
SPMS = EXAMPLES / "c05-spms-progressing.yaml"


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def test_report_writes_the_site(kb: KnowledgeBase, tmp_path: Path) -> None:
    """The command writes index, matrix and one page per rule and work, and says where."""
    result = run("report", "--out", tmp_path / "site")
    assert result.exit_code == 0, result.output
    pages = 2 + len(kb.conclusions) + len(kb.cautions) + len(kb.evidence)
    assert result.output == (
        f"report written: {tmp_path / 'site' / 'index.html'} ({pages} pages; knowledge base "
        f"{kb.manifest.name} {kb.version}, {kb.content_hash})\n"
    )
    assert (tmp_path / "site" / "rules" / "C13c.html").is_file()


def test_report_of_an_edited_knowledge_base(tmp_path: Path) -> None:
    """--rules/--evidence: the edited copy's own title and flow are drawn."""
    rules, evidence = tmp_path / "rules", tmp_path / "evidence"
    shutil.copytree(REPO / "rules", rules)
    shutil.copytree(REPO / "evidence", evidence)
    c05 = next((rules / "conclusions").glob("C05-*.yaml"))
    c05.write_text(c05.read_text().replace("title: Secondary progressive MS", "title: SPMS edited"))
    result = run("report", "--out", tmp_path / "site", "--rules", rules, "--evidence", evidence)
    assert result.exit_code == 0, result.output
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "C05 · SPMS edited" in index  # drawn in the flow
    assert load_knowledge_base(rules, evidence).content_hash in index


def test_report_of_an_invalid_knowledge_base_names_the_problem(tmp_path: Path) -> None:
    """Exit 1 with path:line:column, and no site."""
    rules, evidence = tmp_path / "rules", tmp_path / "evidence"
    shutil.copytree(REPO / "rules", rules)
    shutil.copytree(REPO / "evidence", evidence)
    c06 = next((rules / "conclusions").glob("C06-*.yaml"))
    c06.write_text(c06.read_text().replace("tier: insufficient_evidence", "tier: maybe"))
    result = run("report", "--out", tmp_path / "site", "--rules", rules, "--evidence", evidence)
    assert result.exit_code == 1
    assert "the knowledge base is invalid (1 error)" in result.output
    assert f"{c06}:" in result.output
    assert not (tmp_path / "site").exists()


def test_report_into_a_file_is_a_usage_error(tmp_path: Path) -> None:
    """--out must be a folder."""
    target = tmp_path / "index.html"
    target.write_text("")
    result = run("report", "--out", target)
    assert result.exit_code == 2
    assert "is a file" in result.output


def test_evaluate_html_to_standard_output() -> None:
    """One patient: one self-contained page on standard output, with no script."""
    result = run("evaluate", "--format", "html", INTOLERANT)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("<!DOCTYPE html>")
    assert result.output.count("<html") == 1
    assert "<script" not in result.output and "<link" not in result.output
    assert 'class="node outcome tier-second_line on-path" data-rule="C02a"' in result.output


def test_evaluate_html_into_a_file(tmp_path: Path) -> None:
    """--out FILE writes the page there (its folder created) and says so in one line."""
    page = tmp_path / "notes" / "patient.html"
    result = run("evaluate", "--format", "html", SPMS, "--out", page)
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {page}\n"
    assert "Not recommended" in page.read_text(encoding="utf-8")


def test_evaluate_html_of_several_patients_needs_a_folder(tmp_path: Path) -> None:
    """Several files without --out is a usage error; with --out DIR, one page per file, and one
    line says how many pages went where."""
    result = run("evaluate", "--format", "html", INTOLERANT, SPMS)
    assert result.exit_code == 2
    assert (
        "Error: Invalid value for '--out': several patients make several pages: give --out DIR "
        "to write them into\n"
    ) in result.stderr
    result = run("evaluate", "--format", "html", INTOLERANT, SPMS, "--out", tmp_path / "pages")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote 2 pages to {tmp_path / 'pages'}/\n"
    assert sorted(p.name for p in (tmp_path / "pages").iterdir()) == [
        "c02a-rrms-interferon-intolerant.html",
        "c05-spms-progressing.html",
    ]


def test_several_patients_into_a_file_name_is_a_usage_error(tmp_path: Path) -> None:
    """`--out all.html` for a folder of patients made a folder named all.html; now it is refused
    before anything is evaluated, suggesting a folder, and nothing is created."""
    result = run("evaluate", "--format", "html", EXAMPLES, "--out", tmp_path / "all.html")
    assert result.exit_code == 2
    assert result.stderr.endswith(
        f"Error: Invalid value for '--out': '{tmp_path / 'all.html'}' names a file, but several "
        f"patients make one page each: give a folder, e.g. --out {tmp_path / 'all'}/\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_several_patients_into_an_existing_file_is_a_usage_error(tmp_path: Path) -> None:
    """An existing file cannot take several pages."""
    taken = tmp_path / "pages"
    taken.write_text("x", encoding="utf-8")
    result = run("evaluate", "--format", "html", INTOLERANT, SPMS, "--out", taken)
    assert result.exit_code == 2
    assert result.stderr.endswith(
        f"Error: Invalid value for '--out': '{taken}' is a file; several patients make one page "
        "each: give a folder\n"
    )


def test_several_patients_into_an_existing_folder_named_like_a_file(tmp_path: Path) -> None:
    """A folder that exists is a folder, whatever its name: the pages go into it."""
    folder = tmp_path / "pages.html"
    folder.mkdir()
    result = run("evaluate", "--format", "html", INTOLERANT, SPMS, "--out", folder)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote 2 pages to {folder}/\n"
    assert len(list(folder.iterdir())) == 2


def test_one_patient_into_a_folder_is_a_usage_error(tmp_path: Path) -> None:
    """One patient makes one page: an existing folder is refused, with a file name to use."""
    result = run("evaluate", "--format", "html", SPMS, "--out", tmp_path)
    assert result.exit_code == 2
    assert result.stderr.endswith(
        f"Error: Invalid value for '--out': '{tmp_path}' is a folder; one patient makes one page: "
        f"give a file name, e.g. --out {tmp_path / 'c05-spms-progressing.html'}\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_folder_of_one_patient_counts_as_several(tmp_path: Path) -> None:
    """A folder given as the input stands for several patients even when it holds one: the
    output is a folder, and the line says `1 page`."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(SPMS, inputs)
    result = run("evaluate", "--format", "html", inputs, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote 1 page to {tmp_path / 'out'}/\n"


def test_evaluate_html_with_an_invalid_file_still_writes_the_others(tmp_path: Path) -> None:
    """The invalid file is reported on standard error, exit 1; the valid one gets its page."""
    result = run(
        "evaluate",
        "--format",
        "html",
        INTOLERANT,
        EXAMPLES / "invalid" / "edss-11.yaml",
        "--out",
        tmp_path,
    )
    assert result.exit_code == 1
    assert "edss-11.yaml" in result.output
    assert result.stdout == f"wrote 1 page to {tmp_path}/\n"
    assert [p.name for p in tmp_path.iterdir()] == ["c02a-rrms-interferon-intolerant.html"]


def test_out_without_html_is_a_usage_error(tmp_path: Path) -> None:
    """--out belongs to the HTML output only; an .html name is told to add --format html."""
    result = run("evaluate", "--format", "json", INTOLERANT, "--out", tmp_path / "x")
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: Invalid value for '--out': applies only to --format html; the other formats "
        "print to standard output\n"
    )
    result = run("evaluate", "--format", "json", INTOLERANT, "--out", tmp_path / "x.html")
    assert result.stderr.endswith(
        "Error: Invalid value for '--out': applies only to --format html: add --format html to "
        "write the page\n"
    )


def test_patient_page_refuses_a_result_from_another_knowledge_base(
    kb: KnowledgeBase, evaluator: Evaluator, tmp_path: Path
) -> None:
    """The page draws the flow of the knowledge base that produced the result, or none."""
    rules, evidence = tmp_path / "rules", tmp_path / "evidence"
    shutil.copytree(REPO / "rules", rules)
    shutil.copytree(REPO / "evidence", evidence)
    manifest = rules / "knowledge-base.yaml"
    manifest.write_text(manifest.read_text() + "# an edited copy\n")
    other = load_knowledge_base(rules, evidence)
    patient = parse_patient({"ms_phenotype": "SPMS"})
    with pytest.raises(ValueError, match="the result was produced by another knowledge base"):
        patient_page(other, patient, evaluator.evaluate(patient))


def test_patient_page_shows_cautions_and_secondary_findings(
    kb: KnowledgeBase, evaluator: Evaluator
) -> None:
    """SPMS asked about fixed deficits: C05 decides, C09 is listed as a secondary finding."""
    patient = parse_patient(
        {
            "ms_phenotype": "SPMS",
            "intended_use": "fixed_deficits",
            "thromboembolic_risk_factors": ["immobility"],
        }
    )
    result = evaluator.evaluate(patient)
    html = patient_page(kb, patient, result)
    assert result.primary_rule == "C05"
    assert "Other findings (did not set the tier)" in html
    assert '<th scope="row">C09</th>' in html
    assert "Thromboembolic risk" in html  # K1
    assert "immobility" in html  # the facts given


def test_patient_page_shows_missing_data(kb: KnowledgeBase, evaluator: Evaluator) -> None:
    """An RRMS woman of unknown pregnancy status: that fact could change the answer."""
    patient = parse_patient({"ms_phenotype": "RRMS", "first_line_dmt": "suitable", "sex": "female"})
    result = evaluator.evaluate(patient)
    html = patient_page(kb, patient, result)
    assert "pregnancy_status" in result.missing_data
    assert "What would change or settle this answer" in html
    assert "<li>Is the patient pregnant, postpartum or neither?</li>" in html


def test_patient_page_shows_caution_notes_and_the_deciding_facts(
    kb: KnowledgeBase, evaluator: Evaluator
) -> None:
    """K1's note says which recorded risk factor it rests on; "Decided by" names the facts."""
    patient = parse_patient(
        {
            "ms_phenotype": "RRMS",
            "first_line_dmt": "not_tolerated",
            "thromboembolic_risk_factors": ["previous deep vein thrombosis"],
        }
    )
    result = evaluator.evaluate(patient)
    k1 = next(c for c in result.cautions if c.rule_id == "K1")
    assert k1.notes
    html = patient_page(kb, patient, result)
    for note in k1.notes:
        assert f"<li>{note}</li>" in html
    text = " ".join(html.split())
    assert "Decided by</dt> <dd>C02a (MS course: RRMS; first-line therapy" in text


def test_patient_page_of_a_child_lists_adult_findings_for_information(
    kb: KnowledgeBase, evaluator: Evaluator
) -> None:
    """outside_evidence: its own colour, and the findings for an adult under their own heading."""
    patient = parse_patient(
        {"ms_phenotype": "RRMS", "first_line_dmt": "not_tolerated", "age_years": 15}
    )
    result = evaluator.evaluate(patient)
    assert result.tier == "outside_evidence"
    html = patient_page(kb, patient, result)
    assert "For information: would apply to an adult" in html
    assert 'class="card for-information"' in html
    assert "Outside the evidence" in html


def test_patient_page_wording_shows_no_internal_identifiers(tmp_path: Path) -> None:
    """Works read as titles and PMIDs, never as entry ids or seed file names."""
    page = tmp_path / "k1.html"
    source = EXAMPLES / "k1-rrms-intolerant-thromboembolic-risk.yaml"
    assert run("evaluate", "--format", "html", source, "--out", page).exit_code == 0
    text = visible(page)
    assert not SEED_FILE.search(text)
    assert not ENTRY_ID.search(text)
    assert "PMID not shown in the source" in text  # K2's unattributed summary
    assert "PMID 12453069" in text


def test_evaluate_html_of_a_fhir_bundle(tmp_path: Path) -> None:
    """--fhir: the page is drawn from the patient the adapter mapped."""
    page = tmp_path / "fhir.html"
    bundle = EXAMPLES / "fhir" / "rrms-first-line-not-tolerated.json"
    result = run("evaluate", "--fhir", "--format", "html", bundle, "--out", page)
    assert result.exit_code == 0, result.output
    html = page.read_text(encoding="utf-8")
    assert 'class="node outcome tier-second_line on-path" data-rule="C02a"' in html
    assert "relapsing-remitting MS (RRMS)" in html
    assert "How the record was read" not in html  # nothing set aside: no section


def test_evaluate_html_of_a_fhir_bundle_says_how_the_record_was_read(tmp_path: Path) -> None:
    """--fhir: the adapter's note on a fact it left unknown is on the page, under its heading."""
    page = tmp_path / "fhir.html"
    bundle = EXAMPLES / "fhir" / "rrms-interferon-intolerant-glatiramer-never-tried.json"
    result = run("evaluate", "--fhir", "--format", "html", bundle, "--out", page)
    assert result.exit_code == 0, result.output
    text = visible(page)
    assert (
        "How the record was read Notes first-line therapy as a whole left unknown: "
        "interferon-beta not tolerated (MedicationStatement/ifn), but glatiramer acetate is "
        "unaccounted for (never recorded, or stopped without a reason); the whole is judged over "
        "both classes"
    ) in text


def test_patient_page_lists_conflicts_notes_and_unrecognised_codes(
    kb: KnowledgeBase, evaluator: Evaluator
) -> None:
    """Each kind of record remark gets its own heading, in the order conflicts, notes, codes."""
    patient = parse_patient({"sex": "female"})
    sections = (
        ("Entries that disagree (each leaves its fact unknown)", ("A and B disagree",)),
        ("Notes", ("a note",)),
        ("Codes not recognised (not used)", ("Condition/x: code X",)),
    )
    html = patient_page(kb, patient, evaluator.evaluate(patient), record=sections)
    shown = " ".join(html.split())
    assert (
        '<h2 id="record-title">How the record was read</h2> '
        "<h3>Entries that disagree (each leaves its fact unknown)</h3> "
        '<ul class="plain"> <li>A and B disagree</li> </ul> <h3>Notes</h3> '
        '<ul class="plain"> <li>a note</li> </ul> <h3>Codes not recognised (not used)</h3> '
        '<ul class="plain"> <li>Condition/x: code X</li> </ul>'
    ) in shown
