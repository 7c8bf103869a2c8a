"""A `Recommendation` as a CDS Hooks 2.0 card: what the clinician sees, and what an auditor needs.

One card per answer, none for a patient outside the knowledge base (`not_applicable`). The
indicator follows the tier; the card's uuid is derived from the request and the rule that
decided, so the same request always yields the same card and feedback can be matched to it.
The card is in words (`ivig_cds._wording`): missing facts as questions, no field names or tier
codes; those stay in the audit extension. When IVIG is already being given (a K12 caution),
the card leads with it, in its summary and at the top of its detail.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ivig_cds._recommendation import Caution, Citation, Recommendation
from ivig_cds._vocabulary import Tier
from ivig_cds._wording import (
    MISSING_HEADING,
    cautions_by_display,
    certainty_phrase,
    missing_question,
    question_phrase,
    secondary_heading,
    unused_line,
)

__all__ = ["EXTENSION_KEY", "OVERRIDE_REASONS", "OVERRIDE_SYSTEM", "card_for"]

SUMMARY_LIMIT = 140  # the specification: "<140-character summary message"
EXTENSION_KEY = "org.ivig-cds"
OVERRIDE_SYSTEM = "urn:ivig-cds:override-reason"
_CARD_NAMESPACE = uuid.UUID("0c7d2a1e-5b36-4f0e-9b1c-6a0f4e0b6c11")

# Why a clinician may act against the card. Offered wherever the card advises for or against
# IVIG; not on "indeterminate" cards, which only ask for data, nor on "outside_evidence" ones,
# which say that the sources do not address the patient and so advise nothing to act against.
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

_TIER_WORDS: Mapping[Tier, str] = {
    Tier.SECOND_LINE: "second-line option (2002-2008 evidence)",
    Tier.NOT_FIRST_LINE: "not first line (2002-2008 evidence)",
    Tier.INSUFFICIENT_EVIDENCE: "insufficient evidence",
    Tier.NOT_RECOMMENDED: "not recommended",
    Tier.INDETERMINATE: "cannot be decided yet",
    Tier.OUTSIDE_EVIDENCE: "outside the evidence (the sources do not address this patient)",
    Tier.NOT_APPLICABLE: "outside this knowledge base",
}
_ADVISING = frozenset(Tier) - {Tier.INDETERMINATE, Tier.OUTSIDE_EVIDENCE, Tier.NOT_APPLICABLE}
# Tiers whose every summary says how old the evidence is (the knowledge spec, v3).
_DATED = frozenset({Tier.SECOND_LINE, Tier.NOT_FIRST_LINE})
_DATES = re.compile(r"2002\s*(?:-|\u2013|to)\s*2008")  # hyphen, en dash or "to"
_DATE_NOTE = " (2002-2008 evidence)"
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
    site_codes: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The CDS Hooks card for a recommendation, or None when there is nothing to show.

    Args:
        recommendation: the engine's answer.
        service_id: the CDS service answering, part of the card's identity.
        hook_instance: the request's hookInstance, part of the card's identity.
        ordering: the card answers an order hook for IVIG.
        order: the draft order the card is about (`MedicationRequest/id`), if any.
        conflicts: disagreements in the record that left facts unknown, shown in the detail.
        site_codes: the site code maps the record was read with (`SiteMaps.describe()`),
            named in the extension beside the knowledge base.
    """
    rec = recommendation
    if rec.tier is Tier.NOT_APPLICABLE:
        return None
    identity = "|".join(
        (service_id, hook_instance, order or "", rec.primary_rule, rec.knowledge_base.content_hash)
    )
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid5(_CARD_NAMESPACE, identity)),
        "summary": card_summary(rec),
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
                **({"siteCodes": dict(site_codes)} if site_codes else {}),
                **({"order": order} if order else {}),
            }
        },
    }
    if rec.tier in _ADVISING:
        card["overrideReasons"] = [dict(r) for r in OVERRIDE_REASONS]
    return card


def ivig_in_use(rec: Recommendation) -> Caution | None:
    """The caution that leads the result (K12a/b/c: IVIG is already being given), if any."""
    first, _, _ = cautions_by_display(rec)
    return first[0] if first else None


def card_summary(rec: Recommendation) -> str:
    """The rule's summary, under 140 characters, led by "On IVIG:" when IVIG is already being
    given, and dated for the tiers the knowledge spec dates (second_line, not_first_line).

    When the text must be shortened, the lead and the date are kept and the middle is cut.
    """
    body = " ".join(rec.summary.split())
    lead = "On IVIG: " if ivig_in_use(rec) is not None else ""
    date = _DATE_NOTE if rec.tier in _DATED and not _DATES.search(body) else ""
    room = SUMMARY_LIMIT - 1 - len(lead) - len(date)
    if len(body) > room:
        cut = body[: room - 1].rstrip() + "…"
        if rec.tier in _DATED and _DATES.search(body) and not _DATES.search(cut):
            date = _DATE_NOTE  # the date was in the part cut off: say it again at the end
            cut = body[: room - 1 - len(date)].rstrip() + "…"
        body = cut
    return f"{lead}{body}{date}"


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
    asked = "inferred" if rec.question.inferred else "as asked"
    lines: list[str] = []
    in_use = ivig_in_use(rec)
    if in_use is not None:  # IVIG is being given: what to make of that comes first
        lines += [*_caution_lines(in_use), ""]
    lines += [
        f"**IVIG: {_TIER_WORDS[rec.tier]}** (question: "
        f"{question_phrase(rec.question.intended_use)}, {asked})",
        "",
        rec.rationale,
        "",
    ]
    if rec.certainty is not None:
        level = certainty_phrase(rec.certainty.level)
        lines += [f"**Certainty of evidence:** {level}. {rec.certainty.reason}", ""]
    if rec.missing_data:
        lines += [f"**{MISSING_HEADING}:**"]
        lines += [f"- {missing_question(m)}" for m in rec.missing_data]
        lines += [""]
    unused = unused_line(rec)
    if unused is not None:
        lines += [f"_{unused}._", ""]
    if conflicts:
        lines += ["**Conflicting data in the record (left unknown):**"]
        lines += [f"- {c}" for c in conflicts]
        lines += [""]
    if rec.citations:
        lines += ["**Evidence**"]
        lines += [f"- {_cite(c)}" for c in rec.citations]
        lines += [""]
    first, ordinary, standing = cautions_by_display(rec)
    cautions = [c for c in (*first, *ordinary) if c is not in_use]
    if cautions:
        lines += ["**Cautions**"]
        lines += [line for c in cautions for line in _caution_lines(c)]
        lines += [""]
    for caution in standing:
        lines += [f"**{caution.title}**", caution.text]
        lines += [f"- {n}" for n in caution.notes]
        lines += [""]
    others = [f for f in rec.findings if f.role == "secondary"]
    if others:
        lines += [f"**{secondary_heading(rec)}**"]
        lines += [f"- {f.title}: {_TIER_WORDS[f.tier]} ({f.rule_id})" for f in others]
        lines += [""]
    kb = rec.knowledge_base
    lines.append(
        f"_{kb.name} {kb.version}, rule {rec.primary_rule}. Evidence summary for the clinician; "
        "not a prescription._"
    )
    return "\n".join(lines)


def _caution_lines(caution: Caution) -> list[str]:
    """A caution as a list item, with what in the record it rests on beneath it."""
    return [f"- **{caution.title}:** {caution.text}", *(f"  - {n}" for n in caution.notes)]


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
