"""Closed vocabularies shared by patients, rules and results.

Their string values are a contract with EHR glue code and with the YAML knowledge base, so they
never change meaning; new members may be added.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class MSPhenotype(StrEnum):
    CIS = "CIS"
    RRMS = "RRMS"
    SPMS = "SPMS"
    PPMS = "PPMS"
    NOT_MS = "not_ms"


class IntendedUse(StrEnum):
    """The clinical question: what IVIG would be given for."""

    DISEASE_MODIFYING = "disease_modifying"
    ACUTE_RELAPSE = "acute_relapse"
    FIXED_DEFICITS = "fixed_deficits"


class FirstLineStatus(StrEnum):
    """Whether approved first-line therapy (interferon-beta, glatiramer acetate) can be used."""

    SUITABLE = "suitable"
    NOT_TOLERATED = "not_tolerated"
    CONTRAINDICATED = "contraindicated"
    DECLINED = "declined"
    INEFFECTIVE = "ineffective"


FIRST_LINE_CLASSES: Mapping[str, str] = {
    "interferon_beta": "interferon-beta",
    "glatiramer_acetate": "glatiramer acetate",
}


class PregnancyStatus(StrEnum):
    PREGNANT = "pregnant"
    POSTPARTUM = "postpartum"
    NOT_PREGNANT = "not_pregnant"


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"


class Tier(StrEnum):
    """How the evidence positions IVIG for the question asked (see the README's tier table)."""

    SECOND_LINE = "second_line"
    NOT_FIRST_LINE = "not_first_line"
    INSUFFICIENT_EVIDENCE = "insufficient_evidence"
    NOT_RECOMMENDED = "not_recommended"
    INDETERMINATE = "indeterminate"
    OUTSIDE_EVIDENCE = "outside_evidence"
    NOT_APPLICABLE = "not_applicable"


# What each tier means for the clinician (the README's tier table): one wording for the command
# line, the report and every other reader, so that they cannot drift apart.
TIER_LABELS: Mapping[Tier, str] = {
    Tier.SECOND_LINE: "Second-line option (2002-2008 evidence)",
    Tier.NOT_FIRST_LINE: "Not first line (2002-2008 evidence)",
    Tier.INSUFFICIENT_EVIDENCE: "Insufficient evidence",
    Tier.NOT_RECOMMENDED: "Not recommended",
    Tier.INDETERMINATE: "Indeterminate",
    Tier.OUTSIDE_EVIDENCE: "Outside the evidence",
    Tier.NOT_APPLICABLE: "Not applicable",
}

TIER_MEANINGS: Mapping[Tier, str] = {
    Tier.SECOND_LINE: "IVIG may be considered: the 2002-2008 sources support it as a second-line "
    "option in this situation, second to interferon-beta and glatiramer acetate (not to later "
    "therapies).",
    Tier.NOT_FIRST_LINE: "In the 2002-2008 sources, interferon-beta and glatiramer acetate came "
    "first; they reserved IVIG for when those could not be used.",
    Tier.INSUFFICIENT_EVIDENCE: "The evidence is too limited or unpublished to recommend IVIG "
    "for this; not standard practice.",
    Tier.NOT_RECOMMENDED: "Trials showed no benefit, or the sources say IVIG has no role here.",
    Tier.INDETERMINATE: "A fact needed to decide is missing; the result lists which.",
    Tier.OUTSIDE_EVIDENCE: "The sources do not address this patient, so no tier is given from "
    "them; the findings that would otherwise apply are listed for information only.",
    Tier.NOT_APPLICABLE: "Outside this knowledge base (no MS diagnosis).",
}


class CertaintyLevel(StrEnum):
    HIGH = "high"
    MODERATE = "moderate"
    LOW = "low"
    VERY_LOW = "very_low"
    NOT_GRADED = "not_graded"  # the conclusion makes no claim about IVIG (C12, C13, C14, C15)


class StudyDesign(StrEnum):
    """Designs as the seed documents describe them; nothing stronger than the source says."""

    META_ANALYSIS = "meta_analysis"
    DOUBLE_BLIND_RCT = "double_blind_rct"
    RANDOMIZED_PLACEBO_CONTROLLED_TRIAL = "randomized_placebo_controlled_trial"
    RCT_SECONDARY_ANALYSIS = "rct_secondary_analysis"
    SINGLE_BLIND_RANDOMIZED = "single_blind_randomized"
    PILOT_RCT_STOPPED_AT_INTERIM = "pilot_rct_stopped_at_interim"
    OPEN_LABEL_UNCONTROLLED_SERIES = "open_label_uncontrolled_series"
    NARRATIVE_REVIEW = "narrative_review"
    ANIMAL_DATA_REVIEW = "animal_data_review"
    UNATTRIBUTED_SECONDARY_SUMMARY = "unattributed_secondary_summary"
