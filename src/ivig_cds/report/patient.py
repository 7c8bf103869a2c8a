"""One patient's result as a self-contained HTML page, with their path through the flow.

The page carries its stylesheet and diagram inline and links only to PubMed, so it can be
saved, mailed or printed on its own. The path is the one the result records (the rule that set
the tier ends it); the facts shown at each step are the patient's own values for what that step
asked.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

from ivig_cds import _wording
from ivig_cds._knowledge_base import KnowledgeBase
from ivig_cds._patient import PatientContext, known_fields
from ivig_cds._recommendation import Recommendation
from ivig_cds.report.flow import patient_facts, patient_path, question_flow
from ivig_cds.report.pages import Site
from ivig_cds.report.site import render
from ivig_cds.report.svg import draw_flow
from ivig_cds.report.words import field_words, value_words


def patient_page(
    kb: KnowledgeBase,
    patient: PatientContext,
    result: Recommendation,
    *,
    source: str | None = None,
    record: Sequence[tuple[str, Sequence[str]]] = (),
) -> str:
    """The HTML page for one evaluated patient.

    Args:
        kb: the knowledge base that produced `result`.
        patient: the patient context that was evaluated.
        result: its recommendation.
        source: the file it came from, shown as a heading when several are evaluated.
        record: for a patient read from a FHIR record, what the adapter said about reading it,
            under plain headings (`_wording.record_sections`).

    Raises:
        ValueError: `result` came from another knowledge base (its content hash differs).
    """
    if result.knowledge_base.content_hash != kb.content_hash:
        raise ValueError(
            "the result was produced by another knowledge base "
            f"({result.knowledge_base.content_hash}, not {kb.content_hash})"
        )
    question = result.question.intended_use
    facts = patient_facts(patient, result.question)
    flow = question_flow(kb, question)
    path = patient_path(flow, facts, result.primary_rule)
    svg = Markup(draw_flow(flow, path=path, element_id="patient-flow"))
    given = [
        (field_words(name), _given(name, value))
        for name, value in known_fields(patient).items()
        if name != "patient_id"
    ]
    return render(
        "patient.html",
        kb=kb,
        site=Site.of(kb),
        root="",
        page="patient",
        result=result,
        source=source,
        path=path,
        svg=svg,
        given=given,
        missing=[_wording.missing_question(name) for name in result.missing_data],
        missing_heading=_wording.MISSING_HEADING,
        record=record,
        record_heading=_wording.RECORD_HEADING,
        decided_by=_wording.decided_by(result),
        unused=[field_words(name) for name in result.unused_facts],
        evidence=kb.evidence,
        secondary=[f for f in result.findings if f.role == "secondary"],
        cautions=_wording.cautions_by_display(result),
        secondary_heading=_wording.secondary_heading(result),
    )


def _given(name: str, value: object) -> str:
    """A given fact's value beside its name: yes/no for flags ("Breastfeeding: yes")."""
    if isinstance(value, bool):
        return _wording.value_phrase(name, value)
    return value_words(name, value)
