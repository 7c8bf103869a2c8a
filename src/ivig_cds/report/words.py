"""Plain words for what the rule models hold: conditions, tiers, works, in the report's voice.

The names themselves (fields, facts, questions, designs, certainty) are phrased by
`ivig_cds._wording`, the one place every surface shares; this module builds the report's
clauses from them, so an edited knowledge base is described in the same words. Visible text
follows the knowledge spec's wording rules: no seed file names and no evidence-entry ids (ids
appear only in URLs), and a work without a PMID reads "PMID not shown in the source".
"""

from __future__ import annotations

from collections.abc import Mapping

from ivig_cds import _wording
from ivig_cds._evidence import EvidenceEntry
from ivig_cds._recommendation import NO_PMID, PUBMED
from ivig_cds._rules import ConditionSpec, Operator, Scalar
from ivig_cds._vocabulary import (
    TIER_LABELS,
    CertaintyLevel,
    IntendedUse,
    MSPhenotype,
    StudyDesign,
    Tier,
)

__all__ = [
    "NO_PMID",
    "QUESTION_DETAILS",
    "QUESTION_WORDS",
    "TIER_COLOURS",
    "TIER_WORDS",
    "authors_words",
    "certainty_words",
    "condition_words",
    "design_words",
    "field_words",
    "group_words",
    "pmid_label",
    "pubmed_url",
    "sentence",
    "short_work",
    "value_words",
]

TIER_WORDS = TIER_LABELS

# Colour is never the only signal: every use also shows the tier's word.
TIER_COLOURS: Mapping[Tier, str] = {
    Tier.SECOND_LINE: "#1e7a3c",
    Tier.NOT_FIRST_LINE: "#a35d00",
    Tier.INSUFFICIENT_EVIDENCE: "#6b3fa0",
    Tier.NOT_RECOMMENDED: "#b3261e",
    Tier.INDETERMINATE: "#2f5d8a",
    Tier.OUTSIDE_EVIDENCE: "#0f6b6b",
    Tier.NOT_APPLICABLE: "#5f6368",
}


def sentence(text: str) -> str:
    """Upper-case the first letter only ("MS course" stays "MS course")."""
    return text[:1].upper() + text[1:]


QUESTION_WORDS: Mapping[IntendedUse, str] = {
    q: sentence(phrase) for q, phrase in _wording.QUESTION_PHRASES.items()
}

QUESTION_DETAILS: Mapping[IntendedUse, str] = {
    IntendedUse.DISEASE_MODIFYING: "relapse and progression prevention over the long term",
    IntendedUse.ACUTE_RELAPSE: "treating the relapse under way now",
    IntendedUse.FIXED_DEFICITS: "improving chronic, stable visual or motor deficits "
    "(hoped-for remyelination)",
}

# Units a numeric bound reads with ("age is at most 17 years").
_UNITS: Mapping[str, str] = {"age_years": " years"}


def field_words(field: str) -> str:
    return _wording.field_label(field)


def value_words(field: str, value: object) -> str:
    """One value of a field as a reader would say it; MS courses in full."""
    if field == "ms_phenotype" and isinstance(value, str) and value in _wording.PHENOTYPE_NAMES:
        return _wording.PHENOTYPE_NAMES[value]
    if isinstance(value, bool) and field in _wording.FLAG_PHRASES:
        return _wording.FLAG_PHRASES[field][0 if value else 1]
    return _wording.value_phrase(field, value)


def _alternatives(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def condition_words(field: str, condition: ConditionSpec) -> str:
    """A condition as a short clause: "MS course is secondary progressive MS (SPMS)"."""
    operator = condition.operator
    name = field_words(field)
    if operator is Operator.UNKNOWN:
        return f"{name} is not known"
    if operator is Operator.NOT_EMPTY:
        return f"{name}: at least one recorded"
    bounds = _bounds(condition)
    if bounds is not None:
        return f"{name} {bounds}{_UNITS.get(field, '')}"
    values: tuple[Scalar, ...] = condition.values
    if len(values) == 1 and _reads_alone(field, values[0]):
        return value_words(field, values[0])
    if field == "ms_phenotype" and values == (MSPhenotype.NOT_MS.value,):
        return "there is no MS diagnosis"
    words = [value_words(field, v) for v in values]
    return f"{name} is {_alternatives(words)}"


def _reads_alone(field: str, value: Scalar) -> bool:
    """Whether one value is a clause by itself: "not on IV methylprednisolone", "pregnant"."""
    if isinstance(value, bool):
        return field in _wording.FLAG_PHRASES
    return field == "pregnancy_status"


def _bounds(condition: ConditionSpec) -> str | None:
    """Numeric bounds (`at_least`, `at_most`, both inclusive)."""
    low, high = condition.at_least, condition.at_most
    if low is not None and high is not None:
        return f"is from {low} to {high}"
    if low is not None:
        return f"is at least {low}"
    if high is not None:
        return f"is at most {high}"
    return None


def group_words(groups: tuple[Mapping[str, ConditionSpec], ...]) -> str:
    """Alternative situations in one phrase: "pregnant; or postpartum and weeks since ..."."""
    return "; or ".join(
        " and ".join(condition_words(field, c) for field, c in group.items()) for group in groups
    )


def certainty_words(level: CertaintyLevel) -> str:
    return _wording.certainty_phrase(level)


def design_words(design: StudyDesign) -> str:
    return _wording.design_phrase(design)


def pmid_label(entry: EvidenceEntry) -> str:
    return f"PMID {entry.pmid}" if entry.pmid else NO_PMID


def pubmed_url(entry: EvidenceEntry) -> str | None:
    return PUBMED.format(pmid=entry.pmid) if entry.pmid else None


def short_work(entry: EvidenceEntry) -> str:
    """A work named briefly, for tables and diagrams: "Hommes et al. 2004" or its title."""
    if entry.authors:
        first = entry.authors[0].split(" ")[0]
        who = f"{first} et al." if len(entry.authors) > 1 else first
        return f"{who} {entry.year}" if entry.year else who
    words = entry.title.split()
    return " ".join(words[:4]) + ("…" if len(words) > 4 else "")


def authors_words(entry: EvidenceEntry, most: int = 6) -> str:
    names = list(entry.authors[:most])
    if len(entry.authors) > most:
        names.append("et al")  # the sentence's full stop follows
    return ", ".join(names) if names else "authors not shown in the source"
