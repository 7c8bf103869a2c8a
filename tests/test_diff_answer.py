"""The compact answers `ivig-cds diff` compares, and what it reports as changed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import pickle

from ivig_cds import Evaluator, KnowledgeBase
from ivig_cds._records import evaluate_line
from ivig_cds.diff import Answer, Compared, PairAuditor, PairRecordEvaluator, compare
from ivig_cds.diff._answer import parse_transition, transition_key

SECOND_LINE = Answer(
    tier="second_line",
    primary_rule="C02a",
    certainty="low",
    cautions=("K2", "K8"),
    missing_data=("pregnancy_status",),
    secondary_rules=(),
)


def test_identical_answers_are_no_change() -> None:
    """Two answers equal on every aspect compare as unchanged (None)."""
    assert compare(SECOND_LINE, SECOND_LINE) is None


def test_every_aspect_that_differs_is_named_with_what_came_and_went() -> None:
    """Tier, rule and certainty are named; list aspects also say what was added and removed."""
    after = Answer(
        tier="outside_evidence",
        primary_rule="C14",
        certainty="not_graded",
        cautions=("K8", "K11"),
        missing_data=("pregnancy_status", "age_years"),
        secondary_rules=("C02a",),
    )
    change = compare(SECOND_LINE, after)
    assert change is not None
    assert change.changed == (
        "tier",
        "primary_rule",
        "certainty",
        "cautions",
        "missing_data",
        "secondary_rules",
    )
    assert change.added == {
        "cautions": ("K11",),
        "missing_data": ("age_years",),
        "secondary_rules": ("C02a",),
    }
    assert change.removed == {"cautions": ("K2",)}


def test_order_of_cautions_alone_is_no_change() -> None:
    """The same cautions in another order are the same answer."""
    shuffled = dataclasses.replace(SECOND_LINE, cautions=("K8", "K2"))
    assert compare(SECOND_LINE, shuffled) is None


def test_aspects_the_population_audit_does_not_record_are_not_compared() -> None:
    """Judgements from a Bulk Data export carry tier, rule and missing data: only those count."""
    old = Answer.from_judged({"tier": "insufficient_evidence", "primary_rule": "C06"})
    new = Answer.from_judged({"tier": "insufficient_evidence", "primary_rule": "C06"})
    assert compare(old, new) is None
    moved = Answer.from_judged({"tier": "not_recommended", "primary_rule": "C06"})
    change = compare(old, moved)
    assert change is not None and change.changed == ("tier",)


def test_a_whole_recommendation_and_batch_audit_line_give_the_same_answer(
    evaluator: Evaluator,
) -> None:
    """`Answer.of` a recommendation equals `Answer.from_compact` of batch's line for it."""
    patient = {"ms_phenotype": "RRMS", "first_line_dmt": "not_tolerated", "sex": "female"}
    rec = evaluator.evaluate(patient)
    line = evaluate_line(evaluator, 1, json.dumps(patient).encode())
    assert Answer.of(rec) == Answer.from_compact(json.loads(line.json))


def test_a_spooled_item_reads_back_the_same() -> None:
    """A changed item written to a group file and read back is the same item."""
    item = Compared(
        unit="dose",
        source="export",
        patient="p1",
        dose={"kind": "order", "resource": "MedicationRequest/1", "date": "2025-01-02"},
        old=Answer.from_judged({"tier": "insufficient_evidence", "primary_rule": "C06"}),
        new=Answer.unanswered("no rule settles the question"),
        context=None,
    )
    assert Compared.from_spool(item.spool()) == item


def test_transitions_round_trip_with_no_answer() -> None:
    """A transition key keeps "no answer" (None) apart from every tier."""
    for pair in (("second_line", None), (None, None), ("indeterminate", "outside_evidence")):
        assert parse_transition(transition_key(*pair)) == pair


def test_the_record_functions_are_picklable(kb: KnowledgeBase) -> None:
    """Both per-record functions cross process boundaries (batch pools, Spark executors)."""
    for function in (
        PairRecordEvaluator((None, None), (kb.rules_dir, kb.evidence_dir)),
        PairAuditor(dt.date(2026, 1, 1), old=(None, None), new=(kb.rules_dir, kb.evidence_dir)),
    ):
        assert pickle.loads(pickle.dumps(function)) == function
