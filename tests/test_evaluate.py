"""evaluate(): the contract EHR glue code relies on."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings

from ivig_cds import (
    IntendedUse,
    InvalidPatientError,
    KnowledgeBase,
    KnowledgeGapError,
    PatientContext,
    Recommendation,
    Tier,
    evaluate,
    load_knowledge_base,
)
from ivig_cds._evaluate import Evaluator, infer_question

from .conftest import REPO
from .strategies import patients

RRMS_INTOLERANT = {"ms_phenotype": "RRMS", "first_line_dmt": "not_tolerated", "sex": "female"}


def test_accepts_model_or_mapping() -> None:
    """A PatientContext and the equivalent mapping give the same result."""
    model = PatientContext.model_validate(RRMS_INTOLERANT)
    assert evaluate(model) == evaluate(RRMS_INTOLERANT)


def test_same_input_same_json_bytes() -> None:
    """The JSON of a result is byte-for-byte stable across calls."""
    first = evaluate(RRMS_INTOLERANT).model_dump_json()
    assert all(evaluate(RRMS_INTOLERANT).model_dump_json() == first for _ in range(20))


def test_same_json_bytes_across_processes() -> None:
    """A fresh interpreter (new hash seed) produces the identical JSON document."""
    code = (
        "import sys; from ivig_cds import evaluate;"
        "sys.stdout.write(evaluate({'ms_phenotype':'RRMS','first_line_dmt':'not_tolerated',"
        "'sex':'female'}).model_dump_json())"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            check=True,
            text=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert outputs == {evaluate(RRMS_INTOLERANT).model_dump_json()}


def test_result_carries_knowledge_base_identity(evaluator: Evaluator) -> None:
    """Every result names the knowledge base version and content hash it came from."""
    result = evaluator.evaluate(RRMS_INTOLERANT)
    assert result.knowledge_base.version == evaluator.knowledge_base.version
    assert result.knowledge_base.content_hash == evaluator.knowledge_base.content_hash


def test_citations_have_pubmed_links() -> None:
    """A cited work with a PMID links to its PubMed page; one without has no link."""
    result = evaluate({"ms_phenotype": "SPMS"})
    esims = next(c for c in result.citations if c.pmid == "15451222")
    assert esims.url == "https://pubmed.ncbi.nlm.nih.gov/15451222/"
    review = next(c for c in result.citations if c.id == "seed001-review")
    assert (review.pmid, review.url) == (None, None)


def test_finding_lists_the_facts_that_fired_it() -> None:
    """The primary finding shows each tested fact with the patient's value."""
    result = evaluate(
        {"ms_phenotype": "RRMS", "acute_relapse": True, "on_iv_methylprednisolone": True}
    )
    primary = result.findings[0]
    assert (primary.rule_id, primary.role) == ("C07", "primary")
    assert [(f.field, f.value) for f in primary.facts] == [
        ("relapse_ongoing", True),
        ("ms_phenotype", "RRMS"),
        ("on_iv_methylprednisolone", True),
    ]


def test_secondary_finding_keeps_its_own_question() -> None:
    """A disease-modifying finding reported beside an acute-relapse answer says so."""
    result = evaluate(
        {
            "ms_phenotype": "RRMS",
            "acute_relapse": True,
            "on_iv_methylprednisolone": False,
            "first_line_dmt": "suitable",
        }
    )
    assert [(f.rule_id, f.role, f.question) for f in result.findings] == [
        ("C08", "primary", IntendedUse.ACUTE_RELAPSE),
        ("C01", "secondary", IntendedUse.DISEASE_MODIFYING),
    ]


@pytest.mark.parametrize(
    ("data", "use", "inferred"),
    [
        ({}, "disease_modifying", True),
        ({"acute_relapse": False}, "disease_modifying", True),
        ({"acute_relapse": True}, "acute_relapse", True),
        ({"acute_relapse": True, "intended_use": "fixed_deficits"}, "fixed_deficits", False),
    ],
)
def test_question_is_inferred_only_when_not_given(
    data: dict[str, object], use: str, inferred: bool
) -> None:
    """The caller's intended use wins; otherwise a relapse means acute_relapse."""
    question = infer_question(PatientContext.model_validate(data))
    assert (question.intended_use, question.inferred) == (use, inferred)


def test_invalid_mapping_raises_before_any_rule_runs() -> None:
    """evaluate() refuses inconsistent input instead of answering."""
    with pytest.raises(InvalidPatientError, match="edss"):
        evaluate({"ms_phenotype": "RRMS", "edss": 10.5})


def test_result_is_frozen() -> None:
    """A Recommendation cannot be altered after the fact."""
    result = evaluate({"ms_phenotype": "SPMS"})
    with pytest.raises(ValueError, match="frozen"):
        result.tier = Tier.SECOND_LINE  # type: ignore[misc]


def test_no_dose_is_ever_prescribed() -> None:
    """Dosing appears only as a caution that the dose is not established."""
    result = evaluate(RRMS_INTOLERANT)
    dosing = next(c for c in result.cautions if c.rule_id == "K3")
    assert "does not recommend one" in dosing.text
    assert "g/kg" not in result.summary + result.rationale


def test_gap_in_rules_is_an_error_not_an_answer(kb: KnowledgeBase) -> None:
    """If no rule answers the question, evaluation fails loudly instead of guessing."""
    trimmed = Evaluator(
        KnowledgeBase(
            manifest=kb.manifest,
            conclusions=tuple(r for r in kb.conclusions if r.id != "C05"),
            cautions=kb.cautions,
            evidence=kb.evidence,
            content_hash=kb.content_hash,
            rules_dir=kb.rules_dir,
            evidence_dir=kb.evidence_dir,
        )
    )
    with pytest.raises(KnowledgeGapError, match=r"no rule of knowledge base 3\.0\.0 settles"):
        trimmed.evaluate({"ms_phenotype": "SPMS", "patient_id": "secret-id"})
    # A fact that fired nothing leaves nothing behind that could disturb the next evaluation.
    assert trimmed.evaluate({"ms_phenotype": "PPMS"}).primary_rule == "C06"


@settings(max_examples=300, deadline=None)
@given(patients())
def test_any_valid_patient_gets_one_tier_and_citations(data: dict[str, object]) -> None:
    """Exactly one primary finding; citations unless the tier makes no claim from the evidence."""
    result = evaluate(data)
    primaries = [f for f in result.findings if f.role == "primary"]
    assert len(primaries) == 1
    assert primaries[0].tier == result.tier
    assert primaries[0].rule_id == result.primary_rule
    if result.tier not in (Tier.INDETERMINATE, Tier.OUTSIDE_EVIDENCE, Tier.NOT_APPLICABLE):
        assert result.citations
    if result.tier is Tier.INDETERMINATE:
        assert result.missing_data
    assert len(result.summary) <= 140
    assert primaries[0].question == result.question.intended_use


@settings(max_examples=200, deadline=None)
@given(patients())
def test_evaluation_is_deterministic(data: dict[str, object]) -> None:
    """Evaluating twice gives identical JSON."""
    assert evaluate(data).model_dump_json() == evaluate(data).model_dump_json()


@settings(max_examples=200, deadline=None)
@given(patients())
def test_result_json_round_trips(data: dict[str, object]) -> None:
    """A result's JSON parses and re-validates to an equal result."""
    result = evaluate(data)
    assert Recommendation.model_validate(json.loads(result.model_dump_json())) == result


@settings(max_examples=1_000, deadline=None)
@given(patients())
def test_spec_v3_invariants_hold_for_any_valid_patient(data: dict[str, object]) -> None:
    """The postpartum bounds, C1/C4 exceptions, C14/C15, K1, K8, K11-K13, the dated headline,
    asked facts and unused facts (knowledge spec v3), for every generated patient."""
    result = evaluate(data)
    fired = {f.rule_id for f in result.findings}
    cautions = {c.rule_id for c in result.cautions}
    weeks = data.get("weeks_postpartum")
    status = data.get("pregnancy_status")
    if isinstance(weeks, int) and weeks > 52:
        assert not fired & {"C10a", "C10b", "C10c"}
    if isinstance(weeks, int) and weeks > 12 and data.get("breastfeeding") is not True:
        assert not fired & {"C10a", "C10b", "C10c"}
    in_window = status == "pregnant" or fired & {"C10a", "C10b", "C10c"}
    if in_window:
        assert not fired & {"C01", "C04"}
    judged = result.tier is not Tier.NOT_APPLICABLE
    assert ("K8" in cautions) == judged
    assert ("K11" in cautions) == judged
    age = data.get("age_years")
    child = isinstance(age, int) and age < 18
    has_course = data.get("ms_phenotype") in ("CIS", "RRMS", "SPMS", "PPMS")
    assert (result.primary_rule == "C15") == (child and has_course)
    if result.tier is Tier.OUTSIDE_EVIDENCE:
        assert result.primary_rule in ("C14", "C15")
        assert not result.citations
    assert ("K13" in cautions) == ("C03b" in fired)
    ivig = data.get("ivig_in_use") is True
    assert ("K12a" in cautions) == (ivig and result.tier is Tier.SECOND_LINE)
    assert ("K12c" in cautions) == (ivig and result.tier is Tier.OUTSIDE_EVIDENCE)
    if status == "pregnant":
        assert "K1" in cautions
    if result.tier in (Tier.SECOND_LINE, Tier.NOT_FIRST_LINE):
        assert "2002-2008" in result.summary
    if result.tier is Tier.SECOND_LINE and "thromboembolic_risk_factors" not in data:
        assert "thromboembolic_risk_factors" in result.missing_data
    for finding in result.findings:
        if finding.tier is Tier.INDETERMINATE:
            unknown = {f.field for f in finding.facts if f.value is None}
            assert unknown <= set(result.missing_data)
    if has_course and age is None and result.primary_rule not in ("C12",):
        assert "age_years" in result.missing_data
    assert set(result.unused_facts) <= {"edss"}
    assert ("edss" in result.unused_facts) == ("edss" in data)
    if isinstance(age, int) and age >= 55:
        assert "pregnancy_status" not in result.missing_data


def test_unused_facts_follow_the_loaded_rules(tmp_path: Path) -> None:
    """`unused_facts` is computed: a knowledge base whose rule reads EDSS no longer lists it."""
    rules, evidence = tmp_path / "rules", tmp_path / "evidence"
    shutil.copytree(REPO / "rules", rules)
    shutil.copytree(REPO / "evidence", evidence)
    k7 = rules / "cautions" / "K7-uncontrolled-progressive-signal.yaml"
    k7.write_text(
        k7.read_text(encoding="utf-8").replace(
            "  primary_rule: {in: [C05, C06]}",
            "  primary_rule: {in: [C05, C06]}\n  edss: {at_least: 6}",
        ),
        encoding="utf-8",
    )
    edited = Evaluator(load_knowledge_base(rules, evidence))
    patient = {"ms_phenotype": "SPMS", "edss": 6.5}
    assert evaluate(patient).unused_facts == ("edss",)
    result = edited.evaluate(patient)
    assert result.unused_facts == ()
    assert "K7" in {c.rule_id for c in result.cautions}
    assert "K7" not in {c.rule_id for c in edited.evaluate({**patient, "edss": 5.5}).cautions}
