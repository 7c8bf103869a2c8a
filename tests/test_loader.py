"""Loading the knowledge base: the shipped one is valid; broken ones fail with located errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ivig_cds import KnowledgeBaseError, load_knowledge_base
from ivig_cds._loader import default_dirs

REPO = Path(__file__).resolve().parents[1]

C99 = """\
id: C99
version: 1
kind: conclusion
title: A test conclusion
questions: [disease_modifying]
precedence: 99
when:
  ms_phenotype: RRMS
tier: second_line
summary: A test summary.
rationale: A test rationale.
certainty: {level: low, reason: A test.}
evidence: [pmid-12453069]
provenance:
  spec: test
  passages: [{seed: 002_5688a4feca6d758d.txt, quote: "meta-analysis"}]
  reviewed: 2026-11-22
"""


def _copy_kb(tmp_path: Path) -> tuple[Path, Path]:
    rules, evidence = tmp_path / "rules", tmp_path / "evidence"
    shutil.copytree(REPO / "rules", rules)
    shutil.copytree(REPO / "evidence", evidence)
    return rules, evidence


def _errors(rules: Path, evidence: Path) -> list[str]:
    with pytest.raises(KnowledgeBaseError) as caught:
        load_knowledge_base(rules, evidence)
    root = str(rules.parent) + "/"
    return [str(issue).replace(root, "") for issue in caught.value.issues]


def _with_rule(tmp_path: Path, text: str) -> list[str]:
    rules, evidence = _copy_kb(tmp_path)
    (rules / "conclusions" / "C99-test.yaml").write_text(text, encoding="utf-8")
    return _errors(rules, evidence)


def test_shipped_knowledge_base_loads(kb: object) -> None:
    """The repository's own rules and evidence validate (dogfood)."""
    loaded = load_knowledge_base(REPO / "rules", REPO / "evidence")
    assert len(loaded.conclusions) == 21
    assert len(loaded.cautions) == 13
    assert len(loaded.evidence) == 16
    assert loaded.content_hash.startswith("sha256:")


def test_default_location_finds_the_knowledge_base() -> None:
    """Without arguments the shipped knowledge base is found (wheel or checkout)."""
    rules, evidence = default_dirs()
    assert (rules / "knowledge-base.yaml").is_file()
    assert evidence.is_dir()
    assert load_knowledge_base().version == load_knowledge_base(rules, evidence).version


def test_content_hash_changes_with_content(tmp_path: Path) -> None:
    """Editing a rule changes the knowledge base's content hash."""
    rules, evidence = _copy_kb(tmp_path)
    before = load_knowledge_base(rules, evidence).content_hash
    path = rules / "conclusions" / "C05-spms.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("version: 2", "version: 3"))
    assert load_knowledge_base(rules, evidence).content_hash != before


def test_valid_extra_rule_loads(tmp_path: Path) -> None:
    """The C99 template used below is itself valid, so each test isolates one fault."""
    rules, evidence = _copy_kb(tmp_path)
    (rules / "conclusions" / "C99-test.yaml").write_text(C99, encoding="utf-8")
    assert load_knowledge_base(rules, evidence).rule("C99").precedence == 99


def test_bad_enum_value_is_located_with_suggestion(tmp_path: Path) -> None:
    """A misspelt tier points at its line and suggests the nearest tier."""
    errors = _with_rule(tmp_path, C99.replace("tier: second_line", "tier: second-line"))
    assert errors == [
        "rules/conclusions/C99-test.yaml:9:1: tier: Input should be 'second_line', "
        "'not_first_line', 'insufficient_evidence', 'not_recommended', 'indeterminate', "
        "'outside_evidence' or 'not_applicable'; got 'second-line'; did you mean 'second_line'?"
    ]


def test_unknown_key_and_missing_field_are_all_reported(tmp_path: Path) -> None:
    """Every problem of a file is reported at once, each at its own line."""
    text = C99.replace("rationale: A test rationale.\n", "").replace("title:", "titel:")
    errors = _with_rule(tmp_path, text)
    assert errors == [
        "rules/conclusions/C99-test.yaml:1:1: title: required field is missing",
        "rules/conclusions/C99-test.yaml:1:1: rationale: required field is missing",
        "rules/conclusions/C99-test.yaml:4:1: titel: unknown field; did you mean 'title'?",
    ]


def test_summary_longer_than_a_card_is_rejected(tmp_path: Path) -> None:
    """A summary over 140 characters cannot become a CDS card and is refused."""
    errors = _with_rule(tmp_path, C99.replace("A test summary.", "x" * 141))
    assert errors == [
        "rules/conclusions/C99-test.yaml:10:1: summary: String should have at most 140 "
        "characters; got '" + "x" * 141 + "'"
    ]


def test_condition_on_unknown_field_suggests_the_real_one(tmp_path: Path) -> None:
    """A condition naming a field the patient context lacks fails at load, with a hint."""
    errors = _with_rule(tmp_path, C99.replace("  ms_phenotype: RRMS", "  ms_phenotyp: RRMS"))
    assert errors == [
        "rules/conclusions/C99-test.yaml:8:3: when.ms_phenotyp: 'ms_phenotyp' is not a "
        "patient-context field; did you mean 'ms_phenotype'?"
    ]


def test_condition_with_illegal_value_fails(tmp_path: Path) -> None:
    """A condition value outside the field's vocabulary fails at load."""
    errors = _with_rule(
        tmp_path, C99.replace("  ms_phenotype: RRMS", "  ms_phenotype: {in: [RRMS, MS]}")
    )
    assert errors == [
        "rules/conclusions/C99-test.yaml:8:3: when.ms_phenotype: 'MS' is not a legal value: "
        "Input should be 'CIS', 'RRMS', 'SPMS', 'PPMS' or 'not_ms'"
    ]


def test_condition_with_two_operators_fails(tmp_path: Path) -> None:
    """A condition must say exactly one thing."""
    text = C99.replace("  ms_phenotype: RRMS", "  ms_phenotype: {equals: RRMS, unknown: true}")
    errors = _with_rule(tmp_path, text)
    assert errors == [
        "rules/conclusions/C99-test.yaml:8:3: when.ms_phenotype: a condition takes exactly one "
        "of: a value, 'in: [..]', 'unknown: true', 'not_empty: true', or a bound "
        "('at_least: n', 'at_most: n', or both)"
    ]


def test_a_bound_on_a_field_that_is_not_a_number_fails(tmp_path: Path) -> None:
    """`at_most` compares numbers; on a text field it would never mean anything."""
    errors = _with_rule(
        tmp_path, C99.replace("  ms_phenotype: RRMS", "  ms_phenotype: {at_most: 3}")
    )
    assert errors == [
        "rules/conclusions/C99-test.yaml:8:3: when.ms_phenotype: 'at_least'/'at_most' apply to "
        "number fields only (age_years, edss, weeks_postpartum)"
    ]


def test_a_bound_outside_the_fields_range_and_crossed_bounds_fail(tmp_path: Path) -> None:
    """A bound the field can never take is an error, and so is at_least above at_most."""
    text = C99.replace(
        "  ms_phenotype: RRMS", "  ms_phenotype: RRMS\n  weeks_postpartum: {at_most: 500}"
    )
    errors = _with_rule(tmp_path, text)
    assert errors == [
        "rules/conclusions/C99-test.yaml:9:3: when.weeks_postpartum: 500 is not a legal value: "
        "Input should be less than or equal to 104"
    ]
    text = C99.replace("  ms_phenotype: RRMS", "  weeks_postpartum: {at_least: 13, at_most: 12}")
    assert _with_rule(tmp_path / "crossed", text) == [
        "rules/conclusions/C99-test.yaml:8:3: when.weeks_postpartum: 'at_least: 13' is above "
        "'at_most: 12'; no value can satisfy both"
    ]


def test_a_judged_tier_must_grade_its_certainty(tmp_path: Path) -> None:
    """`not_graded` is for conclusions that make no claim (C12, C13), not for a tier."""
    text = C99.replace("{level: low, reason: A test.}", "{level: not_graded, reason: A test.}")
    errors = _with_rule(tmp_path, text)
    assert errors == [
        "rules/conclusions/C99-test.yaml:1:1: file: a 'second_line' conclusion weighs evidence "
        "and must grade its certainty (high, moderate, low or very_low)"
    ]


def test_any_of_conditions_are_checked_at_their_own_line(tmp_path: Path) -> None:
    """A caution's alternative situations are validated like its `when`."""
    rules, evidence = _copy_kb(tmp_path)
    path = rules / "cautions" / "K1-thromboembolism.yaml"
    text = path.read_text(encoding="utf-8").replace(
        "  - pregnancy_status: pregnant", "  - pregnancy: pregnant"
    )
    path.write_text(text, encoding="utf-8")
    assert _errors(rules, evidence) == [
        "rules/cautions/K1-thromboembolism.yaml:8:5: any_of.1.pregnancy: 'pregnancy' is not a "
        "patient-context field; did you mean 'pregnancy_status'?"
    ]


def test_not_asked_must_name_a_patient_field(tmp_path: Path) -> None:
    rules, evidence = _copy_kb(tmp_path)
    path = rules / "knowledge-base.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("field: pregnancy_status", "field: pregnant")
    )
    assert _errors(rules, evidence) == [
        "rules/knowledge-base.yaml:10:5: not_asked.0.field: 'pregnant' is not a patient-context "
        "field; did you mean 'pregnancy_status'?"
    ]


def test_dangling_citation_is_reported_with_suggestion(tmp_path: Path) -> None:
    """Citing evidence that does not exist fails at the citation's own line."""
    errors = _with_rule(tmp_path, C99.replace("[pmid-12453069]", "[pmid-12453096]"))
    assert errors == [
        "rules/conclusions/C99-test.yaml:13:12: evidence.0: cites 'pmid-12453096', which is not "
        "in the evidence registry; did you mean 'pmid-12453069'?"
    ]


def test_duplicate_rule_id_is_reported(tmp_path: Path) -> None:
    """Two rules may not share an id."""
    errors = _with_rule(tmp_path, C99.replace("id: C99", "id: C05"))
    assert errors == [
        "rules/conclusions/C99-test.yaml:1:1: id: rule id 'C05' is already used by "
        + str(tmp_path / "rules" / "conclusions" / "C05-spms.yaml").replace(str(tmp_path) + "/", "")
    ]


def test_clashing_precedence_is_reported(tmp_path: Path) -> None:
    """Two conclusions answering one question cannot share a precedence."""
    errors = _with_rule(tmp_path, C99.replace("precedence: 99", "precedence: 40"))
    assert len(errors) == 1
    assert errors[0].startswith("rules/conclusions/C99-test.yaml:6:1: precedence: 40 for ")
    assert "is already held by C01" in errors[0]


def test_duplicate_yaml_key_is_rejected(tmp_path: Path) -> None:
    """A key written twice is an error, not a silent override."""
    errors = _with_rule(tmp_path, C99 + "tier: not_recommended\n")
    assert errors == ["rules/conclusions/C99-test.yaml:18:1: duplicate key 'tier'"]


def test_yaml_alias_is_rejected(tmp_path: Path) -> None:
    """Anchors and aliases are refused (they enable billion-laughs bombs)."""
    text = C99.replace("title: A test conclusion", "title: &t A test conclusion").replace(
        "summary: A test summary.", "summary: *t"
    )
    errors = _with_rule(tmp_path, text)
    assert errors == [
        "rules/conclusions/C99-test.yaml:10:10: YAML aliases (*name) are not allowed; "
        "write the value out"
    ]


def test_malformed_yaml_is_located(tmp_path: Path) -> None:
    """A syntax error reports the line where the parser stopped."""
    errors = _with_rule(tmp_path, C99.replace("questions: [disease_modifying]", "questions: [x"))
    assert errors == [
        "rules/conclusions/C99-test.yaml:6:11: invalid YAML: expected ',' or ']', but got ':'"
    ]


def test_orphan_evidence_and_file_name_mismatch(tmp_path: Path) -> None:
    """Evidence nobody cites, or filed under another name, is reported."""
    rules, evidence = _copy_kb(tmp_path)
    text = (evidence / "pmid-12453069.yaml").read_text(encoding="utf-8")
    (evidence / "pmid-99999999.yaml").write_text(
        text.replace("id: pmid-12453069", "id: pmid-99999999").replace(
            'pmid: "12453069"', 'pmid: "99999999"'
        ),
        encoding="utf-8",
    )
    (evidence / "renamed.yaml").write_text(
        text.replace("id: pmid-12453069", "id: pmid-88888888"), encoding="utf-8"
    )
    errors = _errors(rules, evidence)
    assert errors == [
        "evidence/renamed.yaml:1:1: id: 'pmid-88888888' must match the file name 'renamed'; "
        "rename the file to pmid-88888888.yaml",
        "evidence/pmid-99999999.yaml:1:1: id: evidence 'pmid-99999999' is cited by no rule; "
        "cite it or mark it 'background: true'",
        "evidence/renamed.yaml:1:1: id: evidence 'pmid-88888888' is cited by no rule; "
        "cite it or mark it 'background: true'",
    ]


def test_missing_folders_and_manifest(tmp_path: Path) -> None:
    """Absent folders or an absent manifest are named plainly."""
    errors = _errors(tmp_path / "nope-rules", tmp_path / "nope-evidence")
    assert errors == [
        "nope-rules: rules folder not found",
        "nope-evidence: evidence folder not found",
    ]
    rules, evidence = _copy_kb(tmp_path)
    (rules / "knowledge-base.yaml").unlink()
    assert _errors(rules, evidence) == [
        "rules/knowledge-base.yaml: missing; it names and versions the knowledge base"
    ]


def test_non_mapping_and_empty_files(tmp_path: Path) -> None:
    """A file that is empty or a list is refused with what was expected."""
    rules, evidence = _copy_kb(tmp_path)
    (rules / "conclusions" / "C98-empty.yaml").write_text("", encoding="utf-8")
    (rules / "conclusions" / "C99-list.yaml").write_text("- a\n- b\n", encoding="utf-8")
    assert _errors(rules, evidence) == [
        "rules/conclusions/C98-empty.yaml: file is empty; expected a mapping",
        "rules/conclusions/C99-list.yaml:1:1: expected a mapping at the top, got a list",
    ]


def test_invalid_evidence_entry_is_located(tmp_path: Path) -> None:
    """A malformed PMID, an unknown design and a bad year are each reported at their line.

    The rules citing the broken entry are not also reported as citing a missing one.
    """
    rules, evidence = _copy_kb(tmp_path)
    path = evidence / "pmid-14760960.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace('pmid: "14760960"', 'pmid: "PMID14760960"')
    text = text.replace("design: pilot_rct_stopped_at_interim", "design: pilot_rct")
    text = text.replace("year: 2004", "year: 204")
    path.write_text(text, encoding="utf-8")
    assert _errors(rules, evidence) == [
        "evidence/pmid-14760960.yaml:2:1: pmid: String should match pattern '^[0-9]{6,9}$'; "
        "got 'PMID14760960'",
        "evidence/pmid-14760960.yaml:17:1: year: Input should be greater than or equal to 1900; "
        "got 204",
        "evidence/pmid-14760960.yaml:22:1: design: Input should be 'meta_analysis', "
        "'double_blind_rct', 'randomized_placebo_controlled_trial', 'rct_secondary_analysis', "
        "'single_blind_randomized', 'pilot_rct_stopped_at_interim', "
        "'open_label_uncontrolled_series', 'narrative_review', 'animal_data_review' or "
        "'unattributed_secondary_summary'; got 'pilot_rct'; did you mean "
        "'pilot_rct_stopped_at_interim'?",
    ]


def test_operator_that_cannot_apply_to_its_field_fails(tmp_path: Path) -> None:
    """`not_empty` on a scalar field and `unknown` on an always-known fact are refused."""
    text = C99.replace(
        "  ms_phenotype: RRMS", "  ms_phenotype: {not_empty: true}\n  question: {unknown: true}"
    )
    assert _with_rule(tmp_path, text) == [
        "rules/conclusions/C99-test.yaml:8:3: when.ms_phenotype: 'not_empty' applies to list "
        "fields only (thromboembolic_risk_factors)",
        "rules/conclusions/C99-test.yaml:9:3: when.question: 'question' is always known; "
        "'unknown: true' can never hold",
    ]


def test_content_hash_covers_the_record_windows(tmp_path: Path) -> None:
    """The FHIR adapter's answer windows are knowledge-base data: editing one changes the hash."""
    rules, evidence = _copy_kb(tmp_path)
    before = load_knowledge_base(rules, evidence).content_hash
    path = rules / "record-windows.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("weeks: 4\n", "weeks: 5\n"))
    assert load_knowledge_base(rules, evidence).content_hash != before


def test_a_passage_naming_an_unknown_or_foreign_work_is_located(tmp_path: Path) -> None:
    """A passage's work must be in the registry and read from the passage's own document."""
    rules, evidence = _copy_kb(tmp_path)
    c06 = rules / "conclusions" / "C06-ppms.yaml"
    text = c06.read_text(encoding="utf-8")
    first = text.index("work: ")
    end = text.index("\n", first)
    c06.write_text(text[:first] + "work: pmid-99999999" + text[end:], encoding="utf-8")
    (problem,) = _errors(rules, evidence)
    assert "provenance.passages.0.work: 'pmid-99999999' is not in the evidence registry" in problem
    assert problem.startswith("rules/conclusions/C06-ppms.yaml:")
    c06.write_text(text[:first] + "work: pmid-12453069" + text[end:], encoding="utf-8")
    (problem,) = _errors(rules, evidence)
    assert "'pmid-12453069' was read from 002_5688a4feca6d758d.txt, not from" in problem
