"""The `ivig-cds` command line, through typer's CliRunner, and once as the installed script."""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from ivig_cds import KnowledgeBase, __version__, _engine
from ivig_cds._vocabulary import TIER_LABELS, Tier
from ivig_cds._wording import field_label, question_phrase
from ivig_cds.cli import app, common, evaluate, summary

REPO = Path(__file__).resolve().parents[1]
PATIENTS = REPO / "examples"
INTOLERANT = PATIENTS / "c02a-rrms-interferon-intolerant.yaml"
SPMS = REPO / "tests" / "fixtures" / "json-patients" / "c05-spms-progressing.json"
EDSS_11 = REPO / "examples" / "invalid" / "edss-11.yaml"
ISSUE = re.compile(r"^\S+\.yaml:\d+:\d+: ", re.MULTILINE)  # path:line:column: message


def run(*args: str | Path, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], input=stdin)


def assert_clean(result: Result) -> None:
    """No traceback and no stray exception: every failure must be a sentence."""
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def kb_copy(tmp_path: Path) -> tuple[Path, Path]:
    """A knowledge engineer's editable copy of the shipped knowledge base."""
    rules, evidence = tmp_path / "rules", tmp_path / "evidence"
    shutil.copytree(REPO / "rules", rules)
    shutil.copytree(REPO / "evidence", evidence)
    return rules, evidence


@pytest.fixture
def broken_kb(kb_copy: tuple[Path, Path]) -> tuple[Path, Path]:
    """A copy with two mistakes in two files: a dangling citation and a misspelled phenotype."""
    rules, evidence = kb_copy
    c06 = rules / "conclusions" / "C06-ppms.yaml"
    c06.write_text(c06.read_text().replace("16998754", "99999999", 1))
    c09 = rules / "conclusions" / "C09-fixed-deficits.yaml"
    c09.write_text(c09.read_text().replace("PPMS]", "PPSM]", 1))
    return rules, evidence


# --- evaluate --------------------------------------------------------------------------------


def test_evaluate_one_file_prints_one_json_document_when_piped() -> None:
    """One file and no --format: stdout is not a terminal, so one JSON recommendation."""
    result = run("evaluate", INTOLERANT)
    assert_clean(result)
    assert result.exit_code == 0
    rec = json.loads(result.stdout)
    assert (rec["tier"], rec["primary_rule"]) == ("second_line", "C02a")
    assert rec["patient_id"] == "example-c02a-rrms-interferon-intolerant"
    assert {c["rule_id"] for c in rec["cautions"]} == {"K2", "K3", "K4", "K5", "K6", "K8", "K11"}
    assert result.stderr == ""


def test_evaluate_text_is_plain_unwrapped_and_complete() -> None:
    """--format text shows tier, question, certainty, PubMed links, cautions, no ANSI, no wrap."""
    result = run("evaluate", "--format", "text", INTOLERANT)
    assert result.exit_code == 0
    out = result.stdout
    assert "\x1b[" not in out
    assert out.startswith("SECOND-LINE OPTION (2002-2008 EVIDENCE)  RRMS, neither interferon-beta")
    assert "Question: long-term disease-modifying treatment" in out
    assert "(inferred: the input did not state the question)" in out
    assert "Certainty: low: " in out
    assert "https://pubmed.ncbi.nlm.nih.gov/12453069/" in out
    assert "! K6 Conflicting later evidence: " in out
    assert (
        "Decided by: C02a (MS course: RRMS; first-line therapy (interferon-beta, glatiramer "
        "acetate): not tolerated)"
    ) in out
    rationale = out.split("Rationale\n", 1)[1].split("\n", 1)[0]
    assert len(rationale) > 200  # one line: a pipe gets no hard wrapping


def test_evaluate_text_lists_missing_data_for_an_indeterminate_result() -> None:
    """An indeterminate result asks the question whose answer would settle it."""
    result = run("evaluate", "-f", "text", PATIENTS / "c13b-rrms-first-line-unknown.yaml")
    assert result.exit_code == 0
    assert result.stdout.startswith("INDETERMINATE  ")
    assert (
        "What would change or settle this answer\n  - Can approved first-line therapy "
        "(interferon-beta, glatiramer acetate) be used, and if not, why?"
    ) in result.stdout
    assert "first_line_dmt" not in result.stdout


def test_evaluate_markdown_is_a_note_with_linked_references() -> None:
    """--format markdown gives a report with headings, PMID links, cautions and the disclaimer."""
    result = run("evaluate", "--format", "markdown", SPMS)
    assert result.exit_code == 0
    out = result.stdout
    assert out.startswith("## IVIG in multiple sclerosis: patient example-c05-spms-progressing\n")
    assert "- **Result:** **Not recommended.** Trials showed no benefit" in out
    assert "`" not in out.replace("- **Source file:** `", "")
    assert "[PMID 15451222](https://pubmed.ncbi.nlm.nih.gov/15451222/)" in out
    assert "(K7)" in out
    assert "No IVIG dose is recommended." in out


def test_evaluate_table_has_one_row_per_file_with_its_key_facts() -> None:
    """`--format table` (tab-separated when piped): file, tier, question, rule, key citation and
    missing data of each example, as its golden JSON says, in words (tier label, question,
    the missing facts' names)."""
    result = run("evaluate", "--format", "table", PATIENTS)
    assert result.exit_code == 0
    header, *rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert header == ["file", "tier", "question", "rule", "key citation", "missing data"]
    files = sorted(p for p in PATIENTS.iterdir() if p.suffix == ".yaml")
    assert [row[0] for row in rows] == [p.name for p in files]
    for row, path in zip(rows, files, strict=True):
        golden = json.loads((PATIENTS / "expected" / f"{path.stem}.json").read_text())
        assert row[1:4] == [
            TIER_LABELS[Tier(golden["tier"])],
            question_phrase(golden["question"]["intended_use"], short=True),
            golden["primary_rule"],
        ]
        if not golden["citations"]:
            assert row[4] == "-"
        elif golden["citations"][0]["pmid"] is None:
            assert row[4] == "PMID not shown in the source"
        else:
            assert row[4].endswith(f", PMID {golden['citations'][0]['pmid']}")
        assert row[5] == (", ".join(map(field_label, golden["missing_data"])) or "-")
        assert "_" not in "".join(row[1:])
    by_file = {row[0]: row for row in rows}
    assert by_file["c05-spms-progressing.yaml"][4] == "Hommes 2004, PMID 15451222"
    assert by_file["c08-relapse-instead-of-steroids.yaml"][4] == "PMID not shown in the source"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_at_a_terminal_the_table_fits_the_screen(monkeypatch: pytest.MonkeyPatch) -> None:
    """At 100 columns every row is one line within the width: the columns that do not fit are
    left out and named below, the file name is cut, and tier and rule are whole."""
    screen = _Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    plain = Console(file=screen, width=100, color_system=None)
    monkeypatch.setattr(common, "console", lambda file=None: plain)
    assert evaluate._default_format(as_list=True) is evaluate.OutputFormat.TABLE
    assert evaluate._default_format(as_list=False) is evaluate.OutputFormat.TEXT
    tier = TIER_LABELS[Tier.SECOND_LINE]  # the widest label
    rows = [["c02a-rrms-interferon-intolerant.yaml", tier, "long-term treatment", "C02a",
             "x" * 80, "-"]]  # fmt: skip
    common.table(summary.COLUMNS, rows, more="--format text shows every result")
    lines = screen.getvalue().splitlines()
    assert len(lines) == 3 and all(len(line) <= 100 for line in lines)
    assert lines[1] == f"c02a-rrms-interferon-intolerant…  {tier}  long-term treatment  C02a"
    assert lines[2] == (
        "Not shown at this width: key citation, missing data; --format text shows every result."
    )


def test_evaluate_directory_gives_a_json_list_in_name_order() -> None:
    """A directory evaluates each patient file inside, listed as {source, recommendation}."""
    result = run("evaluate", PATIENTS)
    assert result.exit_code == 0
    items = json.loads(result.stdout)
    files = sorted(p for p in PATIENTS.iterdir() if p.suffix in (".yaml", ".json"))
    assert [i["source"] for i in items] == [str(p) for p in files]
    assert {i["recommendation"]["tier"] for i in items} == {
        "second_line",
        "not_first_line",
        "insufficient_evidence",
        "not_recommended",
        "indeterminate",
        "outside_evidence",
        "not_applicable",
    }


def test_evaluate_markdown_of_several_files_names_each_source() -> None:
    """Several reports are separated by rules and each says which file it came from."""
    result = run("evaluate", "-f", "markdown", INTOLERANT, SPMS)
    assert result.exit_code == 0
    reports = result.stdout.split("\n---\n\n")
    assert len(reports) == 2
    assert f"- **Source file:** `{INTOLERANT}`" in reports[0]
    assert f"- **Source file:** `{SPMS}`" in reports[1]


def test_evaluate_text_of_several_files_heads_each_with_its_source() -> None:
    """In text, each result of several starts with a header naming its file."""
    result = run("evaluate", "-f", "text", INTOLERANT, SPMS)
    assert result.exit_code == 0
    assert f"== {INTOLERANT} ==\nSECOND-LINE OPTION" in result.stdout
    assert f"== {SPMS} ==\nNOT RECOMMENDED" in result.stdout


def test_evaluate_reads_standard_input() -> None:
    """`-` reads one patient from standard input (YAML or JSON)."""
    result = run("evaluate", "-", stdin='{"ms_phenotype": "PPMS", "sex": "male"}')
    assert result.exit_code == 0
    assert json.loads(result.stdout)["primary_rule"] == "C06"


def test_evaluate_bad_file_is_reported_and_the_others_still_run() -> None:
    """One invalid file: exit 1, its file, line and field on stderr, the rest evaluated."""
    result = run("evaluate", INTOLERANT, EDSS_11, SPMS)
    assert_clean(result)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {EDSS_11}: is not a valid patient context\n"
        "  - line 6, column 1: edss: Input should be less than or equal to 10 (got 11)\n"
    )
    items = json.loads(result.stdout)
    assert [i["source"] for i in items] == [str(INTOLERANT), str(EDSS_11), str(SPMS)]
    assert items[0]["recommendation"]["primary_rule"] == "C02a"
    assert items[1] == {
        "source": str(EDSS_11),
        "error": "is not a valid patient context",
        "problems": [
            {
                "message": "edss: Input should be less than or equal to 10 (got 11)",
                "line": 6,
                "column": 1,
            }
        ],
    }
    assert items[2]["recommendation"]["primary_rule"] == "C05"


def test_evaluate_text_still_prints_the_good_files_when_one_fails() -> None:
    """In text format a failed file is only on stderr; the good result is still printed."""
    result = run("evaluate", "-f", "text", EDSS_11, SPMS)
    assert result.exit_code == 1
    assert "NOT RECOMMENDED" in result.stdout
    assert str(EDSS_11) not in result.stdout
    assert "edss: Input should be less than or equal to 10" in result.stderr


def test_evaluate_malformed_yaml_from_stdin_names_stdin_and_position() -> None:
    """A YAML syntax error is reported with <stdin> and its line and column."""
    result = run("evaluate", "-", stdin="ms_phenotype: [RRMS\nsex: female\n")
    assert_clean(result)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: <stdin>: is not a valid YAML file\n")
    assert re.search(r"line 2, column \d+: invalid YAML", result.stderr)


def test_evaluate_missing_path_is_a_usage_error() -> None:
    """A path that does not exist is a usage error (exit 2) that names it."""
    result = run("evaluate", "no-such-patient.yaml")
    assert_clean(result)
    assert result.exit_code == 2
    assert "'no-such-patient.yaml' does not exist" in result.stderr


def test_evaluate_folder_without_patient_files_points_to_its_subfolders() -> None:
    """A folder with no patient files directly inside is a usage error naming its subfolders."""
    result = run("evaluate", REPO / "examples" / "..", "--format", "json")
    assert result.exit_code == 2
    assert "subfolders are not searched" in result.stderr
    assert "examples" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Usage: ivig-cds evaluate"),
        (
            ("--format", "xml", str(INTOLERANT)),
            "Error: Invalid value for '--format' / '-f': unknown format 'xml'; choose table, "
            "text, json, markdown or html\n",
        ),
        (("--rules", "no-such-dir", str(INTOLERANT)), "no-such-dir"),
        (("--bogus", str(INTOLERANT)), "No such option: --bogus"),
    ],
)
def test_evaluate_usage_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    """Missing paths, an unknown format or option, or a missing --rules folder exit 2."""
    result = run("evaluate", *args)
    assert_clean(result)
    assert result.exit_code == 2
    assert message in result.stderr


def test_evaluate_with_another_knowledge_base(kb_copy: tuple[Path, Path]) -> None:
    """--rules/--evidence evaluate against an edited copy, whose version the result cites."""
    rules, evidence = kb_copy
    manifest = rules / "knowledge-base.yaml"
    manifest.write_text(manifest.read_text().replace("version: 3.0.0", "version: 3.1.0"))
    result = run("evaluate", "--rules", rules, "--evidence", evidence, SPMS)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["knowledge_base"]["version"] == "3.1.0"


def test_evaluate_with_an_invalid_knowledge_base_lists_every_issue(
    broken_kb: tuple[Path, Path],
) -> None:
    """An invalid --rules copy exits 1 with each issue as path:line:column, nothing evaluated."""
    rules, evidence = broken_kb
    result = run("evaluate", "--rules", rules, "--evidence", evidence, SPMS)
    assert_clean(result)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "the knowledge base is invalid (2 errors)" in result.stderr
    assert "C06-ppms.yaml:22:12: evidence.0: cites 'pmid-99999999'" in result.stderr
    assert "C09-fixed-deficits.yaml:9:3: when.ms_phenotype: 'PPSM'" in result.stderr
    assert len(ISSUE.findall(result.stderr.replace("  ", ""))) == 2


def test_evaluate_reports_a_knowledge_gap_per_file(kb_copy: tuple[Path, Path]) -> None:
    """A patient no rule settles (C12 removed) is an error for that file only, exit 1."""
    rules, evidence = kb_copy
    (rules / "conclusions" / "C12-not-ms.yaml").unlink()
    not_ms = PATIENTS / "c12-not-ms-cidp.yaml"
    result = run("evaluate", "--rules", rules, "--evidence", evidence, not_ms, SPMS)
    assert_clean(result)
    assert result.exit_code == 1
    assert f"error: {not_ms}: could not be evaluated" in result.stderr
    assert "no rule of knowledge base" in result.stderr
    items = json.loads(result.stdout)
    assert items[1]["recommendation"]["primary_rule"] == "C05"


def test_evaluate_help_explains_input_tiers_and_exit_codes() -> None:
    """`evaluate --help` describes the file format, every tier and the exit codes."""
    result = run("evaluate", "--help")
    assert result.exit_code == 0
    for tier in (
        "second_line",
        "not_first_line",
        "insufficient_evidence",
        "not_recommended",
        "indeterminate",
        "outside_evidence",
        "outside_evidence",
        "not_applicable",
    ):
        assert f"  {tier} " in result.stdout
    words = " ".join(result.stdout.split())
    assert "Outside the evidence: The sources do not address this patient" in words
    assert "ivig-cds schema" in words
    assert "exit code is 1 if any file failed, 2 for a usage error, else 0" in words
    assert "- for standard input" in words
    assert "audited by `ivig-cds population`" in words


# --- rules and evidence ----------------------------------------------------------------------


@pytest.mark.parametrize("args", [("rules",), ("rules", "list")])
def test_rules_lists_every_rule(args: tuple[str, ...], kb: KnowledgeBase) -> None:
    """`rules` and `rules list` print a header and one tab-separated line per rule."""
    result = run(*args)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == [
        "id", "kind", "tier", "questions", "precedence", "certainty", "title"
    ]  # fmt: skip
    ids = [line.split("\t")[0] for line in lines[1:]]
    assert ids == [r.id for r in (*kb.conclusions, *kb.cautions)]
    c05 = lines[1 + ids.index("C05")].split("\t")
    assert c05[1:6] == [
        "conclusion", "not_recommended", "disease_modifying,acute_relapse,fixed_deficits", "10",
        "moderate",
    ]  # fmt: skip


def test_rules_show_prints_conditions_tier_certainty_and_citations() -> None:
    """`rules show C02a` gives its conditions, tier, certainty, rationale and cited works."""
    result = run("rules", "show", "C02a")
    assert result.exit_code == 0
    out = result.stdout
    assert out.startswith("C02a  RRMS, first-line therapy as a whole not tolerated")
    assert "  ms_phenotype = RRMS\n" in out
    assert "  first_line_dmt is one of not_tolerated, contraindicated, declined\n" in out
    assert "Tier: second_line: IVIG may be considered:" in out
    assert "Certainty: low: " in out
    assert "  - pmid-12453069: Sorensen PS, Fazekas F, Lee M." in out
    assert "C02a-rrms-first-line-unusable.yaml" in out
    assert "Provenance: spec C2;" in out


def test_rules_show_accepts_any_case_and_shows_a_caution() -> None:
    """`rules show k1` finds K1 and shows its condition and text instead of a tier."""
    result = run("rules", "show", "k1")
    assert result.exit_code == 0
    assert result.stdout.startswith("K1  Thromboembolic risk\ncaution, version 3")
    assert "And one of these:\n  - thromboembolic_risk_factors is not empty\n" in result.stdout
    assert "  - pregnancy_status = postpartum and weeks_postpartum is at most 12\n" in result.stdout
    assert "Text:\n  Thromboembolic events are a recognised risk of IVIG" in result.stdout
    assert "Clinical judgement, beyond the sources: Pregnancy and the puerperium" in result.stdout
    assert "Tier:" not in result.stdout


def test_rules_show_lists_unless_groups_and_caution_notes(tmp_path: Path) -> None:
    """A rule's `unless` groups and a caution's notes, with their conditions, are shown."""
    rules, evidence = tmp_path / "rules", tmp_path / "evidence"
    shutil.copytree(REPO / "rules", rules)
    shutil.copytree(REPO / "evidence", evidence)
    k5 = next((rules / "cautions").glob("K5-*.yaml"))
    k5.write_text(
        k5.read_text()
        + "unless:\n  - ms_phenotype: CIS\n"
        + "notes:\n  - when: {age_years: {at_least: 65}}\n    text: Aged {age_years}.\n"
    )
    result = run("rules", "show", "K5", "--rules", rules, "--evidence", evidence)
    assert result.exit_code == 0, result.output
    assert "Unless one of these holds (then it does not fire):\n  - ms_phenotype = CIS\n" in (
        result.stdout
    )
    assert (
        "Notes (added beneath the text when they hold):\n  - when age_years is at least 65:\n"
        "      Aged {age_years}.\n"
    ) in result.stdout


def test_rules_show_unknown_id_suggests_the_nearest() -> None:
    """An unknown rule id is a usage error (exit 2) with a suggestion."""
    result = run("rules", "show", "C99")
    assert_clean(result)
    assert result.exit_code == 2
    assert "no rule 'C99'; did you mean 'C09'?" in result.stderr


def test_rules_show_reads_an_edited_copy(kb_copy: tuple[Path, Path]) -> None:
    """--rules after `show` reads the knowledge engineer's copy."""
    rules, _ = kb_copy
    c09 = rules / "conclusions" / "C09-fixed-deficits.yaml"
    title = next(line for line in c09.read_text().splitlines() if line.startswith("title:"))
    c09.write_text(c09.read_text().replace(title, "title: Fixed deficits (edited)"))
    result = run("rules", "show", "C09", "--rules", rules)
    assert result.exit_code == 0
    assert result.stdout.startswith("C09  Fixed deficits (edited)")


def test_rules_with_an_invalid_knowledge_base_exits_1(broken_kb: tuple[Path, Path]) -> None:
    """`rules --rules BROKEN` lists the issues and exits 1."""
    rules, evidence = broken_kb
    result = run("rules", "--rules", rules, "--evidence", evidence)
    assert_clean(result)
    assert result.exit_code == 1
    assert "the knowledge base is invalid (2 errors)" in result.stderr


def test_evidence_lists_every_entry_with_the_rules_citing_it(kb: KnowledgeBase) -> None:
    """`evidence` prints one line per entry with its design, PMID and citing rules."""
    result = run("evidence")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "id\tyear\tdesign\tn\tpmid\tcited_by\ttitle"
    rows = {line.split("\t")[0]: line.split("\t") for line in lines[1:]}
    assert set(rows) == set(kb.evidence)
    assert rows["pmid-15451222"][1:6] == [
        "2004", "randomized_placebo_controlled_trial", "318", "15451222", "C05,K1,K3,K12a"
    ]  # fmt: skip


def test_evidence_show_prints_design_figures_quality_and_citing_rules() -> None:
    """`evidence show pmid-15451222` shows design, n, outcomes, quality notes and citers."""
    result = run("evidence", "show", "pmid-15451222")
    assert result.exit_code == 0
    out = result.stdout
    assert out.startswith("pmid-15451222  IntraVenous ImmunoGlobulin in Secondary/Progressive")
    assert "Design: randomized_placebo_controlled_trial\n" in out
    assert "n: 318\n" in out
    assert "PMID: 15451222 https://pubmed.ncbi.nlm.nih.gov/15451222/" in out
    assert "hazard ratio 1.11 [95% CI 0.80-1.53]" in out  # brackets survive: no markup
    assert "Quality notes:\n  - " in out
    assert out.rstrip().endswith("Cited by: C05, K1, K3, K12a")


def test_evidence_show_unknown_id_is_a_usage_error() -> None:
    """An unknown evidence id exits 2 and suggests the nearest one."""
    result = run("evidence", "show", "pmid-1545122")
    assert_clean(result)
    assert result.exit_code == 2
    assert "no entry 'pmid-1545122'; did you mean 'pmid-15451222'?" in result.stderr


# --- validate, trace, schema, version, help --------------------------------------------------


def test_validate_reports_counts_version_and_hash(kb: KnowledgeBase) -> None:
    """`validate` on the shipped knowledge base prints its OK lines and exits 0."""
    assert len(kb.conclusions) > 1 and len(kb.cautions) > 1 and len(kb.evidence) > 1
    result = run("validate")
    assert result.exit_code == 0
    assert result.stdout == (
        f"knowledge base OK: {len(kb.conclusions)} conclusions, {len(kb.cautions)} cautions, "
        f"{len(kb.evidence)} evidence entries (version {kb.version}, {kb.content_hash})\n"
        "record windows OK: pregnant 42 weeks, not_pregnant 4 weeks, breastfeeding 26 weeks, "
        "postpartum 104 weeks, ivig_in_use 8 weeks\n"
    )


def test_validate_lists_every_issue_at_path_line_column(broken_kb: tuple[Path, Path]) -> None:
    """`validate` on a broken copy prints all issues as path:line:column and exits 1."""
    rules, evidence = broken_kb
    result = run("validate", "--rules", rules, "--evidence", evidence)
    assert_clean(result)
    assert result.exit_code == 1
    issues = [line.strip() for line in result.stderr.splitlines()[1:]]
    assert len(issues) == 2
    assert all(ISSUE.match(issue) for issue in issues)
    assert issues[0].startswith(f"{rules}/conclusions/C06-ppms.yaml:22:12: evidence.0: ")
    assert "`ivig-cds validate`" not in result.stderr


@pytest.mark.parametrize(
    ("pmid", "hint"),
    [
        ("99999999", ""),  # another number: no suggestion (it used to name pmid-15949496)
        ("16998745", "; did you mean 'pmid-16998754'?"),  # two digits swapped
        ("1699875", "; did you mean 'pmid-16998754'?"),  # a digit left out
    ],
)
def test_validate_suggests_a_mistyped_pmid_only(
    kb_copy: tuple[Path, Path], pmid: str, hint: str
) -> None:
    """A cited PMID missing from the registry gets a "did you mean" only when it is a typo of
    one there, never an unrelated work that shares a few digits."""
    rules, evidence = kb_copy
    c06 = rules / "conclusions" / "C06-ppms.yaml"
    c06.write_text(c06.read_text().replace("16998754", pmid, 1))
    result = run("validate", "--rules", rules, "--evidence", evidence)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[1:] == [
        f"  {rules}/conclusions/C06-ppms.yaml:22:12: evidence.0: cites 'pmid-{pmid}', which is "
        f"not in the evidence registry{hint}"
    ]


def test_counts_agree_with_their_nouns() -> None:
    """One of a thing is singular: `1 page`, `1 evidence entry`; any other number plural."""
    assert common.count(1, "page") == "1 page"
    assert common.count(0, "page") == "0 pages"
    assert common.count(3, "page") == "3 pages"
    assert common.count(1, "evidence entry", "evidence entries") == "1 evidence entry"
    assert common.count(2, "evidence entry", "evidence entries") == "2 evidence entries"
    assert common.count(1200, "line") == "1,200 lines"


def test_validate_missing_folder_is_a_usage_error() -> None:
    """`validate --evidence` with a folder that does not exist exits 2."""
    result = run("validate", "--evidence", "no-such-evidence")
    assert result.exit_code == 2
    assert "no-such-evidence" in result.stderr


def test_trace_markdown_is_a_rules_by_evidence_table(kb: KnowledgeBase) -> None:
    """`trace` prints a markdown table: a row per rule, a column per evidence entry."""
    result = run("trace")
    assert result.exit_code == 0
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    del table[1]  # the | --- | separator
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header[:5] == ["rule", "kind", "question(s)", "tier", "certainty"]
    assert header[5:] == sorted(kb.evidence)
    assert len(table) == 1 + len(kb.conclusions) + len(kb.cautions)
    c05 = next(row for row in table if row.startswith("| C05 |"))
    cells = [cell.strip() for cell in c05.strip("|").split("|")]
    assert cells[header.index("pmid-15451222")] == "x"
    assert cells[header.index("pmid-14760960")] == ""


def test_trace_csv_parses_and_marks_citations(kb: KnowledgeBase) -> None:
    """`trace --format csv` is valid CSV with an x where a rule cites a work."""
    result = run("trace", "--format", "csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == len(kb.conclusions) + len(kb.cautions)
    k1 = next(r for r in rows if r["rule"] == "K1")
    assert {e for e in kb.evidence if k1[e] == "x"} == set(kb.rule("K1").evidence)
    assert k1["kind"] == "caution"


def test_trace_json_lists_citing_rules_per_evidence_entry(kb: KnowledgeBase) -> None:
    """`trace --format json` gives every evidence entry with the rules that cite it."""
    result = run("trace", "-f", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["knowledge_base"]["content_hash"] == kb.content_hash
    cited = {e["id"]: e["cited_by"] for e in data["evidence"]}
    assert cited == {e: list(kb.cited_by(e)) for e in kb.evidence}
    c07 = next(r for r in data["rules"] if r["id"] == "C07")
    assert (c07["tier"], c07["certainty"], c07["questions"]) == (
        "not_recommended", "low", ["acute_relapse"]
    )  # fmt: skip


def test_trace_unknown_format_is_a_usage_error() -> None:
    """`trace --format html` exits 2 naming the allowed formats."""
    result = run("trace", "--format", "html")
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: Invalid value for '--format' / '-f': unknown format 'html'; choose markdown, csv "
        "or json\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "--format", "pdf", str(SPMS)], "unknown format 'pdf'; choose table, text, "
         "json, markdown or html"),
        (["rules", "--format", "pdf"], "unknown format 'pdf'; choose table or json"),
        (["rules", "list", "--format", "pdf"], "unknown format 'pdf'; choose table or json"),
        (["evidence", "--format", "pdf"], "unknown format 'pdf'; choose table or json"),
        (["evidence", "list", "-f", "pdf"], "unknown format 'pdf'; choose table or json"),
        (["trace", "--format", "pdf"], "unknown format 'pdf'; choose markdown, csv or json"),
        (["schema", "--of", "pdf"], "unknown schema 'pdf'; choose patient or result"),
    ],
)  # fmt: skip
def test_an_unknown_format_names_every_format(args: list[str], message: str) -> None:
    """An unknown value of a closed option is one usage line listing the values (exit 2), not
    the wording of the library that checks it."""
    result = run(*args)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1].endswith(f": {message}")
    assert "Value error" not in result.stderr


def test_values_are_matched_in_any_case() -> None:
    """`--format JSON` is `--format json`."""
    result = run("evaluate", "--format", "JSON", SPMS)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["primary_rule"] == "C05"


def test_every_command_words_a_bad_option_value_as_a_sentence() -> None:
    """Commands built on the shared command class (diff among them) drop typer's pydantic
    prefix from a bad value's message."""
    result = run("diff", str(SPMS), "--format", "pdf")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--format' / '-f': 'pdf' is not one of 'text', 'json', "
        "'ndjson', 'html'."
    )


def test_schema_of_a_result_lists_every_tier() -> None:
    """`schema --of result` is the result's JSON Schema, with outside_evidence among the tiers."""
    result = run("schema", "--of", "result")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "Recommendation"
    assert "outside_evidence" in schema["$defs"]["Tier"]["enum"]
    assert "display" in schema["$defs"]["Caution"]["properties"]


def test_schema_is_the_patient_context_json_schema() -> None:
    """`schema` prints the pydantic JSON Schema: closed object, every field, vocabularies."""
    result = run("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert "ms_phenotype" in schema["properties"] and "edss" in schema["properties"]
    assert schema["$defs"]["MSPhenotype"]["enum"] == ["CIS", "RRMS", "SPMS", "PPMS", "not_ms"]


@pytest.mark.parametrize("option", ["--version", "-V"])
def test_version_prints_package_knowledge_base_engine_and_python(
    kb: KnowledgeBase, option: str
) -> None:
    """What a bug report needs: package, knowledge base with hash, durable-rules and Python."""
    result = run(option)
    assert result.exit_code == 0
    assert result.stdout == (
        f"ivig-cds {__version__}\n"
        f"knowledge base {kb.manifest.name} {kb.version} ({kb.content_hash})\n"
        f"durable-rules {importlib.metadata.version('durable-rules')}\n"
        f"Python {platform.python_version()} (CPython, {sys.executable})\n"
    )


@pytest.fixture
def durable_unloadable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_engine, "_loaded", None)
    monkeypatch.setitem(sys.modules, "durable_rules_engine", None)  # import raises ImportError


@pytest.fixture
def _fresh_default_evaluator(monkeypatch: pytest.MonkeyPatch) -> None:
    """No default evaluator compiled yet, as in a new process."""
    monkeypatch.setattr("ivig_cds._evaluate._default", None)


@pytest.mark.usefixtures("durable_unloadable")
def test_version_says_when_durable_cannot_be_loaded() -> None:
    """The versions still print; the engine line says it does not load, the error says why."""
    result = run("--version")
    assert result.exit_code == 1
    version = importlib.metadata.version("durable-rules")
    assert f"durable-rules {version} (cannot be loaded; see below)\n" in result.stdout
    assert result.stderr.startswith(
        f"error: the rule engine cannot be loaded on Python {platform.python_version()}"
    )


@pytest.mark.usefixtures("_fresh_default_evaluator", "durable_unloadable")
@pytest.mark.parametrize("command", [["evaluate", str(SPMS)], ["validate"]])
def test_an_unloadable_engine_is_a_sentence_not_a_traceback(command: list[str]) -> None:
    """Every command that evaluates reports the engine problem as one error line, exit 1."""
    result = run(*command)
    assert_clean(result)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: the rule engine cannot be loaded on Python ")
    assert "pip install --force-reinstall --no-cache-dir 'durable-rules==2.0.28'" in result.stderr


def test_python_dash_m_runs_the_command_line() -> None:
    """`python -m ivig_cds` is the same program as `ivig-cds`."""
    done = subprocess.run(
        [sys.executable, "-m", "ivig_cds", "-V"], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout.split("\n")[0]) == (0, f"ivig-cds {__version__}")


def test_shell_completion_completes_commands() -> None:
    """The shell hook `--install-completion` installs answers with the matching commands."""
    env = {"_IVIG_CDS_COMPLETE": "complete_bash", "COMP_WORDS": "ivig-cds ev", "COMP_CWORD": "1"}
    result = CliRunner().invoke(app, [], env=env, prog_name="ivig-cds")
    assert result.stdout.split() == ["evaluate", "evidence"]
    assert "--install-completion" in run("--help").stdout


def test_shell_completion_completes_formats() -> None:
    """An option's values complete too, though they are checked by our own parser."""
    env = {
        "_IVIG_CDS_COMPLETE": "complete_bash",
        "COMP_WORDS": "ivig-cds evaluate --format ",
        "COMP_CWORD": "3",
    }
    result = CliRunner().invoke(app, [], env=env, prog_name="ivig-cds")
    assert result.stdout.split() == ["table", "text", "json", "markdown", "html"]


def test_help_lists_every_command_and_the_exit_codes() -> None:
    """`--help` names all commands and says what the exit codes mean."""
    result = run("--help")
    assert result.exit_code == 0
    for command in ("evaluate", "rules", "evidence", "validate", "trace", "schema", "serve"):
        assert re.search(rf"^  {command} ", result.stdout, re.MULTILINE), command
    assert "2 usage error" in " ".join(result.stdout.split())


def test_no_arguments_shows_help_as_a_usage_error() -> None:
    """`ivig-cds` alone prints the help and exits 2."""
    result = run()
    assert result.exit_code == 2
    assert "Usage: ivig-cds [OPTIONS] COMMAND" in result.stderr


@pytest.mark.parametrize("args", [["--version"], ["evaluate", str(SPMS)]])
def test_fhir_and_web_modules_stay_unloaded(args: list[str]) -> None:
    """`--version` and `evaluate` never import fastapi, uvicorn, fhir.resources or our adapters."""
    probe = (
        "import sys\n"
        "from ivig_cds.cli import main\n"
        f"sys.argv = ['ivig-cds', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ('fastapi', 'uvicorn', 'fhir', 'ivig_cds.fhir', 'ivig_cds.service.app')\n"
        "print(sorted(m for m in sys.modules if m in heavy or m.split('.')[0] in heavy[:3]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert done.stdout.splitlines()[-1] == "[]"


def test_installed_console_script_evaluates_the_examples() -> None:
    """The README's quickstart, `ivig-cds evaluate examples/`, as a real process."""
    script = Path(sys.executable).with_name("ivig-cds")
    if not script.exists():
        pytest.skip(f"console script not installed next to {sys.executable}; pip install -e .")
    done = subprocess.run(
        [str(script), "evaluate", "examples/"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    items = json.loads(done.stdout)
    assert len(items) == len([p for p in PATIENTS.iterdir() if p.suffix in (".yaml", ".json")])
    by_source = {i["source"]: i["recommendation"] for i in items}
    assert by_source["examples/c06-ppms.yaml"]["tier"] == "insufficient_evidence"


@pytest.mark.parametrize(
    ("patient", "primary", "secondary", "unused"),
    [
        (
            "ms_phenotype: RRMS\nfirst_line_dmt: suitable\nsex: female\n"
            "pregnancy_status: postpartum\nweeks_postpartum: 100\nbreastfeeding: false\n",
            "C01", [], [],
        ),
        (
            "ms_phenotype: RRMS\nintended_use: disease_modifying\nacute_relapse: true\n"
            "on_iv_methylprednisolone: true\nfirst_line_dmt: declined\nsex: male\nedss: 3.0\n",
            "C02a", ["C07"], ["edss"],
        ),
    ],
)  # fmt: skip
def test_evaluate_applies_knowledge_base_v2(
    tmp_path: Path, patient: str, primary: str, secondary: list[str], unused: list[str]
) -> None:
    """Through the command line: postpartum bounded, relapse findings symmetric, unused facts."""
    path = tmp_path / "patient.yaml"
    path.write_text(patient, encoding="utf-8")
    result = run("evaluate", "--format", "json", path)
    assert_clean(result)
    rec = json.loads(result.stdout)
    assert rec["primary_rule"] == primary
    assert [f["rule_id"] for f in rec["findings"] if f["role"] == "secondary"] == secondary
    assert rec["unused_facts"] == unused
    assert "K8" in [c["rule_id"] for c in rec["cautions"]]
    text = run("evaluate", "--format", "text", path).stdout
    assert ("Not used by this knowledge base: EDSS" in text) == bool(unused)


def test_evaluate_rejects_the_relapse_question_for_a_patient_not_in_relapse(
    tmp_path: Path,
) -> None:
    """Inconsistent input is refused, naming both fields, with exit code 1."""
    path = tmp_path / "patient.yaml"
    path.write_text("ms_phenotype: RRMS\nintended_use: acute_relapse\nacute_relapse: false\n")
    result = run("evaluate", "--format", "json", path)
    assert result.exit_code == 1
    assert "intended_use: 'acute_relapse' contradicts acute_relapse false" in result.stderr


def test_rules_and_evidence_listings_as_json(kb: KnowledgeBase) -> None:
    """`--format json` lists every rule and every evidence entry as typed objects."""
    listed = json.loads(run("rules", "--format", "json").stdout)
    assert [r["id"] for r in listed] == [r.id for r in (*kb.conclusions, *kb.cautions)]
    c06 = next(r for r in listed if r["id"] == "C06")
    rule = kb.rule("C06")
    assert c06 == {
        "id": "C06",
        "kind": "conclusion",
        "tier": "insufficient_evidence",
        "questions": [q.value for q in rule.questions],
        "precedence": rule.precedence,
        "certainty": rule.certainty.level.value if rule.certainty else None,
        "title": rule.title,
    }
    assert json.loads(run("rules", "list", "-f", "json").stdout) == listed
    entries = json.loads(run("evidence", "list", "--format", "json").stdout)
    assert [e["id"] for e in entries] == list(kb.evidence)
    hommes = next(e for e in entries if e["id"] == "pmid-15451222")
    assert (hommes["pmid"], hommes["year"]) == ("15451222", 2004)
    assert hommes["cited_by"] == list(kb.cited_by("pmid-15451222"))


COMMANDS = [
    [], ["evaluate"], ["batch"], ["rules"], ["rules", "list"], ["rules", "show"],
    ["rules", "windows"], ["evidence"],
    ["evidence", "list"], ["evidence", "show"], ["validate"], ["trace"], ["schema"], ["serve"],
    ["diff"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "ivig-cds")
def test_help_shows_real_placeholders(command: list[str]) -> None:
    """Usage lines and option rows read PATH, N, ID, not typer's {PATH} or <list[str]>."""
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert not re.search(r"<(?:list|str|int|bool|float|path|text|int range)[^>]*>", result.stdout)
    assert not re.search(r"\{[A-Z]+\}", result.stdout)


def test_usage_lines_name_the_arguments() -> None:
    """The placeholders each command's help text explains."""
    assert "Usage: ivig-cds evaluate [OPTIONS] PATH...\n" in run("evaluate", "-h").stdout
    assert "Usage: ivig-cds batch [OPTIONS] INPUT\n" in run("batch", "-h").stdout
    assert "--workers N " in run("batch", "-h").stdout
    assert "Usage: ivig-cds rules show [OPTIONS] ID\n" in run("rules", "show", "-h").stdout
