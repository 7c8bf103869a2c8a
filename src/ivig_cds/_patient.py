"""The patient context: the facts the rules reason over, validated before any rule sees them.

Every field is optional because EHR data is incomplete: `None` means unknown, and the engine says
which unknowns matter. Inconsistent facts are rejected rather than evaluated, because a wrong
answer is worse than none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic import StringConstraints as Str
from pydantic_core import PydanticCustomError

from ivig_cds._errors import InvalidPatientError
from ivig_cds._hints import did_you_mean
from ivig_cds._vocabulary import (
    FirstLineStatus,
    IntendedUse,
    MSPhenotype,
    PregnancyStatus,
    Sex,
)
from ivig_cds._yaml import shorten

# Words that say "no risk factor" rather than name one: the list would read as a risk factor
# called "none" and fire the thromboembolism caution, so they are refused with a pointer to [].
_NONE_WORDS = frozenset(
    {"none", "no", "nil", "n/a", "na", "none known", "none recorded", "no risk factors", "nothing"}
)


def _a_factor(text: str) -> str:
    if text.casefold().strip(" .") in _NONE_WORDS:
        raise PydanticCustomError(
            "not_a_risk_factor",
            "names no risk factor; when none is recorded give an empty list [] (and leave "
            "the field out when unknown)",
        )
    return text


_RiskFactor = Annotated[
    str, Str(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_a_factor)
]


class FirstLineByClass(BaseModel):
    """First-line status per class, as the sources name them; `None` means unknown."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    interferon_beta: FirstLineStatus | None = Field(
        default=None, description="Interferon-beta, any product."
    )
    glatiramer_acetate: FirstLineStatus | None = None

    def as_a_whole(self) -> FirstLineStatus | None:
        """First-line therapy as a whole, as the knowledge spec derives it from the classes.

        Any class suitable: suitable. Both excluded: excluded, `ineffective` if either class's
        reason is (the lower-certainty finding); otherwise the reasons in the order
        contraindicated, not tolerated, declined. Otherwise unknown.
        """
        values = (self.interferon_beta, self.glatiramer_acetate)
        if FirstLineStatus.SUITABLE in values:
            return FirstLineStatus.SUITABLE
        if None in values:
            return None
        for reason in _REASON_ORDER:
            if reason in values:
                return reason
        return None  # unreachable: both classes hold an exclusion reason

    @property
    def reasons(self) -> frozenset[FirstLineStatus]:
        return frozenset(
            v
            for v in (self.interferon_beta, self.glatiramer_acetate)
            if v not in (None, FirstLineStatus.SUITABLE)
        )


_REASON_ORDER = (
    FirstLineStatus.INEFFECTIVE,
    FirstLineStatus.CONTRAINDICATED,
    FirstLineStatus.NOT_TOLERATED,
    FirstLineStatus.DECLINED,
)


def _half_steps(edss: float) -> float:
    # A field check, not a cross-field one: reported in the same round as type and range errors.
    if (edss * 2) % 1 != 0:
        raise PydanticCustomError("edss_step", "must be from 0 to 10 in steps of 0.5")
    return edss


class PatientContext(BaseModel):
    """What is known about one patient; `None` everywhere means "unknown"."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,  # pydantic would otherwise echo the whole record
        title="IVIG-CDS patient context",
    )

    patient_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Caller's identifier, echoed in the result; never interpreted.",
    )
    ms_phenotype: MSPhenotype | None = Field(
        default=None, description="MS course, or not_ms when there is no MS diagnosis."
    )
    intended_use: IntendedUse | None = Field(
        default=None,
        description="The question asked of IVIG; inferred from acute_relapse when absent.",
    )
    acute_relapse: StrictBool | None = Field(
        default=None, description="An MS relapse is under way now."
    )
    on_iv_methylprednisolone: StrictBool | None = Field(
        default=None, description="The current relapse is treated with IV methylprednisolone."
    )
    first_line_dmt: FirstLineStatus | None = Field(
        default=None,
        description="Whether approved first-line therapy (interferon-beta, glatiramer acetate) "
        "can be used, as a whole; derived from first_line_by_class when that is given.",
    )
    first_line_by_class: FirstLineByClass | None = Field(
        default=None,
        description="First-line status per class (interferon_beta, glatiramer_acetate).",
    )
    pregnancy_status: PregnancyStatus | None = None
    weeks_postpartum: Annotated[int, Field(strict=True, ge=0, le=104)] | None = Field(
        default=None, description="Whole weeks since delivery; needs pregnancy_status postpartum."
    )
    breastfeeding: StrictBool | None = None
    thromboembolic_risk_factors: tuple[_RiskFactor, ...] | None = Field(
        default=None,
        max_length=50,
        description="Risk factors for thromboembolism, free text; [] means none known.",
    )
    other_dmt_in_use: StrictBool | None = Field(
        default=None,
        description="A disease-modifying therapy other than interferon-beta and glatiramer "
        "acetate (a later agent) is in use now.",
    )
    ivig_in_use: StrictBool | None = Field(
        default=None,
        description="IVIG given within the last 8 weeks, or ordered and the order active.",
    )
    edss: (
        Annotated[
            float, Field(strict=True, ge=0, le=10, allow_inf_nan=False), AfterValidator(_half_steps)
        ]
        | None
    ) = Field(
        default=None, description="Expanded Disability Status Scale, 0 to 10 in steps of 0.5."
    )
    age_years: Annotated[int, Field(strict=True, ge=0, le=130)] | None = None
    sex: Sex | None = None

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Self:
        # `parse_patient` passes the fields that failed their own checks as context["invalid"]:
        # a conflict with a value that is itself wrong is not reported (it may be the typo).
        invalid = (info.context or {}).get("invalid", frozenset())
        problems = _conflicts(self, invalid)
        if problems:
            raise ValueError("\n".join(problems))
        return self


def _conflict(first: str, second: str) -> Callable[[_Check], _Check]:
    """Register a check that two fields agree; it returns a problem line or None."""

    def register(check: _Check) -> _Check:
        _CHECKS.append(((first, second), check))
        return check

    return register


_Check = Callable[[PatientContext], str | None]
_CHECKS: list[tuple[tuple[str, str], _Check]] = []


def _conflicts(p: PatientContext, invalid: frozenset[str] = frozenset()) -> list[str]:
    """Every cross-field conflict, skipping checks that involve a field known to be invalid."""
    found = (check(p) for fields, check in _CHECKS if not set(fields) & invalid)
    return [problem for problem in found if problem is not None]


@_conflict("sex", "pregnancy_status")
def _male_pregnant(p: PatientContext) -> str | None:
    if p.sex is Sex.MALE and p.pregnancy_status in (
        PregnancyStatus.PREGNANT,
        PregnancyStatus.POSTPARTUM,
    ):
        status = p.pregnancy_status
        return f"pregnancy_status: '{status}' contradicts sex 'male'; correct one of them"
    return None


@_conflict("sex", "breastfeeding")
def _male_breastfeeding(p: PatientContext) -> str | None:
    if p.sex is Sex.MALE and p.breastfeeding:
        return "breastfeeding: true contradicts sex 'male'; correct one of them"
    return None


@_conflict("weeks_postpartum", "pregnancy_status")
def _weeks_without_postpartum(p: PatientContext) -> str | None:
    if p.weeks_postpartum is not None and p.pregnancy_status is not PregnancyStatus.POSTPARTUM:
        return (
            "weeks_postpartum: given but pregnancy_status is "
            f"{_shown(p.pregnancy_status)}; it needs pregnancy_status 'postpartum'"
        )
    return None


@_conflict("intended_use", "acute_relapse")
def _relapse_question_without_relapse(p: PatientContext) -> str | None:
    if p.intended_use is IntendedUse.ACUTE_RELAPSE and p.acute_relapse is False:
        return "intended_use: 'acute_relapse' contradicts acute_relapse false; correct one of them"
    return None


# Fields the consistency check relates to each other. Asking "could this unknown fact fire a
# rule?" validates a hypothetical patient, so it reads through these pairs (sex rules out
# pregnancy, say): the missing-data analysis uses them, and `unused_facts` counts them as read.
RELATED_FIELDS: tuple[tuple[str, str], ...] = tuple(fields for fields, _ in _CHECKS)


@_conflict("on_iv_methylprednisolone", "acute_relapse")
def _steroids_without_relapse(p: PatientContext) -> str | None:
    if p.on_iv_methylprednisolone and p.acute_relapse is False:
        return (
            "on_iv_methylprednisolone: true contradicts acute_relapse false (IV "
            "methylprednisolone is recorded for a current relapse); correct one of them"
        )
    return None


@_conflict("first_line_dmt", "first_line_by_class")
def _first_line_disagrees(p: PatientContext) -> str | None:
    whole, by_class = p.first_line_dmt, p.first_line_by_class
    if whole is None or by_class is None or _agrees(whole, by_class):
        return None
    shown = ", ".join(
        f"{name} {_shown(getattr(by_class, name))}" for name in FirstLineByClass.model_fields
    )
    return (
        f"first_line_dmt: '{whole}' contradicts first_line_by_class ({shown}); give the "
        "classes alone, or make them agree"
    )


def _agrees(whole: FirstLineStatus, by_class: FirstLineByClass) -> bool:
    """Whether the whole can describe these classes (an unknown class may be either)."""
    values = (by_class.interferon_beta, by_class.glatiramer_acetate)
    if whole is FirstLineStatus.SUITABLE:
        return any(v in (None, FirstLineStatus.SUITABLE) for v in values)
    if FirstLineStatus.SUITABLE in values:
        return False
    return not by_class.reasons or whole in by_class.reasons


def first_line_as_a_whole(patient: PatientContext) -> FirstLineStatus | None:
    """What the rules read as `first_line_dmt`: derived from the classes when they settle it.

    Both classes known: their derivation (so an `ineffective` class gives the lower-certainty
    finding even when the whole was also given). Otherwise the whole as given.
    """
    by_class = patient.first_line_by_class
    derived = by_class.as_a_whole() if by_class is not None else None
    return derived if derived is not None else patient.first_line_dmt


def _shown(value: object) -> str:
    return "unknown" if value is None else f"'{value}'"


_FIELDS = tuple(PatientContext.model_fields)


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
    valid = {k: v for k, v in data.items() if k in _FIELDS and k not in invalid}
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
    for name in _FIELDS:
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
            hint = did_you_mean(field, _FIELDS)
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


def known_fields(patient: PatientContext) -> dict[str, object]:
    """The fields whose value is known, in declaration order."""
    return {f: v for f in _FIELDS if (v := getattr(patient, f)) is not None}
