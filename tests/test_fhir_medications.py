"""First-line therapy as a whole, judged per class, and later therapies, from medication records."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from ivig_cds import Evaluator, Tier
from ivig_cds.fhir import evaluate_fhir, patient_from_fhir
from tests.fhir_records import (
    ADVERSE_REACTION,
    ATC,
    INTOLERANCE,
    NO_RESPONSE,
    RRMS_SCT,
    RXNORM,
    SCT,
    bundle,
    condition,
    statement,
)

AS_OF = dt.date(2026, 11, 22)
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "fhir"
IFN_1A = (RXNORM, "75917", "interferon beta-1a")
PEG_IFN = (ATC, "L03AB13", "Peginterferon beta-1a")
GLATIRAMER = (RXNORM, "214582", "glatiramer acetate")
COPAXONE = (SCT, "9246601000001104", "Copaxone")


def test_one_class_intolerant_the_other_never_tried_leaves_first_line_unknown(
    evaluator: Evaluator,
) -> None:
    """Interferon beta-1b stopped for intolerance, glatiramer acetate never tried: not
    'not_tolerated'; unknown, the note naming glatiramer acetate; C13b indeterminate."""
    data = json.loads(
        (EXAMPLES / "rrms-interferon-intolerant-glatiramer-never-tried.json").read_text()
    )
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.first_line_dmt is None
    assert (
        "first_line_dmt left unknown: interferon beta not tolerated (MedicationStatement/ifn), "
        "but glatiramer acetate is unaccounted for (never recorded, or stopped without a "
        "reason); first-line therapy as a whole is judged over both classes"
    ) in mapping.notes
    result = evaluator.evaluate(mapping.patient)
    assert (result.tier, result.primary_rule) == (Tier.INDETERMINATE, "C13b")
    assert "first_line_dmt" in result.missing_data


def test_both_classes_not_tolerated_is_not_tolerated_as_a_whole(evaluator: Evaluator) -> None:
    """ATC-coded interferon (treatment not tolerated) and RxNorm glatiramer (adverse reaction)
    both stopped: first-line therapy as a whole is not tolerated; C02a second-line."""
    data = json.loads((EXAMPLES / "rrms-first-line-not-tolerated.json").read_text())
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.first_line_dmt == "not_tolerated"
    assert mapping.sources["first_line_dmt"] == (
        "MedicationStatement/ga",
        "MedicationStatement/ifn",
    )
    result = evaluate_fhir(data, evaluator=evaluator, as_of=AS_OF)
    assert (result.tier, result.primary_rule) == (Tier.SECOND_LINE, "C02a")


def test_different_reasons_take_the_more_cautious_value_and_say_so() -> None:
    """Peginterferon without response and glatiramer not tolerated: 'ineffective' (C02b's lower
    certainty), with a note naming both reasons."""
    data = bundle(
        condition("rrms", *RRMS_SCT),
        statement("peg", *PEG_IFN, status="stopped", reason=NO_RESPONSE),
        statement("ga", *GLATIRAMER, status="completed", reason=INTOLERANCE),
    )
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.first_line_dmt == "ineffective"
    assert (
        "first_line_dmt ineffective: both first-line classes are excluded (glatiramer acetate "
        "not tolerated; interferon beta ineffective); the more cautious value is used"
    ) in mapping.notes


@pytest.mark.parametrize("drug", [GLATIRAMER, COPAXONE])
def test_an_active_class_is_suitable_even_after_the_other_failed(
    drug: tuple[str, str, str],
) -> None:
    """Interferon stopped for intolerance, glatiramer (ingredient or UK brand) active: suitable."""
    data = bundle(
        condition("rrms", *RRMS_SCT),
        statement("ifn", *IFN_1A, status="stopped", reason=INTOLERANCE),
        statement("ga", *drug),
    )
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.first_line_dmt == "suitable"
    assert mapping.sources["first_line_dmt"] == ("MedicationStatement/ga",)


def test_a_stop_without_a_reason_leaves_the_class_open() -> None:
    """Interferon intolerant, glatiramer stopped with no reason: still unknown."""
    data = bundle(
        condition("rrms", *RRMS_SCT),
        statement("ifn", *IFN_1A, status="stopped", reason=ADVERSE_REACTION),
        statement("ga", *GLATIRAMER, status="stopped"),
    )
    assert patient_from_fhir(data, as_of=AS_OF).patient.first_line_dmt is None


def test_a_later_therapy_in_use_sets_other_dmt_in_use(evaluator: Evaluator) -> None:
    """Ocrelizumab (RxNorm) active: other_dmt_in_use from that statement (a stopped fingolimod
    is not), and the result carries caution K9."""
    data = bundle(
        condition("rrms", *RRMS_SCT),
        statement("ocr", RXNORM, "1876366", "ocrelizumab"),
        statement("fty", ATC, "L04AA27", "Fingolimod", status="stopped"),
    )
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.other_dmt_in_use is True
    assert mapping.sources["other_dmt_in_use"] == ("MedicationStatement/ocr",)
    result = evaluate_fhir(data, evaluator=evaluator, as_of=AS_OF)
    assert "K9" in [c.rule_id for c in result.cautions]


def test_no_later_therapy_on_record_leaves_other_dmt_in_use_unknown() -> None:
    """Absence of a record is not a 'no': other_dmt_in_use stays unknown."""
    data = bundle(condition("rrms", *RRMS_SCT), statement("ga", *GLATIRAMER))
    assert patient_from_fhir(data, as_of=AS_OF).patient.other_dmt_in_use is None
