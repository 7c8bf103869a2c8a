"""First-line therapy per class (the core derives the whole), and later therapies, from
medication records."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from ivig_cds import Evaluator, FirstLineByClass, Tier
from ivig_cds._patient import first_line_as_a_whole
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
    """Interferon beta-1b stopped for intolerance, glatiramer acetate never tried: the class is
    known, the whole unknown (the note names glatiramer acetate); C13b indeterminate."""
    data = json.loads(
        (EXAMPLES / "rrms-interferon-intolerant-glatiramer-never-tried.json").read_text()
    )
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.first_line_by_class == FirstLineByClass(interferon_beta="not_tolerated")
    assert mapping.patient.first_line_dmt is None
    assert first_line_as_a_whole(mapping.patient) is None
    assert (
        "first-line therapy as a whole left unknown: interferon-beta not tolerated "
        "(MedicationStatement/ifn), but glatiramer acetate is unaccounted for (never recorded, "
        "or stopped without a reason); the whole is judged over both classes"
    ) in mapping.notes
    result = evaluator.evaluate(mapping.patient)
    assert (result.tier, result.primary_rule) == (Tier.INDETERMINATE, "C13b")
    assert "first_line_dmt" in result.missing_data


def test_both_classes_not_tolerated_is_not_tolerated_as_a_whole(evaluator: Evaluator) -> None:
    """ATC-coded interferon (treatment not tolerated) and RxNorm glatiramer (adverse reaction)
    both stopped: first-line therapy as a whole is not tolerated; C02a second-line."""
    data = json.loads((EXAMPLES / "rrms-first-line-not-tolerated.json").read_text())
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.first_line_by_class == FirstLineByClass(
        interferon_beta="not_tolerated", glatiramer_acetate="not_tolerated"
    )
    assert first_line_as_a_whole(mapping.patient) == "not_tolerated"
    assert mapping.sources["first_line_by_class"] == (
        "MedicationStatement/ga",
        "MedicationStatement/ifn",
    )
    result = evaluate_fhir(data, evaluator=evaluator, as_of=AS_OF)
    assert (result.tier, result.primary_rule) == (Tier.SECOND_LINE, "C02a")


def test_different_reasons_take_the_more_cautious_value_and_say_so() -> None:
    """Peginterferon without response and glatiramer not tolerated: each class keeps its own
    reason; the whole is 'ineffective' (C02b's lower certainty), with a note naming both."""
    data = bundle(
        condition("rrms", *RRMS_SCT),
        statement("peg", *PEG_IFN, status="stopped", reason=NO_RESPONSE),
        statement("ga", *GLATIRAMER, status="completed", reason=INTOLERANCE),
    )
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.first_line_by_class == FirstLineByClass(
        interferon_beta="ineffective", glatiramer_acetate="not_tolerated"
    )
    assert first_line_as_a_whole(mapping.patient) == "ineffective"
    assert (
        "first-line therapy as a whole counts as ineffective: both classes are excluded for "
        "different reasons (glatiramer acetate not tolerated; interferon-beta ineffective), and "
        "the more cautious finding is used"
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
    assert mapping.patient.first_line_by_class == FirstLineByClass(
        interferon_beta="not_tolerated", glatiramer_acetate="suitable"
    )
    assert first_line_as_a_whole(mapping.patient) == "suitable"
    assert mapping.sources["first_line_by_class.glatiramer_acetate"] == ("MedicationStatement/ga",)
    assert mapping.sources["first_line_by_class"] == (
        "MedicationStatement/ga",
        "MedicationStatement/ifn",
    )


def test_a_stop_without_a_reason_leaves_the_class_open() -> None:
    """Interferon intolerant, glatiramer stopped with no reason: glatiramer and the whole stay
    unknown."""
    data = bundle(
        condition("rrms", *RRMS_SCT),
        statement("ifn", *IFN_1A, status="stopped", reason=ADVERSE_REACTION),
        statement("ga", *GLATIRAMER, status="stopped"),
    )
    p = patient_from_fhir(data, as_of=AS_OF).patient
    assert p.first_line_by_class == FirstLineByClass(interferon_beta="not_tolerated")
    assert first_line_as_a_whole(p) is None


def test_a_later_therapy_in_use_sets_other_dmt_in_use() -> None:
    """Ocrelizumab (RxNorm) active: other_dmt_in_use from that statement (a stopped fingolimod
    is not)."""
    data = bundle(
        condition("rrms", *RRMS_SCT),
        statement("ocr", RXNORM, "1876366", "ocrelizumab"),
        statement("fty", ATC, "L04AA27", "Fingolimod", status="stopped"),
    )
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.other_dmt_in_use is True
    assert mapping.sources["other_dmt_in_use"] == ("MedicationStatement/ocr",)


def test_no_later_therapy_on_record_leaves_other_dmt_in_use_unknown() -> None:
    """Absence of a record is not a 'no': other_dmt_in_use stays unknown."""
    data = bundle(condition("rrms", *RRMS_SCT), statement("ga", *GLATIRAMER))
    assert patient_from_fhir(data, as_of=AS_OF).patient.other_dmt_in_use is None


def test_each_class_keeps_its_own_value() -> None:
    """Active interferon beside a glatiramer allergy: interferon suitable, glatiramer not
    tolerated, each with its own sources; the whole is suitable."""
    allergy = {
        "resourceType": "AllergyIntolerance",
        "id": "ai-ga",
        "patient": {"reference": "Patient/p"},
        "code": {"coding": [{"system": RXNORM, "code": "214582"}]},
    }
    data = bundle(condition("rrms", *RRMS_SCT), statement("ifn", *IFN_1A), allergy)
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.first_line_by_class == FirstLineByClass(
        interferon_beta="suitable", glatiramer_acetate="not_tolerated"
    )
    assert mapping.sources["first_line_by_class.interferon_beta"] == ("MedicationStatement/ifn",)
    assert mapping.sources["first_line_by_class.glatiramer_acetate"] == (
        "AllergyIntolerance/ai-ga",
    )
    assert mapping.patient.first_line_dmt is None
    assert first_line_as_a_whole(mapping.patient) == "suitable"


def test_a_class_with_two_reasons_takes_ineffective_and_says_so() -> None:
    """Interferon stopped once without response and once for intolerance: the class counts as
    ineffective (the cautious order), noted; glatiramer never tried leaves the whole unknown."""
    data = bundle(
        condition("rrms", *RRMS_SCT),
        statement("ifn-1", *IFN_1A, status="stopped", reason=INTOLERANCE),
        statement("ifn-2", *PEG_IFN, status="stopped", reason=NO_RESPONSE),
    )
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.first_line_by_class == FirstLineByClass(interferon_beta="ineffective")
    assert first_line_as_a_whole(mapping.patient) is None
    assert (
        "interferon-beta is recorded both ineffective and not tolerated (MedicationStatement/"
        "ifn-1, MedicationStatement/ifn-2); counted as ineffective, the more cautious finding"
    ) in mapping.notes


def test_an_active_class_recorded_as_not_tolerated_counts_as_not_tolerated() -> None:
    """Glatiramer still active although an earlier statement stopped it for intolerance: the
    class counts as not tolerated, and the note says so in clinical words."""
    data = bundle(
        condition("rrms", *RRMS_SCT),
        statement("ga-old", *GLATIRAMER, status="stopped", reason=INTOLERANCE),
        statement("ga-now", *COPAXONE),
        statement("ifn", *IFN_1A, status="stopped", reason=INTOLERANCE),
    )
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.first_line_by_class == FirstLineByClass(
        interferon_beta="not_tolerated", glatiramer_acetate="not_tolerated"
    )
    assert (
        "MedicationStatement/ga-now: glatiramer acetate is active although "
        "MedicationStatement/ga-old records it not tolerated; counted as not tolerated"
    ) in mapping.notes


def test_no_first_line_record_leaves_the_classes_unknown() -> None:
    """No interferon or glatiramer on record: first_line_by_class stays unknown, no source."""
    mapping = patient_from_fhir(bundle(condition("rrms", *RRMS_SCT)), as_of=AS_OF)
    assert mapping.patient.first_line_by_class is None
    assert "first_line_by_class" not in mapping.sources


@pytest.mark.parametrize(
    "resources",
    [
        [statement("ifn", *IFN_1A, status="stopped", reason=INTOLERANCE)],
        [
            statement("peg", *PEG_IFN, status="stopped", reason=NO_RESPONSE),
            statement("ga", *GLATIRAMER, status="completed", reason=INTOLERANCE),
        ],
        [
            statement("ga-old", *GLATIRAMER, status="stopped", reason=INTOLERANCE),
            statement("ga-now", *GLATIRAMER),
        ],
    ],
)
def test_first_line_notes_name_no_field(resources: list[dict[str, object]]) -> None:
    """Notes about first-line therapy speak of classes and the whole, never of field names."""
    notes = patient_from_fhir(bundle(condition("rrms", *RRMS_SCT), *resources), as_of=AS_OF).notes
    first_line = [n for n in notes if "first-line" in n or "interferon" in n or "glatiramer" in n]
    assert first_line
    assert not any("first_line" in n or "_dmt" in n for n in first_line)


# IVIG already being given (`ivig_in_use`): the window is 8 weeks (rules/record-windows.yaml).
IVIG_SCT = {"coding": [{"system": SCT, "code": "714569001"}]}
IVIG_ATC = {"coding": [{"system": ATC, "code": "J06BA02"}]}


def _given(aid: str, when: str, status: str = "completed") -> dict[str, object]:
    return {
        "resourceType": "MedicationAdministration",
        "id": aid,
        "status": status,
        "medicationCodeableConcept": IVIG_SCT,
        "subject": {"reference": "Patient/p"},
        "effectiveDateTime": when,
    }


def _ordered(oid: str, *, status: str = "active", intent: str = "order", **more: object) -> dict:
    return {
        "resourceType": "MedicationRequest",
        "id": oid,
        "status": status,
        "intent": intent,
        "medicationCodeableConcept": IVIG_ATC,
        "subject": {"reference": "Patient/p"},
        "authoredOn": "2026-10-01",
        **more,
    }


def test_ivig_given_three_weeks_ago_is_in_use() -> None:
    """An IVIG administration 3 weeks before the evaluation date sets ivig_in_use."""
    mapping = patient_from_fhir(bundle(_given("a1", "2026-11-01")), as_of=AS_OF)
    assert mapping.patient.ivig_in_use is True
    assert mapping.sources["ivig_in_use"] == ("MedicationAdministration/a1",)


def test_ivig_given_ten_weeks_ago_is_not_in_use_and_is_noted() -> None:
    """An administration 10 weeks back leaves ivig_in_use unknown (never false), noted with its
    date; an older one is not the one named."""
    data = bundle(_given("a-old", "2026-05-01"), _given("a1", "2026-09-13"))
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.ivig_in_use is None
    assert "ivig_in_use" not in mapping.sources
    assert (
        "MedicationAdministration/a1: IVIG last given on 2026-09-13 (over 8 weeks before "
        "2026-11-22); not counted as in use"
    ) in mapping.notes
    assert not any("a-old" in n for n in mapping.notes)


def test_an_active_ivig_order_is_in_use() -> None:
    """An active IVIG order without an end sets ivig_in_use, whatever its date."""
    mapping = patient_from_fhir(bundle(_ordered("o1", authoredOn="2025-01-01")), as_of=AS_OF)
    assert mapping.patient.ivig_in_use is True
    assert mapping.sources["ivig_in_use"] == ("MedicationRequest/o1",)


@pytest.mark.parametrize(
    ("order", "in_use"),
    [
        (_ordered("o1", intent="plan"), True),
        (_ordered("o1", dispenseRequest={"validityPeriod": {"end": "2026-10-20"}}), True),
        (_ordered("o1", status="completed"), None),
        (_ordered("o1", status="draft"), None),
        (_ordered("o1", intent="proposal"), None),
        (_ordered("o1", status="entered-in-error"), None),
    ],
)
def test_only_active_orders_within_the_window_count(order: dict, in_use: bool | None) -> None:
    """A plan counts like an order, and so does one whose validity ended inside the window; a
    completed, draft, proposed or erroneous order does not."""
    assert patient_from_fhir(bundle(order), as_of=AS_OF).patient.ivig_in_use is in_use


def test_an_ivig_order_that_ended_long_ago_is_noted() -> None:
    """An active order whose dosage period ended in June is not in use; the note says when."""
    timing = {"timing": {"repeat": {"boundsPeriod": {"start": "2026-03-01", "end": "2026-06-30"}}}}
    order = _ordered("o1", dosageInstruction=[timing])
    mapping = patient_from_fhir(bundle(order), as_of=AS_OF)
    assert mapping.patient.ivig_in_use is None
    assert (
        "MedicationRequest/o1: IVIG order ended on 2026-06-30 (over 8 weeks before 2026-11-22); "
        "not counted as in use"
    ) in mapping.notes


@pytest.mark.parametrize(
    ("status", "effective", "in_use"),
    [
        ("active", {"effectivePeriod": {"start": "2025-01-01"}}, True),
        ("completed", {"effectivePeriod": {"start": "2026-08-01", "end": "2026-10-15"}}, True),
        ("completed", {"effectiveDateTime": "2026-08-01"}, None),
        ("intended", {"effectiveDateTime": "2026-11-20"}, None),
        ("not-taken", {"effectiveDateTime": "2026-11-20"}, None),
    ],
)
def test_ivig_statements_count_when_active_or_recent(
    status: str, effective: dict[str, object], in_use: bool | None
) -> None:
    """A MedicationStatement counts when active, or when its period ends within the window;
    intended or not-taken IVIG does not."""
    ivig = {
        "resourceType": "MedicationStatement",
        "id": "s1",
        "status": status,
        "medicationCodeableConcept": IVIG_SCT,
        "subject": {"reference": "Patient/p"},
        **effective,
    }
    assert patient_from_fhir(bundle(ivig), as_of=AS_OF).patient.ivig_in_use is in_use


def test_an_in_progress_infusion_counts_and_a_not_done_one_does_not() -> None:
    """In progress today, or a period known only by its end: in use. Not done: not counted."""
    running = patient_from_fhir(bundle(_given("a1", "2026-11-22", "in-progress")), as_of=AS_OF)
    assert running.patient.ivig_in_use is True
    skipped = patient_from_fhir(bundle(_given("a1", "2026-11-20", "not-done")), as_of=AS_OF)
    assert skipped.patient.ivig_in_use is None
    ended = _given("a2", "2026-11-20")
    del ended["effectiveDateTime"]
    ended["effectivePeriod"] = {"end": "2026-11-20"}
    assert patient_from_fhir(bundle(ended), as_of=AS_OF).patient.ivig_in_use is True


@pytest.mark.parametrize(
    ("when", "note"),
    [
        ("2026-11", "IVIG without a usable date"),
        ("2026-12-01", "IVIG dated after 2026-11-22"),
    ],
)
def test_ivig_with_a_partial_or_later_date_is_not_counted(when: str, note: str) -> None:
    """A month-only date, or one after the evaluation date, leaves ivig_in_use unknown; the
    note names the resource."""
    mapping = patient_from_fhir(bundle(_given("a1", when)), as_of=AS_OF)
    assert mapping.patient.ivig_in_use is None
    assert f"MedicationAdministration/a1: {note}; not counted as in use" in mapping.notes


def test_ivig_named_by_a_referenced_medication_is_read() -> None:
    """An administration whose drug is a shared Medication (ATC J06BA02) counts, as in
    ivig_given."""
    medication = {"resourceType": "Medication", "id": "ivig", "code": IVIG_ATC}
    given = _given("a1", "2026-11-10")
    del given["medicationCodeableConcept"]
    given["medicationReference"] = {"reference": "Medication/ivig"}
    mapping = patient_from_fhir(bundle(medication, given), as_of=AS_OF)
    assert mapping.patient.ivig_in_use is True
