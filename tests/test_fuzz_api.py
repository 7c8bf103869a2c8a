"""Fuzzing `evaluate()` and `parse_patient()` with malformed data: a result or a named error.

Whatever a caller passes, the answer is a `Recommendation` or an `InvalidPatientError` whose
every line names the field it is about (or says what is wrong with the input as a whole), in
bounded time and size, and never quoting a value from another field.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivig_cds import InvalidPatientError, Recommendation, evaluate, parse_patient
from ivig_cds._patient_input import MAX_PROBLEMS
from tests.fuzz_strategies import FIELDS, HUGE_INT, deeply_nested, junk, mutated_patients
from tests.strategies import patients

FUZZ = settings(
    max_examples=120,
    deadline=timedelta(seconds=5),  # generous: the machine is noisy; a hang is far longer
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = settings(FUZZ, max_examples=5_000)

_FIELD = "|".join(FIELDS)
_LINE = re.compile(
    rf"^(?:(?:{_FIELD})(?:\.\d+)?: .+"  # a field (or an item of a list field)
    r"|.+: unknown field(?:; .*)?"  # a key that is not a field, quoted
    r"|expected a mapping of patient fields, got \w+"  # the input as a whole
    r"|and \d+ more problems?)$",  # the rest, counted
    re.DOTALL,
)
MAX_MESSAGE = (MAX_PROBLEMS + 1) * 400  # each line quotes at most one value, shortened


def assert_well_formed(exc: InvalidPatientError) -> None:
    """Every problem line names its field or the input as a whole; the message is bounded."""
    assert exc.problems
    assert len(exc.locations) == len(exc.problems)
    for line in exc.problems:
        assert _LINE.match(line), line
    assert len(str(exc)) <= MAX_MESSAGE


def outcome(data: Any) -> Recommendation | InvalidPatientError:
    """The result of evaluating `data`; any exception but InvalidPatientError fails the test.

    KnowledgeGapError is not accepted either: the shipped rules settle every valid patient.
    """
    try:
        result = evaluate(data)
    except InvalidPatientError as exc:
        assert_well_formed(exc)
        return exc
    assert isinstance(result, Recommendation)
    return result


@FUZZ
@given(junk)
def test_any_value_gives_a_result_or_a_named_error(data: Any) -> None:
    """Arbitrary nested values (NaN, huge ints, bytes, surrogates...) never crash evaluate()."""
    outcome(data)


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS), junk, max_size=6))
def test_junk_in_real_fields_gives_a_result_or_a_named_error(data: dict[str, Any]) -> None:
    """Real field names with junk values: each bad value is reported under its own field."""
    result = outcome(data)
    if isinstance(result, InvalidPatientError):
        named = {line.split(":", 1)[0].split(".", 1)[0] for line in result.problems}
        assert named <= set(data), (named, set(data))


@FUZZ
@given(mutated_patients())
def test_mutated_valid_patients_give_a_result_or_a_named_error(data: dict[Any, Any]) -> None:
    """A valid patient with one field replaced by junk or a junk key added."""
    outcome(data)


@FUZZ
@given(mutated_patients())
def test_parse_patient_names_the_source_and_every_field(data: dict[Any, Any]) -> None:
    """parse_patient raises only InvalidPatientError, prefixed with the source given."""
    try:
        parse_patient(data, source="ehr-export.json")
    except InvalidPatientError as exc:
        assert_well_formed(exc)
        assert str(exc).startswith("ehr-export.json: invalid patient context (")


@pytest.mark.slow
@SLOW
@given(junk | mutated_patients())
def test_any_value_gives_a_result_or_a_named_error_at_length(data: Any) -> None:
    """The same properties at 5,000 examples (run with --slow)."""
    outcome(data)


# --- regressions and fixed cases found by fuzzing ---------------------------------------------


def problems_of(data: Any) -> list[str]:
    with pytest.raises(InvalidPatientError) as caught:
        evaluate(data)
    assert_well_formed(caught.value)
    return caught.value.problems


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # repr() of an integer over 4,300 digits raises ValueError: it escaped evaluate()
        (
            {"age_years": HUGE_INT},
            "age_years: Input should be less than or equal to 130 "
            "(got an integer of about 5000 digits)",
        ),
        (
            {"sex": -HUGE_INT},
            "sex: Input should be 'female', 'male' or 'other' "
            "(got an integer of about 5000 digits)",
        ),
        (
            {"thromboembolic_risk_factors": [HUGE_INT]},
            "thromboembolic_risk_factors.0: Input should be a valid string "
            "(got an integer of about 5000 digits)",
        ),
        ({"edss": float("inf")}, "edss: Input should be a finite number (got inf)"),
        ({"edss": float("-inf")}, "edss: Input should be a finite number (got -inf)"),
        ({"edss": "NaN"}, "edss: Input should be a valid number (got 'NaN')"),
        ({"age_years": float("nan")}, "age_years: Input should be a valid integer (got nan)"),
        ({"age_years": True}, "age_years: Input should be a valid integer (got True)"),
        (
            {"patient_id": "x" * 100_000},
            f"patient_id: String should have at most 128 characters (got '{'x' * 59}…)",
        ),
        ({"x" * 100_000: 1}, f"'{'x' * 60}…': unknown field"),
        # non-string keys read "Keys should be strings" and quoted the value, not the key
        ({1: "male"}, "1: unknown field; field names are text, like 'edss'"),
        ({(1, 2): "x"}, "'(1, 2)': unknown field; field names are text, like 'edss'"),
        # a key that is not valid text stopped pydantic with a line that named no field
        ({"\ud800": 1}, "'\\ud800': unknown field; the name is not valid text"),
        (
            {"patient_id": "\ud800"},
            "patient_id: Input should be a valid string, unable to parse raw data as a unicode "
            "string (got '\\ud800')",
        ),
        (
            {"patient_id": b"\xff"},
            "patient_id: Input should be a valid string, unable to parse raw data as a unicode "
            "string (got b'\\xff')",
        ),
        (
            {"thromboembolic_risk_factors": deeply_nested(10_000, as_dict=False)},
            "thromboembolic_risk_factors: nested more than 100 levels deep (got a list)",
        ),
        # pydantic repr()s a would-be enum member: RecursionError escaped evaluate()
        (
            {"sex": deeply_nested(10_000, as_dict=True)},
            "sex: nested more than 100 levels deep (got a dict)",
        ),
        (
            {"edss": deeply_nested(10_000, as_dict=False)},
            "edss: nested more than 100 levels deep (got a list)",
        ),
        (
            {"sex": deeply_nested(90, as_dict=True)},
            "sex: Input should be 'female', 'male' or 'other' (got a dict)",
        ),
        ([("sex", "male")], "expected a mapping of patient fields, got list"),
        (b"ms_phenotype: RRMS", "expected a mapping of patient fields, got bytes"),
        (float("nan"), "expected a mapping of patient fields, got float"),
    ],
)
def test_bad_values_are_named_with_the_offending_value_shortened(data: Any, expected: str) -> None:
    """Each malformed input gives exactly this one problem line."""
    assert problems_of(data) == [expected]


def test_a_record_that_contains_itself_is_refused() -> None:
    """A cyclic mapping is reported as too deep, not recursed into."""
    data: dict[str, Any] = {"ms_phenotype": "RRMS"}
    data["sex"] = data
    assert problems_of(data) == ["sex: nested more than 100 levels deep (got a dict)"]


def test_many_unknown_keys_give_a_bounded_message() -> None:
    """80,000 junk keys gave a 2.4 MB message; now the first 20 and a count of the rest."""
    problems = problems_of({f"key{i}": i for i in range(80_000)})
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[0] == "'key0': unknown field"
    assert problems[-1] == f"and {80_000 - MAX_PROBLEMS} more problems"


def test_valid_values_in_odd_forms_are_accepted() -> None:
    """Control characters in free text and a plain Mapping are valid input, evaluated."""
    result = evaluate(
        {"patient_id": "a\x00b\u2028", "thromboembolic_risk_factors": ["\x00", "DVT\t"]}
    )
    assert result.patient_id == "a\x00b\u2028"


# --- privacy -----------------------------------------------------------------------------------

SENTINELS = {
    "patient_id": "SENTINEL-ID-7731",
    "thromboembolic_risk_factors": ["SENTINEL-RF-4410", "obesity"],
    "age_years": 47,
    "edss": 3.5,
}
SENTINEL_TEXT = {
    "patient_id": "SENTINEL-ID-7731",
    "thromboembolic_risk_factors": "SENTINEL-RF-4410",
    "age_years": "47",
    "edss": "3.5",
}


@contextmanager
def captured_logs() -> Iterator[list[str]]:
    """Every log record emitted anywhere, at every level, as formatted text."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    root = logging.getLogger()
    handler, level = Keep(logging.DEBUG), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@FUZZ
@given(
    patients(),
    st.sampled_from(FIELDS),
    junk,
    st.booleans(),
)
def test_errors_and_logs_never_quote_another_field(
    base: dict[str, Any], bad_field: str, bad_value: Any, add_unknown_key: bool
) -> None:
    """With identifying values in several fields and one bad field, the error quotes at most
    the bad field's own value, and nothing is logged that carries any of them."""
    data: dict[Any, Any] = {**base, "sex": "female", **SENTINELS}
    data.pop("pregnancy_status", None)
    data.pop("weeks_postpartum", None)
    data[bad_field] = bad_value
    if add_unknown_key:
        data["unknown_field"] = "harmless"
    with captured_logs() as logs:
        result = outcome(data)
    for line in logs:
        assert not any(s in line for s in SENTINEL_TEXT.values()), line
    if isinstance(result, InvalidPatientError):
        message = str(result)
        for field, text in SENTINEL_TEXT.items():
            if field != bad_field and text not in ("47", "3.5"):  # short numbers occur anyway
                assert text not in message, (field, message)


def test_an_inconsistent_record_names_fields_but_quotes_no_identifier() -> None:
    """A contradiction across fields names both fields and quotes no free-text value."""
    data = {**SENTINELS, "sex": "male", "pregnancy_status": "pregnant", "edss": 11}
    with captured_logs() as logs:
        message = str(outcome(data))
    assert "edss: Input should be less than or equal to 10 (got 11)" in message
    assert "SENTINEL" not in message
    assert logs == []
