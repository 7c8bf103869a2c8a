"""Plain words for what the rule models hold: fields, conditions, tiers, designs, works.

Everything a reader of the report sees is phrased here, from the models, so an edited knowledge
base is described in the same words. Visible text follows the knowledge spec's wording rules:
no seed file names and no evidence-entry ids (ids appear only in URLs), and a work without a
PMID reads "PMID not shown in the source".
"""

from __future__ import annotations

from collections.abc import Mapping

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

TIER_WORDS = TIER_LABELS

# Colour is never the only signal: every use also shows the tier's word.
TIER_COLOURS: Mapping[Tier, str] = {
    Tier.SECOND_LINE: "#1e7a3c",
    Tier.NOT_FIRST_LINE: "#a35d00",
    Tier.INSUFFICIENT_EVIDENCE: "#6b3fa0",
    Tier.NOT_RECOMMENDED: "#b3261e",
    Tier.INDETERMINATE: "#2f5d8a",
    Tier.NOT_APPLICABLE: "#5f6368",
}

QUESTION_WORDS: Mapping[IntendedUse, str] = {
    IntendedUse.DISEASE_MODIFYING: "Long-term disease-modifying treatment",
    IntendedUse.ACUTE_RELAPSE: "Treatment of an acute relapse",
    IntendedUse.FIXED_DEFICITS: "Improvement of fixed visual or motor deficits",
}

QUESTION_DETAILS: Mapping[IntendedUse, str] = {
    IntendedUse.DISEASE_MODIFYING: "relapse and progression prevention over the long term",
    IntendedUse.ACUTE_RELAPSE: "treating the relapse under way now",
    IntendedUse.FIXED_DEFICITS: "improving chronic, stable visual or motor deficits "
    "(hoped-for remyelination)",
}

CERTAINTY_WORDS: Mapping[CertaintyLevel, str] = {
    CertaintyLevel.HIGH: "high",
    CertaintyLevel.MODERATE: "moderate",
    CertaintyLevel.LOW: "low",
    CertaintyLevel.VERY_LOW: "very low",
    CertaintyLevel.NOT_GRADED: "not graded",
}

DESIGN_WORDS: Mapping[StudyDesign, str] = {
    StudyDesign.META_ANALYSIS: "meta-analysis",
    StudyDesign.DOUBLE_BLIND_RCT: "double-blind randomised controlled trial",
    StudyDesign.RANDOMIZED_PLACEBO_CONTROLLED_TRIAL: "randomised placebo-controlled trial",
    StudyDesign.RCT_SECONDARY_ANALYSIS: "secondary analysis of a randomised trial",
    StudyDesign.SINGLE_BLIND_RANDOMIZED: "single-blind randomised trial",
    StudyDesign.PILOT_RCT_STOPPED_AT_INTERIM: "pilot randomised trial stopped at interim analysis",
    StudyDesign.OPEN_LABEL_UNCONTROLLED_SERIES: "open-label uncontrolled series",
    StudyDesign.NARRATIVE_REVIEW: "narrative review",
    StudyDesign.ANIMAL_DATA_REVIEW: "review of animal data",
    StudyDesign.UNATTRIBUTED_SECONDARY_SUMMARY: "unattributed secondary summary",
}

# What each field is called in a sentence. Fields a rule may test that are not listed here
# (a new patient field) read as their name with spaces.
FIELD_WORDS: Mapping[str, str] = {
    "question": "the question asked",
    "ms_phenotype": "MS course",
    "acute_relapse": "whether a relapse is under way",
    "relapse_ongoing": "whether a relapse is under way",
    "on_iv_methylprednisolone": "IV methylprednisolone treatment",
    "breastfeeding": "breastfeeding",
    "other_dmt_in_use": "use of a later disease-modifying therapy",
    "intended_use": "the question asked",
    "first_line_dmt": "approved first-line therapy (interferon-beta, glatiramer acetate)",
    "pregnancy_status": "pregnancy status",
    "weeks_postpartum": "weeks since delivery",
    "thromboembolic_risk_factors": "thromboembolic risk factors",
    "edss": "EDSS",
    "age_years": "age in years",
    "sex": "sex",
    "tier": "the result's tier",
    "primary_rule": "the rule that set the tier",
}

# Yes/no facts read as statements: (when true, when false).
FLAG_WORDS: Mapping[str, tuple[str, str]] = {
    "acute_relapse": ("a relapse is under way now", "no relapse is under way now"),
    # derived: the patient is in relapse, or the question asked is the relapse's treatment
    "relapse_ongoing": (
        "a relapse is under way (or its treatment is the question)",
        "no relapse is under way",
    ),
    "on_iv_methylprednisolone": ("on IV methylprednisolone", "not on IV methylprednisolone"),
    "breastfeeding": ("breastfeeding", "not breastfeeding"),
    "other_dmt_in_use": (
        "a later disease-modifying therapy is in use",
        "no later disease-modifying therapy in use",
    ),
}

_PHENOTYPE_WORDS: Mapping[str, str] = {
    MSPhenotype.CIS: "clinically isolated syndrome (CIS)",
    MSPhenotype.RRMS: "relapsing-remitting MS (RRMS)",
    MSPhenotype.SPMS: "secondary progressive MS (SPMS)",
    MSPhenotype.PPMS: "primary progressive MS (PPMS)",
    MSPhenotype.NOT_MS: "no MS diagnosis",
}


def sentence(text: str) -> str:
    """Upper-case the first letter only ("MS course" stays "MS course")."""
    return text[:1].upper() + text[1:]


def field_words(field: str) -> str:
    return FIELD_WORDS.get(field, field.replace("_", " "))


def value_words(field: str, value: object) -> str:  # noqa: PLR0911 (one case per kind of value)
    """One value of a field as a reader would say it."""
    if value is None:
        return "not known"
    if field == "ms_phenotype" and value in _PHENOTYPE_WORDS:
        return _PHENOTYPE_WORDS[str(value)]
    if field in ("question", "intended_use") and value in set(IntendedUse):
        return QUESTION_WORDS[IntendedUse(str(value))].lower()
    if field == "tier" and value in set(Tier):
        return TIER_WORDS[Tier(str(value))].lower()
    if isinstance(value, bool):
        if field in FLAG_WORDS:
            return FLAG_WORDS[field][0 if value else 1]
        return "yes" if value else "no"
    if isinstance(value, tuple | list):
        return ", ".join(str(v) for v in value) if value else "none recorded"
    return str(value).replace("_", " ")


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
        return f"{name} {bounds}"
    values: tuple[Scalar, ...] = condition.values
    if field == "ms_phenotype" and values == (MSPhenotype.NOT_MS.value,):
        return "there is no MS diagnosis"
    if field in FLAG_WORDS and len(values) == 1 and isinstance(values[0], bool):
        return value_words(field, values[0])
    words = [value_words(field, v) for v in values]
    return f"{name} is {_alternatives(words)}"


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


def certainty_words(level: CertaintyLevel) -> str:
    return CERTAINTY_WORDS.get(level, level.value.replace("_", " "))


def design_words(design: StudyDesign) -> str:
    return DESIGN_WORDS.get(design, design.value.replace("_", " "))


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
