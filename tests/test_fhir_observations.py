"""Dated answers age by what they say; the windows are knowledge-base data with reasons."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ivig_cds import Evaluator, Tier
from ivig_cds.fhir import patient_from_fhir
from tests.fhir_records import RRMS_SCT, SCT, bundle, condition, observation

AS_OF = dt.date(2026, 11, 22)
PREGNANCY = "82810-3"
PREGNANT, NOT_PREGNANT = "LA15173-0", "LA26683-5"
DUE_DATE = "11778-8"


@pytest.mark.parametrize(("days_ago", "status"), [(27, "not_pregnant"), (29, None)])
def test_a_not_pregnant_answer_counts_for_four_weeks(days_ago: int, status: str | None) -> None:
    """'Not pregnant' recorded 27 days ago holds; 29 days ago it says nothing about today."""
    when = (AS_OF - dt.timedelta(days=days_ago)).isoformat()
    data = bundle(
        condition("rrms", *RRMS_SCT), observation("o", PREGNANCY, when, answer=NOT_PREGNANT)
    )
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.pregnancy_status == status
    if status is None:
        assert "Observation/o: a 'not pregnant' answer older than 4 weeks; not used" in (
            mapping.notes
        )


def test_a_pregnant_answer_still_counts_after_four_weeks() -> None:
    """'Pregnant' recorded 20 weeks ago still holds (its window is 42 weeks)."""
    when = (AS_OF - dt.timedelta(weeks=20)).isoformat()
    data = bundle(condition("rrms", *RRMS_SCT), observation("o", PREGNANCY, when, answer=PREGNANT))
    assert patient_from_fhir(data, as_of=AS_OF).patient.pregnancy_status == "pregnant"


def test_a_pregnancy_ends_at_the_recorded_due_date() -> None:
    """'Pregnant' 30 weeks ago with a due date 2 weeks ago: the answer no longer counts."""
    data = bundle(
        condition("rrms", *RRMS_SCT),
        observation("preg", PREGNANCY, "2026-04-27", answer=PREGNANT),
        observation("edd", DUE_DATE, "2026-04-27", value_date="2026-11-08"),
    )
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.pregnancy_status is None
    assert (
        "Observation/preg: 'pregnant' answer not used after the due date recorded in "
        "Observation/edd"
    ) in mapping.notes


def test_a_due_date_still_ahead_keeps_the_pregnancy() -> None:
    """A due date in the future leaves the 'pregnant' answer standing."""
    data = bundle(
        condition("rrms", *RRMS_SCT),
        observation("preg", PREGNANCY, "2026-10-01", answer=PREGNANT),
        observation("edd", DUE_DATE, "2026-10-01", value_date="2027-04-20"),
    )
    assert patient_from_fhir(data, as_of=AS_OF).patient.pregnancy_status == "pregnant"


def test_a_breastfeeding_mother_at_week_20_reaches_the_breastfeeding_finding(
    evaluator: Evaluator,
) -> None:
    """Delivery 20 weeks ago, 'currently breastfeeding' answered last week: the adapter reports
    week 20 and the rules (not the adapter) decide: C10c, second line."""
    data = bundle(
        condition("rrms", *RRMS_SCT),
        _delivery("birth", (AS_OF - dt.timedelta(weeks=20)).isoformat()),
        observation(
            "bf", "63895-7", (AS_OF - dt.timedelta(days=7)).isoformat(), answer="LA29252-6"
        ),
    )
    mapping = patient_from_fhir(data, as_of=AS_OF)
    p = mapping.patient
    assert (p.pregnancy_status, p.weeks_postpartum, p.breastfeeding) == ("postpartum", 20, True)
    result = evaluator.evaluate(p)
    assert (result.tier, result.primary_rule) == (Tier.SECOND_LINE, "C10c")


def _delivery(pid: str, when: str) -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": pid,
        "status": "completed",
        "code": {"coding": [{"system": SCT, "code": "236973005", "display": "Delivery procedure"}]},
        "subject": {"reference": "Patient/p"},
        "performedDateTime": when,
    }
