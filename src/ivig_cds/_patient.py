"""The patient context: the facts the rules reason over, validated before any rule sees them.

Every field is optional because EHR data is incomplete: `None` means unknown, and the engine says
which unknowns matter. Inconsistent facts are rejected rather than evaluated, because a wrong
answer is worse than none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    model_validator,
)
from pydantic import StringConstraints as Str
from pydantic_core import PydanticCustomError

from ivig_cds._vocabulary import (
    FirstLineStatus,
    IntendedUse,
    MSPhenotype,
    PregnancyStatus,
    Sex,
)

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


PATIENT_FIELDS = tuple(PatientContext.model_fields)


def known_fields(patient: PatientContext) -> dict[str, object]:
    """The fields whose value is known, in declaration order."""
    return {f: v for f in PATIENT_FIELDS if (v := getattr(patient, f)) is not None}
