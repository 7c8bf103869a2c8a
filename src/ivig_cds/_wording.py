"""Plain words for internal names: the one place where the knowledge base's vocabulary becomes
what a clinician reads.

Every surface (text, Markdown and HTML results, CDS Hooks cards, the report, batch and
population summaries) phrases field names, facts, clinical questions, study designs and
certainty levels through this module, so that they all say the same thing. A name this module
does not know (an edited knowledge base may add a field or a value) reads as its words with
spaces: never a crash, never an underscore.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import Enum

from pydantic import BaseModel

from ivig_cds._recommendation import Caution, Fact, Finding, Recommendation
from ivig_cds._vocabulary import (
    FIRST_LINE_CLASSES,
    TIER_LABELS,
    CertaintyLevel,
    IntendedUse,
    MSPhenotype,
    StudyDesign,
    Tier,
)

__all__ = [
    "CERTAINTY_PHRASES",
    "DESIGN_PHRASES",
    "FIELD_LABELS",
    "FLAG_PHRASES",
    "MISSING_HEADING",
    "MISSING_QUESTIONS",
    "OTHER_FINDINGS",
    "PHENOTYPE_NAMES",
    "QUESTION_PHRASES",
    "QUESTION_SHORT",
    "RECORD_HEADING",
    "cautions_by_display",
    "certainty_phrase",
    "decided_by",
    "design_phrase",
    "fact_phrase",
    "facts_phrase",
    "field_label",
    "for_information",
    "missing_question",
    "primary_finding",
    "question_phrase",
    "record_sections",
    "secondary_heading",
    "tier_label",
    "unused_line",
    "value_phrase",
]

# What each fact is called in a sentence: patient-context fields, the facts the engine derives
# from them (`question`, `relapse_ongoing`, `ivig_ordered`) and the result's own facts that
# cautions test (`tier`, `primary_rule`).
FIELD_LABELS: Mapping[str, str] = {
    "patient_id": "patient identifier",
    "ms_phenotype": "MS course",
    "intended_use": "clinical question",
    "question": "clinical question",
    "acute_relapse": "relapse under way now",
    "relapse_ongoing": "relapse under way",
    "on_iv_methylprednisolone": "IV methylprednisolone for the relapse",
    "first_line_dmt": "first-line therapy (interferon-beta, glatiramer acetate)",
    "first_line_by_class": "first-line therapy by class",
    "interferon_beta": "interferon-beta",
    "glatiramer_acetate": "glatiramer acetate",
    "pregnancy_status": "pregnancy status",
    "weeks_postpartum": "weeks since delivery",
    "breastfeeding": "breastfeeding",
    "thromboembolic_risk_factors": "thromboembolic risk factors",
    "other_dmt_in_use": "other disease-modifying therapy in use",
    "ivig_in_use": "IVIG already being given",
    "ivig_ordered": "IVIG order being signed",
    "edss": "EDSS",
    "age_years": "age",
    "sex": "sex",
    "tier": "the result's tier",
    "primary_rule": "the rule that set the tier",
}

# The question to ask when a fact is missing. Every patient-context field has one (a test
# holds this), and so do the derived facts a rule may report as unknown.
MISSING_QUESTIONS: Mapping[str, str] = {
    "patient_id": "Which patient is this (an identifier to echo in the result)?",
    "ms_phenotype": "What is the MS course (CIS, RRMS, SPMS, PPMS, or no MS)?",
    "intended_use": "What is IVIG being considered for: long-term disease-modifying treatment, "
    "treatment of the current relapse, or improving chronic, stable deficits?",
    "question": "What is IVIG being considered for: long-term disease-modifying treatment, "
    "treatment of the current relapse, or improving chronic, stable deficits?",
    "acute_relapse": "Is an MS relapse under way now?",
    "relapse_ongoing": "Is an MS relapse under way now?",
    "on_iv_methylprednisolone": "Is the current relapse treated with IV methylprednisolone?",
    "first_line_dmt": "Can approved first-line therapy (interferon-beta, glatiramer acetate) be "
    "used, and if not, why?",
    "first_line_by_class": "Can interferon-beta and glatiramer acetate each be used, and if "
    "not, why?",
    "pregnancy_status": "Is the patient pregnant, postpartum or neither?",
    "weeks_postpartum": "How many weeks ago did the patient deliver?",
    "breastfeeding": "Is the patient breastfeeding?",
    "thromboembolic_risk_factors": "Does the patient have thromboembolic risk factors (a past "
    "deep vein thrombosis or pulmonary embolism, a thrombophilia, immobility)?",
    "other_dmt_in_use": "Is a disease-modifying therapy other than interferon-beta or "
    "glatiramer acetate in use?",
    "ivig_in_use": "Is IVIG already being given (in the last 8 weeks, or an active order)?",
    "ivig_ordered": "Is an IVIG order being placed or signed now?",
    "edss": "What is the EDSS score?",
    "age_years": "How old is the patient?",
    "sex": "What is the patient's sex?",
}

# Yes/no facts read as statements: (when true, when false).
FLAG_PHRASES: Mapping[str, tuple[str, str]] = {
    "acute_relapse": ("a relapse is under way now", "no relapse under way now"),
    # derived: the patient is in relapse, or the relapse's treatment is the question asked
    "relapse_ongoing": ("the relapse is ongoing", "no relapse is ongoing"),
    "on_iv_methylprednisolone": ("on IV methylprednisolone", "not on IV methylprednisolone"),
    "breastfeeding": ("breastfeeding", "not breastfeeding"),
    "other_dmt_in_use": (
        "on another disease-modifying therapy (not interferon-beta or glatiramer acetate)",
        "on no other disease-modifying therapy",
    ),
    "ivig_in_use": ("IVIG already being given", "IVIG not being given"),
    "ivig_ordered": ("an IVIG order is being signed", "no IVIG order being signed"),
}

QUESTION_PHRASES: Mapping[IntendedUse, str] = {
    IntendedUse.DISEASE_MODIFYING: "long-term disease-modifying treatment",
    IntendedUse.ACUTE_RELAPSE: "treatment of the current relapse",
    IntendedUse.FIXED_DEFICITS: "improving chronic, stable visual or motor deficits",
}

# For one-line tables, where the full phrase would push the other columns off the screen.
QUESTION_SHORT: Mapping[IntendedUse, str] = {
    IntendedUse.DISEASE_MODIFYING: "long-term treatment",
    IntendedUse.ACUTE_RELAPSE: "current relapse",
    IntendedUse.FIXED_DEFICITS: "fixed deficits",
}

PHENOTYPE_NAMES: Mapping[str, str] = {
    MSPhenotype.CIS: "clinically isolated syndrome (CIS)",
    MSPhenotype.RRMS: "relapsing-remitting MS (RRMS)",
    MSPhenotype.SPMS: "secondary progressive MS (SPMS)",
    MSPhenotype.PPMS: "primary progressive MS (PPMS)",
    MSPhenotype.NOT_MS: "no MS diagnosis",
}

DESIGN_PHRASES: Mapping[StudyDesign, str] = {
    StudyDesign.META_ANALYSIS: "meta-analysis",
    StudyDesign.DOUBLE_BLIND_RCT: "double-blind randomised trial",
    StudyDesign.RANDOMIZED_PLACEBO_CONTROLLED_TRIAL: "randomised placebo-controlled trial",
    StudyDesign.RCT_SECONDARY_ANALYSIS: "secondary analysis of a randomised trial",
    StudyDesign.SINGLE_BLIND_RANDOMIZED: "single-blind randomised trial",
    StudyDesign.PILOT_RCT_STOPPED_AT_INTERIM: "pilot trial stopped at its interim analysis",
    StudyDesign.OPEN_LABEL_UNCONTROLLED_SERIES: "open-label uncontrolled series",
    StudyDesign.NARRATIVE_REVIEW: "narrative review",
    StudyDesign.ANIMAL_DATA_REVIEW: "review of animal data",
    StudyDesign.UNATTRIBUTED_SECONDARY_SUMMARY: "unattributed secondary summary",
}

CERTAINTY_PHRASES: Mapping[CertaintyLevel, str] = {
    CertaintyLevel.HIGH: "high",
    CertaintyLevel.MODERATE: "moderate",
    CertaintyLevel.LOW: "low",
    CertaintyLevel.VERY_LOW: "very low",
    CertaintyLevel.NOT_GRADED: "not graded",
}

# Value words that differ from the value with spaces.
_VALUE_WORDS: Mapping[str, str] = {
    "not_ms": "no MS diagnosis",
    "declined": "declined by the patient",
}

# For an `outside_evidence` result: what the secondary findings would need to apply, keyed by
# the fact of the deciding rule that put the patient outside the sources.
_OUTSIDE_BECAUSE: Mapping[str, str] = {
    "age_years": "to an adult",
    "other_dmt_in_use": "without the other disease-modifying therapy",
}

NOT_KNOWN = "not known"
_WORDS = re.compile(r"[_\s]+")


def _words(name: str) -> str:
    """A name with its underscores as spaces: the fallback for anything not listed here."""
    return _WORDS.sub(" ", name).strip()


def field_label(name: str) -> str:
    """What a fact is called in a sentence ("MS course"); unknown names read as words."""
    return FIELD_LABELS.get(name) or _words(name)


def missing_question(name: str) -> str:
    """The question a clinician answers to fill in a missing fact."""
    return MISSING_QUESTIONS.get(name) or f"What is the patient's {field_label(name)}?"


def question_phrase(use: IntendedUse | str, *, short: bool = False) -> str:
    """A clinical question in words ("treatment of the current relapse"), never its code."""
    try:
        question = IntendedUse(use)
    except ValueError:
        return _words(str(use))
    return (QUESTION_SHORT if short else QUESTION_PHRASES)[question]


def design_phrase(design: StudyDesign | str) -> str:
    """A study design in words ("pilot trial stopped at its interim analysis")."""
    try:
        return DESIGN_PHRASES[StudyDesign(design)]
    except (ValueError, KeyError):
        return _words(str(design))


def certainty_phrase(level: CertaintyLevel | str) -> str:
    """A certainty level in words ("very low", "not graded")."""
    try:
        return CERTAINTY_PHRASES[CertaintyLevel(level)]
    except (ValueError, KeyError):
        return _words(str(level))


def tier_label(tier: Tier | str) -> str:
    """A tier's label ("Second-line option (2002-2008 evidence)"), never its code."""
    try:
        return TIER_LABELS[Tier(tier)]
    except (ValueError, KeyError):
        return _words(str(tier)).capitalize()


def value_phrase(field: str, value: object) -> str:  # noqa: PLR0911 (one case per kind)
    """One value of a fact as a reader would say it ("RRMS", "not tolerated", "yes")."""
    if value is None:
        return NOT_KNOWN
    if field in ("question", "intended_use"):
        return question_phrase(str(value))
    if field == "tier":
        return tier_label(str(value)).lower()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, BaseModel):
        return _by_class(value)
    if isinstance(value, tuple | list):
        return ", ".join(_scalar(v) for v in value) if value else "none recorded"
    if field == "age_years" and isinstance(value, int):
        return f"{value} years"
    return _scalar(value)


def _scalar(value: object) -> str:
    text = value.value if isinstance(value, Enum) else value
    if isinstance(text, str):
        return _VALUE_WORDS.get(text) or _words(text)
    return str(text)


def _by_class(value: BaseModel) -> str:
    """First-line status per class: "interferon-beta: not tolerated; glatiramer acetate: ..."."""
    parts = []
    for name in type(value).model_fields:
        label = FIRST_LINE_CLASSES.get(name) or field_label(name)
        parts.append(f"{label}: {value_phrase(name, getattr(value, name))}")
    return "; ".join(parts)


def fact_phrase(field: str, value: object) -> str:
    """A fact as a phrase: "the relapse is ongoing", "MS course: RRMS", "not pregnant"."""
    if isinstance(value, bool) and field in FLAG_PHRASES:
        return FLAG_PHRASES[field][0 if value else 1]
    if field in ("question", "intended_use") and value is not None:
        return f"asked about {question_phrase(str(value))}"
    if field == "pregnancy_status" and value is not None:
        return _scalar(value)  # "pregnant", "postpartum", "not pregnant"
    if field == "ms_phenotype" and value == MSPhenotype.NOT_MS:
        return PHENOTYPE_NAMES[MSPhenotype.NOT_MS]
    return f"{field_label(field)}: {value_phrase(field, value)}"


def facts_phrase(facts: Iterable[Fact | tuple[str, object]]) -> str:
    """Several facts, separated by semicolons."""
    pairs = (
        (fact.field, fact.value) if isinstance(fact, Fact) else (fact[0], fact[1]) for fact in facts
    )
    return "; ".join(fact_phrase(field, value) for field, value in pairs)


def primary_finding(rec: Recommendation) -> Finding | None:
    """The finding of the rule that set the tier."""
    return next((f for f in rec.findings if f.rule_id == rec.primary_rule), None)


def decided_by(rec: Recommendation) -> str:
    """The deciding rule as a reference label with the facts it matched: "C07 (the relapse is
    ongoing; MS course: RRMS; on IV methylprednisolone)"."""
    finding = primary_finding(rec)
    if finding is None or not finding.facts:
        return rec.primary_rule
    return f"{rec.primary_rule} ({facts_phrase(finding.facts)})"


def for_information(rec: Recommendation) -> str:
    """The heading of an `outside_evidence` result's other findings: what they would need.

    "For information: would apply to an adult", from the facts of the rule that put the patient
    outside the sources; a rule this module does not know gets a general heading.
    """
    finding = primary_finding(rec)
    fields = [f.field for f in finding.facts] if finding is not None else []
    because = [_OUTSIDE_BECAUSE[f] for f in fields if f in _OUTSIDE_BECAUSE]
    if not because:
        return "For information: would apply if the sources addressed this patient"
    return f"For information: would apply {' and '.join(because)}"


MISSING_HEADING = "What would change or settle this answer"
RECORD_HEADING = "How the record was read"


def record_sections(
    *, conflicts: Iterable[str], notes: Iterable[str], unmapped: Iterable[str]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """What the FHIR adapter says about a record, under plain headings (empty ones left out):
    entries that disagree, each leaving its fact unknown; notes on how entries were read or
    why one was not used; and codes the code tables do not hold."""
    sections = (
        ("Entries that disagree (each leaves its fact unknown)", tuple(conflicts)),
        ("Notes", tuple(notes)),
        ("Codes not recognised (not used)", tuple(unmapped)),
    )
    return tuple((heading, items) for heading, items in sections if items)


OTHER_FINDINGS = "Other findings (did not set the tier)"


def secondary_heading(rec: Recommendation) -> str:
    """The heading of the findings that did not set the tier; for a patient the sources do not
    address, they are listed for information only."""
    return for_information(rec) if rec.tier is Tier.OUTSIDE_EVIDENCE else OTHER_FINDINGS


def unused_line(rec: Recommendation) -> str | None:
    """Says which given facts no rule read, so that nobody believes they were weighed."""
    if not rec.unused_facts:
        return None
    return f"Not used by this knowledge base: {', '.join(map(field_label, rec.unused_facts))}"


def cautions_by_display(
    rec: Recommendation,
) -> tuple[tuple[Caution, ...], tuple[Caution, ...], tuple[Caution, ...]]:
    """The result's cautions as every surface places them: those that lead the result (IVIG
    already being given), the cautions proper, and the standing statements about this tool."""
    first = tuple(c for c in rec.cautions if c.display == "first")
    standing = tuple(c for c in rec.cautions if c.display == "standing")
    ordinary = tuple(c for c in rec.cautions if c.display == "caution")
    return first, ordinary, standing
