"""The decision flows (report/flow.py) and their SVG (report/svg.py), read from the rules."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from ivig_cds import Evaluator, KnowledgeBase, load_knowledge_base
from ivig_cds._patient_input import parse_patient
from ivig_cds._vocabulary import IntendedUse
from ivig_cds.report.flow import (
    PatientPath,
    flows,
    patient_facts,
    patient_path,
    question_flow,
    settled_facts,
)
from ivig_cds.report.svg import describe, draw_flow
from tests.strategies import patients

REPO = Path(__file__).resolve().parents[1]


def _svg(markup: str) -> ET.Element:
    return ET.fromstring(markup.replace(' xmlns="http://www.w3.org/2000/svg"', "", 1))


def _rules_of(svg: ET.Element, kind: str) -> list[str]:
    return [
        g.attrib["data-rule"]
        for g in svg.iter("g")
        if kind in g.attrib.get("class", "").split() and "data-rule" in g.attrib
    ]


def test_each_question_lists_its_conclusions_in_precedence_order(kb: KnowledgeBase) -> None:
    """A flow is every conclusion answering the question, lowest precedence first."""
    for flow in flows(kb):
        answering = sorted(
            (r for r in kb.conclusions if flow.question in r.questions), key=lambda r: r.precedence
        )
        assert flow.rule_ids == tuple(r.id for r in answering)
        assert [s.number for s in flow.steps] == list(range(1, len(flow.steps) + 1))


def test_shipped_disease_modifying_flow_starts_with_the_settling_rules(kb: KnowledgeBase) -> None:
    """No MS diagnosis, unknown phenotype, a child (v3: C15) and SPMS come before the rest."""
    flow = question_flow(kb, IntendedUse.DISEASE_MODIFYING)
    assert flow.rule_ids[:4] == ("C12", "C13a", "C15", "C05")
    steps = {step.rule.id: [a.words for a in step.asks] for step in flow.steps}
    assert steps["C12"] == ["there is no MS diagnosis"]
    assert steps["C13a"] == ["MS course is not known"]
    assert steps["C15"][-1] == "age is at most 17 years"
    assert steps["C05"] == ["MS course is secondary progressive MS (SPMS)"]


def test_unless_groups_are_part_of_a_step(kb: KnowledgeBase) -> None:
    """C01 (v3) does not apply in pregnancy or the postpartum window: its step lists those
    situations, drawn and described as "unless ... or ..."."""
    flow = question_flow(kb, IntendedUse.DISEASE_MODIFYING)
    c01 = next(step for step in flow.steps if step.rule.id == "C01")
    groups = [[a.words for a in group] for group in c01.unless]
    assert groups[0] == ["pregnant"]
    assert ["postpartum", "weeks since delivery is at most 12"] in groups
    svg = _svg(draw_flow(flow))
    node = next(
        g for g in svg.iter("g") if g.get("data-rule") == "C01" and "decision" in g.get("class", "")
    )
    lines = ["".join(t.itertext()) for t in node.iter("text")]
    assert "unless pregnant" in lines
    assert "or postpartum and weeks since delivery is at most 12" in lines
    assert ", unless pregnant; or postpartum and weeks since delivery" in describe(flow)


def test_an_exception_a_question_settles_is_dropped(tmp_path: Path) -> None:
    """An `unless` group on the question itself: in its own flow the rule is unreachable; in
    another flow the group can never hold and is not drawn."""
    rules, evidence = tmp_path / "rules", tmp_path / "evidence"
    shutil.copytree(REPO / "rules", rules)
    shutil.copytree(REPO / "evidence", evidence)
    c05 = next((rules / "conclusions").glob("C05-*.yaml"))
    text = c05.read_text()
    assert "\nunless:" not in text
    c05.write_text(text.replace("\ntier:", "\nunless:\n  - question: fixed_deficits\ntier:", 1))
    kb = load_knowledge_base(rules, evidence)
    assert "C05" not in question_flow(kb, IntendedUse.FIXED_DEFICITS).rule_ids
    relapse = question_flow(kb, IntendedUse.ACUTE_RELAPSE)
    assert next(s for s in relapse.steps if s.rule.id == "C05").unless == ()


def test_a_condition_on_the_question_is_not_asked_again(kb: KnowledgeBase) -> None:
    """C07 tests the question; in the acute-relapse flow that condition holds and is not drawn."""
    flow = question_flow(kb, IntendedUse.ACUTE_RELAPSE)
    for step in flow.steps:
        assert all(ask.field != "question" for ask in step.asks)
    c07 = next(s for s in flow.steps if s.rule.id == "C07")
    assert [a.field for a in c07.asks] == ["ms_phenotype", "on_iv_methylprednisolone"]


@pytest.fixture
def edited_kb(tmp_path: Path) -> KnowledgeBase:
    """A copy in which C02a is checked before C01 and C09 also claims the disease question."""
    rules, evidence = tmp_path / "rules", tmp_path / "evidence"
    shutil.copytree(REPO / "rules", rules)
    shutil.copytree(REPO / "evidence", evidence)
    c02a = next((rules / "conclusions").glob("C02a-*.yaml"))
    c02a.write_text(c02a.read_text().replace("precedence: 41", "precedence: 39"))
    c09 = next((rules / "conclusions").glob("C09-*.yaml"))
    c09.write_text(
        c09.read_text()
        .replace("questions: [fixed_deficits]", "questions: [fixed_deficits, disease_modifying]")
        .replace("precedence: 40", "precedence: 50")
    )
    return load_knowledge_base(rules, evidence)


def test_an_edited_knowledge_base_draws_its_own_flow(edited_kb: KnowledgeBase) -> None:
    """Changing a precedence reorders the drawing; a rule unreachable for a question is left out."""
    flow = question_flow(edited_kb, IntendedUse.DISEASE_MODIFYING)
    assert flow.rule_ids.index("C02a") < flow.rule_ids.index("C01")
    assert "C09" not in flow.rule_ids  # its `question: fixed_deficits` condition never holds here
    drawn = _rules_of(_svg(draw_flow(flow)), "outcome")
    assert drawn == list(flow.rule_ids)


def test_svg_names_every_conclusion_with_tier_word_and_certainty(kb: KnowledgeBase) -> None:
    """Each outcome node shows its rule id, its tier in words and its certainty."""
    flow = question_flow(kb, IntendedUse.DISEASE_MODIFYING)
    svg = _svg(draw_flow(flow))
    outcomes = {
        g.attrib["data-rule"]: " ".join(t.text or "" for t in g.iter("text"))
        for g in svg.iter("g")
        if "outcome" in g.attrib.get("class", "").split()
    }
    assert set(outcomes) == set(flow.rule_ids)
    assert outcomes["C05"].startswith("Not recommended C05 · Secondary progressive MS")
    assert outcomes["C05"].endswith("Certainty: moderate")
    assert "Second-line option" in outcomes["C02a"]
    assert "Certainty: not graded" in outcomes["C13a"]


def test_svg_has_a_title_and_a_description_for_readers(kb: KnowledgeBase) -> None:
    """The diagram is labelled by its <title> and <desc>, which spell the whole flow out."""
    flow = question_flow(kb, IntendedUse.FIXED_DEFICITS)
    svg = _svg(draw_flow(flow))
    title, desc = svg.find("title"), svg.find("desc")
    assert title is not None and desc is not None
    assert svg.attrib["aria-labelledby"] == f"{title.attrib['id']} {desc.attrib['id']}"
    assert title.text == "Decision flow: improving chronic, stable visual or motor deficits"
    assert desc.text == describe(flow)
    cis = r"Step [0-9]+: if MS course is clinically isolated syndrome \(CIS\)"
    assert re.search(cis, desc.text or "")
    assert "then rule C09" in (desc.text or "")


def test_links_point_at_rule_pages_only_when_asked(kb: KnowledgeBase) -> None:
    """The site links each conclusion to its page; a patient's page draws no link."""
    flow = question_flow(kb, IntendedUse.ACUTE_RELAPSE)
    linked = _svg(draw_flow(flow, link=lambda rule_id: f"rules/{rule_id}.html"))
    assert [a.attrib["href"] for a in linked.iter("a")] == [
        f"rules/{rule_id}.html" for rule_id in flow.rule_ids
    ]
    assert list(_svg(draw_flow(flow)).iter("a")) == []


def _path_for(evaluator: Evaluator, patient: dict[str, object]) -> tuple[str, PatientPath]:
    context = parse_patient(patient)
    result = evaluator.evaluate(context)
    flow = question_flow(evaluator.knowledge_base, result.question.intended_use)
    facts = patient_facts(context, result.question)
    return result.primary_rule, patient_path(flow, facts, result.primary_rule)


def test_patient_path_ends_at_the_primary_rule(evaluator: Evaluator) -> None:
    """The steps before the deciding rule are passed, the rest not reached."""
    primary, path = _path_for(
        evaluator, {"ms_phenotype": "RRMS", "first_line_dmt": "not_tolerated", "sex": "female"}
    )
    assert primary == "C02a"
    verdicts = {r.step.rule.id: r.verdict for r in path.results}
    ids = path.flow.rule_ids
    assert path.on_path == ids[: ids.index("C02a") + 1]
    assert path.on_path[:4] == ("C12", "C13a", "C15", "C05")
    assert verdicts["C02a"] == "applies"
    assert verdicts["C01"] == "does_not_apply"
    assert verdicts["C13b"] == "not_reached"


def test_patient_path_says_which_fact_decided_each_step(evaluator: Evaluator) -> None:
    """An unknown pregnancy status reads 'not known'; a different phenotype reads 'no'."""
    _, path = _path_for(
        evaluator, {"ms_phenotype": "RRMS", "first_line_dmt": "not_tolerated", "sex": "female"}
    )
    results = {r.step.rule.id: r for r in path.results}
    c11 = [(a.ask.words, a.value, a.held) for a in results["C11"].answers]
    assert c11 == [
        (
            "MS course is relapsing-remitting MS (RRMS) or clinically isolated syndrome (CIS)",
            "relapsing-remitting MS (RRMS)",
            True,
        ),
        ("pregnant", "not known", None),
    ]
    c05 = [(a.value, a.held) for a in results["C05"].answers]
    assert c05 == [("relapsing-remitting MS (RRMS)", False)]


def test_patient_path_refuses_a_rule_outside_the_flow(kb: KnowledgeBase) -> None:
    """A result from another question cannot be drawn on this flow."""
    flow = question_flow(kb, IntendedUse.FIXED_DEFICITS)
    with pytest.raises(ValueError, match="rule C02a does not answer the question 'fixed_deficits'"):
        patient_path(flow, {}, "C02a")


def test_svg_marks_exactly_the_path(evaluator: Evaluator) -> None:
    """on-path: the passed steps, their 'no' arrows, the deciding 'yes' and its conclusion."""
    primary, path = _path_for(evaluator, {"ms_phenotype": "SPMS", "intended_use": "acute_relapse"})
    assert primary == "C05"
    svg = _svg(draw_flow(path.flow, path=path))

    def on(kind: str) -> list[str]:
        return [
            g.attrib["data-rule"]
            for g in svg.iter("g")
            if {kind, "on-path"} <= set(g.attrib.get("class", "").split())
            and "data-rule" in g.attrib
        ]

    assert on("decision") == ["C12", "C13a", "C15", "C05"]
    assert on("outcome") == ["C05"]
    assert on("yes") == ["C05"]
    assert on("no") == ["C12", "C13a", "C15"]


def test_settled_facts_of_each_question() -> None:
    """The question settles itself; asked about the relapse, the relapse counts as ongoing."""
    assert settled_facts(IntendedUse.ACUTE_RELAPSE) == {
        "question": IntendedUse.ACUTE_RELAPSE,
        "relapse_ongoing": True,
    }
    assert settled_facts(IntendedUse.DISEASE_MODIFYING) == {
        "question": IntendedUse.DISEASE_MODIFYING
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(patient=patients())
def test_the_drawn_path_agrees_with_the_engine(
    evaluator: Evaluator, patient: dict[str, Any]
) -> None:
    """For any valid patient, the step the engine's result ends at is the first step of the
    drawn flow whose conditions all hold for the patient's facts: drawing and engine agree."""
    primary, path = _path_for(evaluator, patient)
    for result in path.results:
        if result.verdict == "applies":
            assert result.holds, (patient, result.step.rule.id)
        elif result.verdict == "does_not_apply":
            assert not result.holds, (patient, result.step.rule.id)
    assert path.on_path[-1] == primary
