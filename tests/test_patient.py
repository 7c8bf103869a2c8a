"""Patient validation: inconsistent or malformed input is refused with the field named."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from ivig_cds import InvalidPatientError, PatientContext, evaluate, parse_patient
from ivig_cds._patient import first_line_as_a_whole

SECRET = "PATIENT-SECRET-0042"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"sex": "male", "pregnancy_status": "pregnant"},
            ["pregnancy_status: 'pregnant' contradicts sex 'male'; correct one of them"],
        ),
        (
            {"sex": "male", "breastfeeding": True},
            ["breastfeeding: true contradicts sex 'male'; correct one of them"],
        ),
        (
            {"weeks_postpartum": 4, "pregnancy_status": "pregnant"},
            [
                "weeks_postpartum: given but pregnancy_status is 'pregnant'; it needs "
                "pregnancy_status 'postpartum'"
            ],
        ),
        (
            {"thromboembolic_risk_factors": ["obesity", "None."]},
            [
                "thromboembolic_risk_factors.1: names no risk factor; when none is recorded give "
                "an empty list [] (and leave the field out when unknown) (got 'None.')"
            ],
        ),
        (
            {"acute_relapse": False, "on_iv_methylprednisolone": True},
            [
                "on_iv_methylprednisolone: true contradicts acute_relapse false (IV "
                "methylprednisolone is recorded for a current relapse); correct one of them"
            ],
        ),
        (
            {
                "first_line_dmt": "suitable",
                "first_line_by_class": {
                    "interferon_beta": "not_tolerated",
                    "glatiramer_acetate": "declined",
                },
            },
            [
                "first_line_dmt: 'suitable' contradicts first_line_by_class (interferon_beta "
                "'not_tolerated', glatiramer_acetate 'declined'); give the classes alone, or make "
                "them agree"
            ],
        ),
        (
            {"first_line_by_class": {"interferon": "suitable"}},
            ["first_line_by_class.'interferon': unknown field; did you mean 'interferon_beta'?"],
        ),
        (
            {"first_line_by_class": ["suitable"]},
            [
                "first_line_by_class: expected a mapping of interferon_beta and "
                "glatiramer_acetate (got a list)"
            ],
        ),
        ({"edss": 11}, ["edss: Input should be less than or equal to 10 (got 11)"]),
        ({"edss": -0.5}, ["edss: Input should be greater than or equal to 0 (got -0.5)"]),
        ({"edss": 3.3}, ["edss: must be from 0 to 10 in steps of 0.5 (got 3.3)"]),
        ({"edss": float("nan")}, ["edss: Input should be a finite number (got nan)"]),
        ({"age_years": -1}, ["age_years: Input should be greater than or equal to 0 (got -1)"]),
        ({"ms_phenotyp": "RRMS"}, ["'ms_phenotyp': unknown field; did you mean 'ms_phenotype'?"]),
        (
            {"ms_phenotype": "rrms"},
            [
                "ms_phenotype: Input should be 'CIS', 'RRMS', 'SPMS', 'PPMS' or 'not_ms' "
                "(got 'rrms')"
            ],
        ),
        (
            {"first_line_dmt": "intolerant"},
            [
                "first_line_dmt: Input should be 'suitable', 'not_tolerated', 'contraindicated', "
                "'declined' or 'ineffective' (got 'intolerant')"
            ],
        ),
        ({"acute_relapse": "yes"}, ["acute_relapse: Input should be a valid boolean (got 'yes')"]),
        ({"edss": "6.5"}, ["edss: Input should be a valid number (got '6.5')"]),
        (
            {"intended_use": "acute_relapse", "acute_relapse": False},
            ["intended_use: 'acute_relapse' contradicts acute_relapse false; correct one of them"],
        ),
        (
            {"thromboembolic_risk_factors": "obesity"},
            ["thromboembolic_risk_factors: Input should be a valid tuple (got 'obesity')"],
        ),
    ],
)
def test_bad_input_is_rejected_naming_the_field(data: dict[str, Any], expected: list[str]) -> None:
    """Each kind of bad input raises InvalidPatientError listing exactly its problems."""
    with pytest.raises(InvalidPatientError) as caught:
        parse_patient(data)
    assert caught.value.problems == expected
    assert isinstance(caught.value, ValueError)


def test_all_problems_are_reported_together() -> None:
    """Several bad fields give several lines, not just the first."""
    with pytest.raises(InvalidPatientError) as caught:
        parse_patient({"edss": 12, "age_years": -3, "colour": "blue"})
    assert caught.value.problems == [
        "edss: Input should be less than or equal to 10 (got 12)",
        "age_years: Input should be greater than or equal to 0 (got -3)",
        "'colour': unknown field",
    ]
    assert str(caught.value).startswith("invalid patient context (3 problems):\n  - edss:")


def test_type_range_step_and_conflict_errors_come_in_one_round() -> None:
    """A wrong type, an out-of-range and an off-step value, and a male patient who is pregnant:
    all four in one error, not one layer per attempt."""
    with pytest.raises(InvalidPatientError) as caught:
        parse_patient(
            {"sex": "male", "pregnancy_status": "pregnant", "acute_relapse": "yes", "edss": 11}
        )
    assert caught.value.problems == [
        "acute_relapse: Input should be a valid boolean (got 'yes')",
        "edss: Input should be less than or equal to 10 (got 11)",
        "pregnancy_status: 'pregnant' contradicts sex 'male'; correct one of them",
    ]
    with pytest.raises(InvalidPatientError) as caught:
        parse_patient({"edss": 3.3, "age_years": -1, "sex": "male", "breastfeeding": True})
    assert caught.value.problems == [
        "edss: must be from 0 to 10 in steps of 0.5 (got 3.3)",
        "age_years: Input should be greater than or equal to 0 (got -1)",
        "breastfeeding: true contradicts sex 'male'; correct one of them",
    ]


def test_no_conflict_is_reported_against_a_value_that_is_itself_invalid() -> None:
    """A misspelt pregnancy status is the one problem: it is not also "unknown" for the weeks."""
    with pytest.raises(InvalidPatientError) as caught:
        parse_patient({"weeks_postpartum": 4, "pregnancy_status": "postpartm", "sex": "male"})
    assert caught.value.problems == [
        "pregnancy_status: Input should be 'pregnant', 'postpartum' or 'not_pregnant' "
        "(got 'postpartm')"
    ]


def test_source_prefixes_the_message() -> None:
    """A caller-given source (a file name) starts the message."""
    with pytest.raises(InvalidPatientError, match=r"^patients/a\.yaml: invalid patient context"):
        parse_patient({"edss": 12}, source="patients/a.yaml")


def test_non_mapping_is_rejected() -> None:
    """A list or a string is not a patient."""
    with pytest.raises(InvalidPatientError) as caught:
        parse_patient(["RRMS"])
    assert caught.value.problems == ["expected a mapping of patient fields, got list"]


def test_errors_never_carry_the_patient_record() -> None:
    """Neither our error nor pydantic's, raised directly, quotes the other fields."""
    data = {"patient_id": SECRET, "ms_phenotype": "RRMS", "sex": "male", "breastfeeding": True}
    with pytest.raises(InvalidPatientError) as ours:
        evaluate(data)
    assert SECRET not in str(ours.value)
    with pytest.raises(ValidationError) as theirs:
        PatientContext(**data)
    assert SECRET not in str(theirs.value)
    assert "breastfeeding" in str(theirs.value)


def test_huge_value_is_quoted_shortened() -> None:
    """An offending value is quoted at most 60 characters long."""
    with pytest.raises(InvalidPatientError) as caught:
        parse_patient({"ms_phenotype": "R" * 10_000})
    assert len(caught.value.problems[0]) < 200


def test_every_field_is_optional() -> None:
    """An empty mapping is a valid patient of whom nothing is known."""
    assert parse_patient({}) == PatientContext()


def test_patient_is_frozen() -> None:
    """A validated patient cannot be changed behind the validator's back."""
    patient = PatientContext(ms_phenotype="RRMS")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        patient.ms_phenotype = None  # type: ignore[misc]


def test_valid_postpartum_patient_round_trips() -> None:
    """A consistent record validates and dumps back to the same JSON values."""
    data = {
        "patient_id": "p1",
        "ms_phenotype": "RRMS",
        "sex": "female",
        "pregnancy_status": "postpartum",
        "weeks_postpartum": 6,
        "breastfeeding": True,
        "edss": 2.5,
        "age_years": 33,
        "thromboembolic_risk_factors": ["obesity"],
    }
    patient = parse_patient(data)
    assert patient.model_dump(mode="json", exclude_none=True) == data


def test_each_problem_carries_the_location_of_its_value() -> None:
    """`locations` points at the offending value, for field, item and cross-field problems."""
    with pytest.raises(InvalidPatientError) as caught:
        parse_patient(
            {"sex": "male", "pregnancy_status": "pregnant", "thromboembolic_risk_factors": [""]}
        )
    assert caught.value.locations == [("thromboembolic_risk_factors", 0), ("pregnancy_status",)]
    with pytest.raises(InvalidPatientError) as caught:
        parse_patient({"sex": "male", "pregnancy_status": "pregnant", "edsss": 2})
    assert caught.value.locations == [("edsss",), ("pregnancy_status",)]
    with pytest.raises(InvalidPatientError) as caught:
        parse_patient({"sex": "male", "pregnancy_status": "pregnant"})
    assert caught.value.locations == [("pregnancy_status",)]


@pytest.mark.parametrize(
    ("by_class", "whole"),
    [
        ({"interferon_beta": "suitable"}, "suitable"),
        ({"interferon_beta": "not_tolerated", "glatiramer_acetate": "suitable"}, "suitable"),
        ({"interferon_beta": "not_tolerated"}, None),
        ({"interferon_beta": "declined", "glatiramer_acetate": "declined"}, "declined"),
        ({"interferon_beta": "declined", "glatiramer_acetate": "ineffective"}, "ineffective"),
        ({"interferon_beta": "declined", "glatiramer_acetate": "not_tolerated"}, "not_tolerated"),
        (
            {"interferon_beta": "contraindicated", "glatiramer_acetate": "not_tolerated"},
            "contraindicated",
        ),
    ],
)
def test_first_line_as_a_whole_is_derived_from_the_classes(
    by_class: dict[str, str], whole: str | None
) -> None:
    """Any class suitable: suitable; both excluded: excluded (ineffective first); else unknown."""
    patient = parse_patient({"first_line_by_class": by_class})
    assert first_line_as_a_whole(patient) == whole


def test_a_whole_that_agrees_with_the_classes_is_accepted() -> None:
    """The whole may be given beside the classes when it names one of their reasons."""
    patient = parse_patient(
        {
            "first_line_dmt": "declined",
            "first_line_by_class": {
                "interferon_beta": "declined",
                "glatiramer_acetate": "ineffective",
            },
        }
    )
    assert first_line_as_a_whole(patient) == "ineffective"  # the classes settle it


def test_an_empty_risk_factor_list_is_none_recorded() -> None:
    """[] is accepted and means none recorded; the thromboembolism caution does not attach."""
    result = evaluate({"ms_phenotype": "SPMS", "thromboembolic_risk_factors": []})
    assert "K1" not in {c.rule_id for c in result.cautions}
