"""A `Recommendation` as a CDS Hooks 2.0 card: what the clinician sees, and what an auditor needs.

One card per answer, none for a patient outside the knowledge base (`not_applicable`). The
indicator follows the tier; the card's uuid is derived from the request and the rule that
decided, so the same request always yields the same card and feedback can be matched to it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from ivig_cds._recommendation import Citation, Recommendation
from ivig_cds._vocabulary import Tier

__all__ = ["EXTENSION_KEY", "OVERRIDE_REASONS", "OVERRIDE_SYSTEM", "card_for"]

SUMMARY_LIMIT = 140  # the specification: "<140-character summary message"
EXTENSION_KEY = "org.ivig-cds"
OVERRIDE_SYSTEM = "urn:ivig-cds:override-reason"
_CARD_NAMESPACE = uuid.UUID("0c7d2a1e-5b36-4f0e-9b1c-6a0f4e0b6c11")

# Why a clinician may act against the card. Offered wherever the card advises for or against
# IVIG; not on "indeterminate" cards, which only ask for data.
OVERRIDE_REASONS: tuple[dict[str, str], ...] = (
    {
        "system": OVERRIDE_SYSTEM,
        "code": "patient-specific-factors",
        "display": "Patient-specific factors outweigh this guidance",
    },
    {
        "system": OVERRIDE_SYSTEM,
        "code": "specialist-decision",
        "display": "Decided with the treating neurologist",
    },
    {
        "system": OVERRIDE_SYSTEM,
        "code": "record-incorrect",
        "display": "The record is incomplete or wrong for this patient",
    },
    {
        "system": OVERRIDE_SYSTEM,
        "code": "evidence-disputed",
        "display": "I weigh the cited evidence differently",
    },
)

_TIER_WORDS = {
    Tier.SECOND_LINE: "second-line option",
    Tier.NOT_FIRST_LINE: "not first line",
    Tier.INSUFFICIENT_EVIDENCE: "insufficient evidence",
    Tier.NOT_RECOMMENDED: "not recommended",
    Tier.INDETERMINATE: "cannot be decided yet",
    Tier.NOT_APPLICABLE: "outside this knowledge base",
}


def indicator_for(tier: Tier, *, ordering: bool) -> str:
    """`info` or `warning` for a tier.

    `not_recommended` always warns. While IVIG is being ordered, "first-line therapy is
    preferred" and "the evidence is insufficient" also warn, because the order goes against
    them; on a chart view they inform. A second-line option and a request for missing data
    inform.
    """
    if tier is Tier.NOT_RECOMMENDED:
        return "warning"
    if ordering and tier in (Tier.NOT_FIRST_LINE, Tier.INSUFFICIENT_EVIDENCE):
        return "warning"
    return "info"


def card_for(
    recommendation: Recommendation,
    *,
    service_id: str,
    hook_instance: str,
    ordering: bool = False,
    order: str | None = None,
    conflicts: Sequence[str] = (),
) -> dict[str, Any] | None:
    """The CDS Hooks card for a recommendation, or None when there is nothing to show.

    Args:
        recommendation: the engine's answer.
        service_id: the CDS service answering, part of the card's identity.
        hook_instance: the request's hookInstance, part of the card's identity.
        ordering: the card answers an order hook for IVIG.
        order: the draft order the card is about (`MedicationRequest/id`), if any.
        conflicts: disagreements in the record that left facts unknown, shown in the detail.
    """
    rec = recommendation
    if rec.tier is Tier.NOT_APPLICABLE:
        return None
    identity = "|".join(
        (service_id, hook_instance, order or "", rec.primary_rule, rec.knowledge_base.content_hash)
    )
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid5(_CARD_NAMESPACE, identity)),
        "summary": _summary(rec.summary),
        "indicator": indicator_for(rec.tier, ordering=ordering),
        "detail": _detail(rec, conflicts),
        "source": _source(rec),
        "extension": {
            EXTENSION_KEY: {
                "tier": rec.tier.value,
                "question": rec.question.intended_use.value,
                "questionInferred": rec.question.inferred,
                "primaryRule": rec.primary_rule,
                "rules": [
                    {"id": f.rule_id, "version": f.version, "role": f.role} for f in rec.findings
                ],
                "cautions": [c.rule_id for c in rec.cautions],
                "missingData": list(rec.missing_data),
                "unusedFacts": list(rec.unused_facts),
                "conflicts": len(conflicts),
                "knowledgeBase": rec.knowledge_base.model_dump(mode="json"),
                **({"order": order} if order else {}),
            }
        },
    }
    if rec.tier is not Tier.INDETERMINATE:
        card["overrideReasons"] = [dict(r) for r in OVERRIDE_REASONS]
    return card


def _summary(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) < SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 2].rstrip() + "…"


def primary_citation(rec: Recommendation) -> Citation | None:
    """The first work behind the tier that has a PubMed page."""
    return next((c for c in rec.citations if c.url), None)


def _source(rec: Recommendation) -> dict[str, str]:
    cited = primary_citation(rec)
    kb = rec.knowledge_base
    if cited is None or cited.url is None:
        return {"label": f"IVIG-CDS knowledge base {kb.version}"}
    author = f"{cited.authors[0]} et al." if cited.authors else "PubMed"
    year = f" {cited.year}" if cited.year else ""
    return {"label": f"{author}{year} (PMID {cited.pmid})", "url": cited.url}


def _detail(rec: Recommendation, conflicts: Sequence[str]) -> str:
    question = rec.question.intended_use.value.replace("_", "-")
    asked = "inferred" if rec.question.inferred else "as asked"
    lines = [
        f"**IVIG: {_TIER_WORDS[rec.tier]}** (question: {question} use, {asked})",
        "",
        rec.rationale,
        "",
    ]
    if rec.certainty is not None:
        level = rec.certainty.level.value.replace("_", " ")
        lines += [f"**Certainty of evidence:** {level}. {rec.certainty.reason}", ""]
    if rec.missing_data:
        wanted = ", ".join(m.replace("_", " ") for m in rec.missing_data)
        lines += [f"**Missing data that would decide or could change this:** {wanted}", ""]
    if rec.unused_facts:
        unused = ", ".join(m.replace("_", " ") for m in rec.unused_facts)
        lines += [f"_Not used by this knowledge base: {unused}._", ""]
    if conflicts:
        lines += ["**Conflicting data in the record (left unknown):**"]
        lines += [f"- {c}" for c in conflicts]
        lines += [""]
    if rec.citations:
        lines += ["**Evidence**"]
        lines += [f"- {_cite(c)}" for c in rec.citations]
        lines += [""]
    if rec.cautions:
        lines += ["**Cautions**"]
        lines += [f"- **{c.title}:** {c.text}" for c in rec.cautions]
        lines += [""]
    others = [f for f in rec.findings if f.role == "secondary"]
    if others:
        lines += ["**Also applies**"]
        lines += [f"- {f.title}: {_TIER_WORDS[f.tier]} ({f.rule_id})" for f in others]
        lines += [""]
    kb = rec.knowledge_base
    lines.append(
        f"_{kb.name} {kb.version}, rule {rec.primary_rule}. Evidence summary for the clinician; "
        "not a prescription._"
    )
    return "\n".join(lines)


def _cite(c: Citation) -> str:
    authors = (
        f"{c.authors[0]} et al. "
        if len(c.authors) > 1
        else (f"{c.authors[0]}. " if c.authors else "")
    )
    journal = f" *{c.journal}*" if c.journal else ""
    year = f" {c.year}." if c.year else ""
    pmid = f" PMID [{c.pmid}]({c.url})" if c.pmid and c.url else f" ({c.reference})"
    title = c.title if c.title.endswith((".", "?", "!")) else f"{c.title}."
    return f"{authors}{title}{journal}{year}{pmid}"
