"""What `evaluate()` returns: a frozen, JSON-stable answer a clinician can read and audit."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ivig_cds._evidence import EvidenceEntry
from ivig_cds._rules import Certainty
from ivig_cds._vocabulary import IntendedUse, StudyDesign, Tier

PUBMED = "https://pubmed.ncbi.nlm.nih.gov/{pmid}/"
NO_PMID = "PMID not shown in the source"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Citation(_Frozen):
    id: str
    pmid: str | None
    doi: str | None
    title: str
    authors: tuple[str, ...]
    journal: str | None
    year: int | None
    design: StudyDesign
    n: int | None
    url: str | None = Field(description="PubMed page, when the work has a PMID.")

    @property
    def reference(self) -> str:
        """How a clinician-facing text points at the work: never an internal id."""
        return f"PMID {self.pmid}" if self.pmid else NO_PMID

    @classmethod
    def of(cls, entry: EvidenceEntry) -> Citation:
        return cls(
            id=entry.id,
            pmid=entry.pmid,
            doi=entry.doi,
            title=entry.title,
            authors=entry.authors,
            journal=entry.journal,
            year=entry.year,
            design=entry.design,
            n=entry.n,
            url=PUBMED.format(pmid=entry.pmid) if entry.pmid else None,
        )


FactValue = str | bool | int | float | tuple[str, ...] | None


class Fact(_Frozen):
    """A patient fact a rule tested, with the value it had (None: unknown)."""

    field: str
    value: FactValue


class Finding(_Frozen):
    """One fired conclusion rule; the primary one set the tier."""

    rule_id: str
    version: int
    title: str
    role: Literal["primary", "secondary"]
    question: IntendedUse
    tier: Tier
    summary: str
    rationale: str
    certainty: Certainty | None
    citations: tuple[Citation, ...]
    facts: tuple[Fact, ...]


class Caution(_Frozen):
    rule_id: str
    version: int
    title: str
    text: str
    notes: tuple[str, ...] = Field(
        default=(),
        description="What in this patient's record the caution rests on (its trigger, the "
        "recorded risk factors), filled in from the rule's notes.",
    )
    citations: tuple[Citation, ...]
    display: Literal["caution", "first", "standing"] = Field(
        default="caution",
        description="'first': shown before the rest of the result; 'standing': a standing "
        "statement about this tool, shown apart from the cautions.",
    )


class Question(_Frozen):
    intended_use: IntendedUse
    inferred: bool = Field(description="True when the caller did not say and the engine chose.")


class KnowledgeBaseRef(_Frozen):
    name: str
    version: str
    content_hash: str


class Recommendation(_Frozen):
    """The answer to one question about one patient, with everything needed to audit it."""

    patient_id: str | None
    question: Question
    tier: Tier
    summary: str
    rationale: str
    certainty: Certainty | None
    primary_rule: str
    findings: tuple[Finding, ...]
    citations: tuple[Citation, ...] = Field(description="The works behind the tier.")
    cautions: tuple[Caution, ...]
    missing_data: tuple[str, ...] = Field(
        description="Unknown fields that blocked the decision or could change the tier."
    )
    unused_facts: tuple[str, ...] = Field(
        default=(),
        description="Given fields that this knowledge base reads nowhere, so nobody takes "
        "them for weighed.",
    )
    knowledge_base: KnowledgeBaseRef
