"""Caller data in, a validated `PatientContext` out, or one round of problems that each name
their field: types, ranges, unknown names and contradictions together.

The messages quote at most one offending value, shortened, and never the record, so that they
can be shown and logged; input pydantic cannot report on (nesting deep enough to overflow its
repr, keys that are not valid text) is screened out first and reported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from ivig_cds._errors import InvalidPatientError
from ivig_cds._hints import did_you_mean
from ivig_cds._patient import PATIENT_FIELDS, FirstLineByClass, PatientContext
from ivig_cds._yaml import shorten


def parse_patient(data: object, *, source: str | None = None) -> PatientContext:
    """Validate caller data into a `PatientContext`.

    Args:
        data: a `PatientContext` (returned as is) or a mapping of field names to values.
        source: where the data came from (a file name), prefixed to error messages.

    Raises:
        InvalidPatientError: one line per problem, each naming its field; no patient record.
    """
    if isinstance(data, PatientContext):
        return data
    if not isinstance(data, Mapping):
        raise InvalidPatientError(
            [f"expected a mapping of patient fields, got {type(data).__name__}"], source=source
        )
    usable, described = _screened(data)
    try:
        patient = PatientContext.model_validate(usable)
    except ValidationError as exc:
        described += _describe(exc, data)
        described += _conflicts_among_valid_fields(usable, exc, described)
    else:
        if not described:
            return patient
    raise InvalidPatientError(
        [problem for _, problem in described],
        source=source,
        locations=[loc for loc, _ in described],
    )


def _conflicts_among_valid_fields(
    data: Mapping[Any, Any],
    exc: ValidationError,
    described: list[tuple[tuple[str | int, ...], str]],
) -> list[tuple[tuple[str | int, ...], str]]:
    """The cross-field conflicts pydantic never reached because some field failed first.

    Conflicts are checked among the fields that passed, so one round of errors lists type,
    range and step errors and conflicts together (male and pregnant, beside EDSS 11).
    """
    invalid = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
    invalid |= {str(loc[0]) for loc, _ in described if loc}
    valid = {k: v for k, v in data.items() if k in PATIENT_FIELDS and k not in invalid}
    try:
        PatientContext.model_validate(valid, context={"invalid": frozenset(invalid)})
    except ValidationError as again:
        return [p for p in _describe(again, data) if p not in described]
    return []


def _screened(
    data: Mapping[Any, Any],
) -> tuple[Mapping[Any, Any], list[tuple[tuple[str | int, ...], str]]]:
    """`data` without the entries pydantic cannot report on, and a problem for each of them.

    pydantic repr()s a value it tries as an enum member, so thousands of levels of nesting
    overflow the stack (RecursionError) instead of failing validation; and a key that is not
    valid Unicode (a lone surrogate) stops validation with a message that names no field.
    """
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for name in PATIENT_FIELDS:
        if name in data and _too_deep(data[name]):
            problems.append(
                (
                    (name,),
                    f"{name}: nested more than {MAX_DEPTH} levels deep "
                    f"(got a {type(data[name]).__name__})",
                )
            )
    for key in data:
        if isinstance(key, str) and not _is_unicode(key):
            problems.append(((key,), f"{_quoted(key)}: unknown field; the name is not valid text"))
    if not problems:
        return data, problems
    dropped = {loc[0] for loc, _ in problems}
    return {k: v for k, v in data.items() if k not in dropped}, problems


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


MAX_DEPTH = 100  # a valid value is at most 2 deep (a list of strings)


def _too_deep(value: object) -> bool:
    """Whether `value` holds containers nested more than `MAX_DEPTH` deep (or a cycle)."""
    if isinstance(value, str | bytes | int | float | bool | None):
        return False
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Iterable[object] = (*item.keys(), *item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


MAX_PROBLEMS = 20  # a file of junk keys would otherwise give one line per key, megabytes of them


def _describe(
    exc: ValidationError, data: Mapping[Any, Any]
) -> list[tuple[tuple[str | int, ...], str]]:
    """(location, message) per problem; messages name their field, locations point at it."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    errors = exc.errors(include_url=False, include_input=False)
    for err in errors[:MAX_PROBLEMS]:
        loc = err["loc"]
        if not loc:  # a cross-field check: each line starts with the field it is about
            for line in str(err["msg"]).removeprefix("Value error, ").split("\n"):
                problems.append(((line.split(":", 1)[0],), line))
            continue
        if err["type"] == "invalid_key" and len(loc) == 1:  # loc[0] is the key: 1, None, ...
            problems.append(
                (loc, f"{short_repr(loc[0])}: unknown field; field names are text, like 'edss'")
            )
            continue
        if err["type"] == "invalid_key":  # a key inside first_line_by_class
            expected = " or ".join(FirstLineByClass.model_fields)
            problems.append(
                (loc, f"{loc[0]}.{short_repr(loc[-1])}: unknown field; expected {expected}")
            )
            continue
        field = str(loc[0])
        where = ".".join(str(part) for part in loc)
        if err["type"] == "extra_forbidden" and len(loc) == 1:
            hint = did_you_mean(field, PATIENT_FIELDS)
            problems.append((loc, f"{_quoted(field)}: unknown field{hint}"))
            continue
        if err["type"] == "extra_forbidden":  # inside first_line_by_class
            inner = str(loc[-1])
            classes = tuple(FirstLineByClass.model_fields)
            hint = did_you_mean(inner, classes) or f"; expected {' or '.join(classes)}"
            problems.append((loc, f"{field}.{_quoted(inner)}: unknown field{hint}"))
            continue
        value = _offending_value(data, loc)
        message = err["msg"]
        if err["type"] == "model_type":  # pydantic would name our class
            message = f"expected a mapping of {' and '.join(FirstLineByClass.model_fields)}"
        problems.append((loc, f"{where}: {message}{value}"))
    if len(errors) > MAX_PROBLEMS:
        more = len(errors) - MAX_PROBLEMS
        problems.append(((), f"and {more} more {'problem' if more == 1 else 'problems'}"))
    return problems


def _quoted(name: str) -> str:
    return repr(name[:60] + "…") if len(name) > 60 else repr(name)  # repr escapes the rest


def _offending_value(data: Mapping[Any, Any], loc: tuple[int | str, ...]) -> str:
    """Quote the one offending value, shortened, so errors help without leaking the record."""
    value: Any = data
    for part in loc:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return ""
    if isinstance(value, Mapping | list | tuple):
        return f" (got a {type(value).__name__})"
    return f" (got {short_repr(value)})"


def short_repr(value: object, limit: int = 60) -> str:
    """`repr(value)` cut to `limit` characters, for quoting one value in an error message.

    Never fails: an integer too long to print (over 4300 digits) or an object whose `repr`
    raises is described by its type instead.
    """
    try:
        text = repr(value)
    except Exception:  # a caller's failing __repr__ must not replace the error being reported
        if isinstance(value, int):
            return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
        return f"a {type(value).__name__}"
    return shorten(text, limit)
