"""Differential tests: durable_rules and the plain-Python oracle fire exactly the same rules.

CI runs a few thousand generated patients per property; `pytest --slow` runs 100,000.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivig_cds import (
    Evaluator,
    FirstLineStatus,
    IntendedUse,
    KnowledgeBase,
    MSPhenotype,
    PregnancyStatus,
    Sex,
    Tier,
)
from ivig_cds._evaluate import _Durable, derived_facts, infer_question
from ivig_cds._patient import known_fields
from ivig_cds._patient_input import parse_patient
from ivig_cds._reference import ReferenceMatcher

from .strategies import mixed_patients, patients

CI_EXAMPLES = 2_000
FULL_EXAMPLES = 100_000
_SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}


@pytest.fixture(scope="module")
def engines(kb: KnowledgeBase) -> dict[str, tuple[_Durable, ReferenceMatcher]]:
    return {
        "conclusions": (_Durable(kb.conclusions), ReferenceMatcher(kb.conclusions)),
        "cautions": (_Durable(kb.cautions), ReferenceMatcher(kb.cautions)),
    }


def _facts(data: dict[str, Any], *, ivig_ordered: bool = False) -> dict[str, object]:
    patient = parse_patient(data)
    question = infer_question(patient)
    derived = derived_facts(patient, question, ivig_ordered=ivig_ordered)
    return {**known_fields(patient), **derived}


def _agree(engines: dict[str, tuple[_Durable, ReferenceMatcher]], facts: dict[str, object]) -> None:
    durable, oracle = engines["conclusions"]
    fired = durable.match(facts)
    assert fired == oracle.match(facts)
    # Cautions see the result too; try every tier and rule so each caution path is exercised.
    durable, oracle = engines["cautions"]
    for primary in sorted(fired) or ["none"]:
        for tier in Tier:
            with_result = {**facts, "tier": tier, "primary_rule": primary}
            assert durable.match(with_result) == oracle.match(with_result)


@settings(max_examples=CI_EXAMPLES, **_SETTINGS)
@given(data=patients(), ordered=st.booleans())
def test_durable_and_oracle_fire_the_same_rules(
    engines: dict[str, tuple[_Durable, ReferenceMatcher]], data: dict[str, Any], ordered: bool
) -> None:
    """For valid v3 patients (classes, IVIG in use, exceptions) both matchers fire alike."""
    _agree(engines, _facts(data, ivig_ordered=ordered))


@pytest.mark.slow
@settings(max_examples=FULL_EXAMPLES, **_SETTINGS)
@given(data=patients(), ordered=st.booleans())
def test_durable_and_oracle_fire_the_same_rules_100k(
    engines: dict[str, tuple[_Durable, ReferenceMatcher]], data: dict[str, Any], ordered: bool
) -> None:
    """The same, over 100,000 random v3 patients (`--slow`)."""
    _agree(engines, _facts(data, ivig_ordered=ordered))


def _raw_facts() -> st.SearchStrategy[dict[str, object]]:
    """Facts no validator vetted: every field from its domain, consistent or not."""
    domains: dict[str, st.SearchStrategy[Any]] = {
        "question": st.sampled_from(list(IntendedUse)),
        "relapse_ongoing": st.booleans(),
        "acute_relapse": st.booleans(),
        "other_dmt_in_use": st.booleans(),
        "ivig_in_use": st.booleans(),
        "ivig_ordered": st.booleans(),
        "on_iv_methylprednisolone": st.booleans(),
        "breastfeeding": st.booleans(),
        "weeks_postpartum": st.integers(0, 104),
        "age_years": st.integers(0, 130),
        "edss": st.integers(0, 20).map(lambda i: i / 2),
        "thromboembolic_risk_factors": st.lists(st.just("x"), max_size=2).map(tuple),
    }
    for name, enum in (
        ("ms_phenotype", MSPhenotype),
        ("intended_use", IntendedUse),
        ("first_line_dmt", FirstLineStatus),
        ("pregnancy_status", PregnancyStatus),
        ("sex", Sex),
    ):
        domains[name] = st.sampled_from(list(enum))
    return st.fixed_dictionaries({}, optional=domains)


@settings(max_examples=CI_EXAMPLES, **_SETTINGS)
@given(facts=_raw_facts())
def test_durable_and_oracle_agree_on_unvalidated_facts(
    engines: dict[str, tuple[_Durable, ReferenceMatcher]], facts: dict[str, object]
) -> None:
    """The two matchers mean the same thing even for combinations the validator forbids."""
    _agree(engines, facts)


def test_the_reference_engine_gives_identical_recommendations(kb: KnowledgeBase) -> None:
    """End to end, durable and the oracle produce byte-identical results for 2,000 patients."""
    durable = Evaluator(kb)
    reference = Evaluator(kb, engine="reference")
    for i, data in enumerate(mixed_patients(2_000, seed=11)):
        ordered = i % 3 == 0
        assert (
            durable.evaluate(data, ivig_ordered=ordered).model_dump_json()
            == reference.evaluate(data, ivig_ordered=ordered).model_dump_json()
        )


def test_an_unknown_engine_is_refused(kb: KnowledgeBase) -> None:
    with pytest.raises(ValueError, match="engine: expected 'durable' or 'reference', got 'drools'"):
        Evaluator(kb, engine="drools")
