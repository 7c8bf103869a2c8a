"""The citation registry's model: one entry per published work found in the seed documents.

Entries record what the seed shows and nothing more; an identifier the seed does not print stays
empty and `identifiers_note` says so.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ivig_cds._vocabulary import StudyDesign

EVIDENCE_ID_PATTERN = r"^(pmid-[0-9]{6,9}|seed[0-9]{3}-[a-z0-9-]+)$"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeedSource(_Frozen):
    """Which source document (seed file) the entry was read from, for auditors."""

    seed: str = Field(pattern=r"^[0-9]{3}_[0-9a-f]{16}\.txt$", description="Seed file name.")
    section: str | None = Field(
        default=None, description="Where in the seed, e.g. '#6' for an item of a list."
    )


class Outcome(_Frozen):
    measure: str = Field(min_length=1, description="What was measured.")
    result: str = Field(
        min_length=1, description="The figures exactly as printed in the seed (n, p, CI, effect)."
    )


class EvidenceEntry(_Frozen):
    id: str = Field(pattern=EVIDENCE_ID_PATTERN, description="Stable id: pmid-NNN or seedNNN-slug.")
    pmid: str | None = Field(default=None, pattern=r"^[0-9]{6,9}$")
    doi: str | None = Field(default=None, pattern=r"^10\.[0-9]{4,9}/\S+$")
    identifiers_note: str | None = Field(
        default=None, description="Why an identifier, author or journal is absent."
    )
    authors: tuple[str, ...] = ()
    title: str = Field(min_length=1)
    journal: str | None = None
    year: int | None = Field(default=None, ge=1900, le=2100)
    citation: str | None = Field(default=None, description="Volume, issue and pages as printed.")
    source: SeedSource
    design: StudyDesign
    population: str = Field(min_length=1)
    n: int | None = Field(default=None, ge=1, description="Participants, when the seed gives it.")
    regimen: str | None = None
    duration: str | None = None
    outcomes: tuple[Outcome, ...] = ()
    findings: str = Field(min_length=1, description="What the work concludes, in our own words.")
    quality_notes: tuple[str, ...] = ()
    background: bool = Field(
        default=False, description="True when no rule needs to cite this entry."
    )
