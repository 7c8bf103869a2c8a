"""`evaluate()`: one patient in, one `Recommendation` out.

The pipeline: validate the patient, settle the question, let durable fire every applicable
conclusion, pick the tier by the precedence the rules declare, then fire the cautions for that
result and say which unknown facts matter. Rules are compiled once, when the `Evaluator` is built.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from ivig_cds._compiler import CompiledRuleset, compile_rules
from ivig_cds._engine import DurableMatcher
from ivig_cds._errors import KnowledgeGapError
from ivig_cds._knowledge_base import KnowledgeBase
from ivig_cds._loader import load_knowledge_base
from ivig_cds._patient import RELATED_FIELDS, PatientContext, first_line_as_a_whole, known_fields
from ivig_cds._patient_input import parse_patient
from ivig_cds._recommendation import (
    Caution,
    Citation,
    Fact,
    Finding,
    KnowledgeBaseRef,
    Question,
    Recommendation,
)
from ivig_cds._reference import ReferenceMatcher, all_hold, checks_of
from ivig_cds._rules import Asked, CautionRule, ConclusionRule, NotAsked, Operator
from ivig_cds._vocabulary import IntendedUse, Tier

_FIELD_ORDER = {name: i for i, name in enumerate(PatientContext.model_fields)}


def infer_question(patient: PatientContext) -> Question:
    """The caller's intended use, or: an ongoing relapse asks about treating it, else long term."""
    if patient.intended_use is not None:
        return Question(intended_use=patient.intended_use, inferred=False)
    if patient.acute_relapse:
        return Question(intended_use=IntendedUse.ACUTE_RELAPSE, inferred=True)
    return Question(intended_use=IntendedUse.DISEASE_MODIFYING, inferred=True)


def derived_facts(
    patient: PatientContext, question: Question, *, ivig_ordered: bool = False
) -> dict[str, object]:
    """The facts the rules read beside the patient's own (see `_checks.CONCLUSION_DERIVED`).

    Asking about the relapse with `acute_relapse` unknown treats the relapse as ongoing; the
    rules key relapse findings on this fact, not on the question, so that they are listed
    whichever question is asked. `first_line_dmt` is first-line therapy as a whole, derived
    from the classes when they are given.
    """
    asked = question.intended_use
    return {
        "question": asked,
        "relapse_ongoing": patient.acute_relapse is True or asked is IntendedUse.ACUTE_RELAPSE,
        "first_line_dmt": first_line_as_a_whole(patient),
        "ivig_ordered": ivig_ordered,
    }


# The patient fields each derived fact is computed from.
DERIVED_FROM: Mapping[str, tuple[str, ...]] = {
    "question": ("intended_use", "acute_relapse"),
    "relapse_ongoing": ("acute_relapse", "intended_use"),
    "first_line_dmt": ("first_line_dmt", "first_line_by_class"),
    "ivig_ordered": (),
}


class Matcher(Protocol):
    def match(self, facts: Mapping[str, object]) -> frozenset[str]: ...


class _Durable:
    """durable_rules behind the `Matcher` interface: encode the facts, then match."""

    def __init__(self, rules: Sequence[ConclusionRule | CautionRule]) -> None:
        self._compiled: CompiledRuleset = compile_rules(rules)
        self._matcher = DurableMatcher(self._compiled.definition)

    def match(self, facts: Mapping[str, object]) -> frozenset[str]:
        return self._matcher.match(self._compiled.encode(facts))


Engine = Literal["durable", "reference"]


class Evaluator:
    """A knowledge base compiled for evaluation; build once, call `evaluate` from any thread.

    `engine="reference"` matches with the plain-Python oracle instead of durable_rules; it gives
    the same answers (the differential tests prove it) and exists to check durable against.
    """

    def __init__(self, knowledge_base: KnowledgeBase, *, engine: Engine = "durable") -> None:
        self.knowledge_base = knowledge_base
        self.engine = engine
        self._conclusions = {r.id: r for r in knowledge_base.conclusions}
        self._matcher: Matcher
        self._caution_matcher: Matcher
        if engine == "durable":
            self._matcher = _Durable(knowledge_base.conclusions)
            self._caution_matcher = _Durable(knowledge_base.cautions)
        elif engine == "reference":
            self._matcher = ReferenceMatcher(knowledge_base.conclusions)
            self._caution_matcher = ReferenceMatcher(knowledge_base.cautions)
        else:
            raise ValueError(f"engine: expected 'durable' or 'reference', got {engine!r}")
        cite = {e.id: Citation.of(e) for e in knowledge_base.evidence.values()}
        self._citations = {
            r.id: tuple(cite[e] for e in r.evidence)
            for r in (*knowledge_base.conclusions, *knowledge_base.cautions)
        }
        self._ref = KnowledgeBaseRef(
            name=knowledge_base.manifest.name,
            version=knowledge_base.version,
            content_hash=knowledge_base.content_hash,
        )
        self._order = {r.id: i for i, r in enumerate(knowledge_base.conclusions)}
        self._cautions = {r.id: self._caution(r) for r in knowledge_base.cautions}
        self._notes = {
            r.id: tuple((checks_of(note.when), note) for note in r.notes)
            for r in knowledge_base.cautions
        }
        # `missing_data` asks the oracle which better-ranked rules unknown facts could fire.
        self._reference = ReferenceMatcher(knowledge_base.conclusions)
        self._ranked = {
            question: sorted(
                (r for r in knowledge_base.conclusions if question in r.questions),
                key=lambda r: r.precedence,
            )
            for question in IntendedUse
        }
        self._not_asked = tuple(
            (entry.field, checks_of(entry.when)) for entry in knowledge_base.manifest.not_asked
        )
        self._asked = tuple(
            (entry.field, checks_of(entry.when)) for entry in knowledge_base.manifest.asked
        )
        self._read = fields_read(knowledge_base)

    def evaluate(
        self, patient: PatientContext | Mapping[str, Any], *, ivig_ordered: bool = False
    ) -> Recommendation:
        """Evaluate one patient.

        Args:
            patient: a `PatientContext`, or a mapping validated into one.
            ivig_ordered: an IVIG order for this patient is being placed or signed now (the
                rules may ask for more before IVIG is given, e.g. thrombotic risk factors).

        Returns:
            The recommendation for the question asked (or inferred), with its evidence.

        Raises:
            InvalidPatientError: the patient data is malformed or inconsistent.
            EngineError: the rule engine failed (never carries patient data).
        """
        context = parse_patient(patient)
        question = infer_question(context)
        given = known_fields(context)
        facts: dict[str, object] = {
            **given,
            **derived_facts(context, question, ivig_ordered=ivig_ordered),
        }

        fired = self._matcher.match(facts)
        primary = self._primary(fired, question.intended_use)
        secondary = [
            self._conclusions[rule_id]
            for rule_id in sorted(fired - {primary.id}, key=self._order.__getitem__)
        ]
        result_facts = {**facts, "tier": primary.tier, "primary_rule": primary.id}
        cautions = self._caution_matcher.match(result_facts)
        findings = [self._finding(primary, "primary", question.intended_use, facts)]
        findings.extend(
            self._finding(rule, "secondary", question.intended_use, facts) for rule in secondary
        )
        return Recommendation(
            patient_id=context.patient_id,
            question=question,
            tier=primary.tier,
            summary=primary.summary,
            rationale=primary.rationale,
            certainty=primary.certainty,
            primary_rule=primary.id,
            findings=tuple(findings),
            citations=self._citations[primary.id],
            cautions=tuple(
                self._with_notes(c, result_facts)
                for rule_id, c in self._cautions.items()
                if rule_id in cautions
            ),
            missing_data=self._missing(primary, secondary, question.intended_use, result_facts),
            unused_facts=tuple(f for f in given if f not in self._read and f != "patient_id"),
            knowledge_base=self._ref,
        )

    def _primary(self, fired: frozenset[str], question: IntendedUse) -> ConclusionRule:
        answering = [
            self._conclusions[i] for i in fired if question in self._conclusions[i].questions
        ]
        if not answering:
            raise KnowledgeGapError(
                f"no rule of knowledge base {self._ref.version} settles the question "
                f"'{question}' for this patient; the rules need a conclusion for this situation"
            )
        return min(answering, key=lambda r: r.precedence)

    def _with_notes(self, caution: Caution, facts: Mapping[str, object]) -> Caution:
        notes = tuple(
            note.filled(facts)
            for checks, note in self._notes[caution.rule_id]
            if all_hold(checks, facts)
        )
        return caution.model_copy(update={"notes": notes}) if notes else caution

    def _missing(
        self,
        primary: ConclusionRule,
        secondary: Sequence[ConclusionRule],
        question: IntendedUse,
        facts: Mapping[str, object],
    ) -> tuple[str, ...]:
        """Unknown fields that blocked a decision or could pre-empt the primary rule's.

        A better-ranked rule blocked only by unknown facts names them, unless one of them is
        not asked in this situation (the manifest's `not_asked`). Only the smallest such sets
        are kept: weeks since delivery matter only once the patient is known to be postpartum,
        so while pregnancy status is unknown, pregnancy status alone is asked for. An
        indeterminate finding, primary or secondary, names what it lacks; the manifest's
        `asked` entries add facts that matter in a situation whatever the precedence.
        """
        not_asked = {name for name, checks in self._not_asked if all_hold(checks, facts)}
        blocked: list[frozenset[str]] = []
        for rule in self._ranked[question]:
            if rule.precedence >= primary.precedence:
                break
            unknown = self._reference.rules[rule.id].blocking_unknowns(facts)
            if unknown and not_asked.isdisjoint(unknown) and self._possible(rule, unknown, facts):
                blocked.append(frozenset(unknown))
        undecided = [r for r in secondary if r.tier is Tier.INDETERMINATE]
        found = {f for rule in (primary, *undecided) for f in rule.missing_fields}
        for fields in blocked:
            if not any(other < fields for other in blocked):
                found |= fields
        found |= {
            name
            for name, checks in self._asked
            if facts.get(name) is None and name not in not_asked and all_hold(checks, facts)
        }
        return tuple(sorted(found, key=_FIELD_ORDER.__getitem__))

    @staticmethod
    def _possible(
        rule: ConclusionRule, unknown: tuple[str, ...], facts: Mapping[str, object]
    ) -> bool:
        """Whether some valid patient, agreeing with what is known, would fire `rule`."""
        hypothesis: dict[str, object] = {k: v for k, v in facts.items() if k in _FIELD_ORDER}
        for name in unknown:
            condition = rule.when[name]
            if condition.operator is Operator.NOT_EMPTY:
                hypothesis[name] = ("unspecified",)
            else:
                hypothesis[name] = condition.example()
        try:
            PatientContext.model_validate(hypothesis)
        except ValidationError:
            return False  # e.g. pregnancy for a patient recorded as male
        return True

    def _finding(
        self,
        rule: ConclusionRule,
        role: Literal["primary", "secondary"],
        question: IntendedUse,
        facts: Mapping[str, Any],
    ) -> Finding:
        return Finding(
            rule_id=rule.id,
            version=rule.version,
            title=rule.title,
            role=role,
            question=question if question in rule.questions else rule.questions[0],
            tier=rule.tier,
            summary=rule.summary,
            rationale=rule.rationale,
            certainty=rule.certainty,
            citations=self._citations[rule.id],
            facts=tuple(Fact(field=name, value=facts.get(name)) for name in rule.when),
        )

    def _caution(self, rule: CautionRule) -> Caution:
        return Caution(
            rule_id=rule.id,
            version=rule.version,
            title=rule.title,
            text=rule.text,
            citations=self._citations[rule.id],
            display=rule.display,
        )


def fields_read(knowledge_base: KnowledgeBase) -> frozenset[str]:
    """The patient fields a rule condition or the missing-data analysis reads.

    Computed from the loaded rules, so that `unused_facts` follows an edited knowledge base.
    """
    rules = (*knowledge_base.conclusions, *knowledge_base.cautions)
    named = {name for rule in rules for _, name, _ in rule.conditions}
    manifest = knowledge_base.manifest
    entries: tuple[NotAsked | Asked, ...] = (*manifest.not_asked, *manifest.asked)
    for entry in entries:
        named |= {entry.field, *entry.when}
    read = {f for name in named for f in DERIVED_FROM.get(name, (name,))}
    asked = {n for rule in knowledge_base.conclusions for n in rule.when}  # hypotheses set these
    read |= {a if b in asked else b for a, b in RELATED_FIELDS if {a, b} & asked}
    return frozenset(read)


_default: Evaluator | None = None
_default_lock = threading.Lock()


def default_evaluator() -> Evaluator:
    """The evaluator of the shipped knowledge base, loaded and compiled on first use."""
    global _default  # noqa: PLW0603 (a lazily built, then immutable, process-wide default)
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Evaluator(load_knowledge_base())
    return _default


def evaluate(
    patient: PatientContext | Mapping[str, Any], *, ivig_ordered: bool = False
) -> Recommendation:
    """Evaluate one patient against the shipped knowledge base; see `Evaluator.evaluate`."""
    return default_evaluator().evaluate(patient, ivig_ordered=ivig_ordered)
