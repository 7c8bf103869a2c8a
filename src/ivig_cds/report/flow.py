"""The decision flow of each clinical question, read from the rules and their precedence.

Within a question the engine lets the firing conclusion with the lowest declared `precedence`
set the tier. Read in precedence order, the conclusions answering a question are therefore a
decision list: the first whose conditions all hold decides, and the others are not reached.
That list is what the report draws, so the picture is the rules themselves, not a redrawing of
them, and an edited knowledge base draws its own flow. A rule's `unless` groups are part of its
step: it applies when all its conditions hold and none of those groups does.
"""

from __future__ import annotations

import itertools
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Literal

from pydantic import ValidationError

from ivig_cds._evaluate import DERIVED_FROM, derived_facts, infer_question
from ivig_cds._knowledge_base import KnowledgeBase
from ivig_cds._patient import PatientContext, known_fields
from ivig_cds._recommendation import Question
from ivig_cds._reference import Check
from ivig_cds._rules import ConclusionRule, ConditionSpec
from ivig_cds._vocabulary import IntendedUse
from ivig_cds.report.words import condition_words, value_words

Verdict = Literal["applies", "does_not_apply", "not_reached"]


@dataclass(frozen=True, slots=True)
class Ask:
    """One condition of a step: the field it reads and the clause a reader sees."""

    field: str
    words: str
    check: Check


@dataclass(frozen=True, slots=True)
class Step:
    """One conclusion in a flow: it applies when every ask holds and no `unless` group does."""

    number: int
    rule: ConclusionRule
    asks: tuple[Ask, ...]
    unless: tuple[tuple[Ask, ...], ...] = ()


@dataclass(frozen=True, slots=True)
class Flow:
    question: IntendedUse
    steps: tuple[Step, ...]

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(step.rule.id for step in self.steps)


def settled_facts(question: IntendedUse) -> dict[str, object]:
    """The derived facts whose value the question alone settles, for every valid patient.

    Found by trying each combination of the patient fields the derived facts are computed from:
    the question itself, and (asked about a relapse) the relapse counting as ongoing.
    """
    sources = sorted({name for names in DERIVED_FROM.values() for name in names})
    choices = [_choices(name) for name in sources]
    seen: dict[str, set[object]] = {}
    for combination in itertools.product(*choices):
        given = {n: v for n, v in zip(sources, combination, strict=True) if v is not None}
        try:
            patient = PatientContext.model_validate(given)
        except ValidationError:
            continue
        asked = infer_question(patient)
        if asked.intended_use is question:
            for name, value in derived_facts(patient, asked).items():
                seen.setdefault(name, set()).add(value)
    # A derived fact computed from no patient field (an IVIG order being signed) is the
    # caller's to give: no question settles it.
    given_by_caller = {name for name, names in DERIVED_FROM.items() if not names}
    return {
        name: values.pop()
        for name, values in seen.items()
        if len(values) == 1 and name not in given_by_caller
    }


def _choices(field: str) -> tuple[object, ...]:
    """Every value of a yes/no or closed-vocabulary field, and unknown."""
    kinds = typing.get_args(PatientContext.model_fields[field].annotation)
    for kind in kinds:
        base = typing.get_args(kind)[0] if typing.get_origin(kind) is Annotated else kind
        if base is bool:
            return (None, True, False)
        if isinstance(base, type) and issubclass(base, Enum):
            return (None, *base)
    return (None,)


def question_flow(kb: KnowledgeBase, question: IntendedUse) -> Flow:
    """The conclusions answering `question`, in precedence order, with what each asks.

    A condition on a fact the question settles (the question itself; for the relapse question,
    the relapse counting as ongoing) holds by construction in its own flow and is not asked
    again; a rule such a condition excludes can never decide this question and is left out.
    """
    answering = sorted(
        (r for r in kb.conclusions if question in r.questions), key=lambda r: r.precedence
    )
    settled = settled_facts(question)
    steps: list[Step] = []
    for rule in answering:
        asks, reachable = _asks(rule.when, settled)
        exceptions: list[tuple[Ask, ...]] = []
        for group in rule.unless:
            clauses, possible = _asks(group, settled)
            if not possible:
                continue  # the question rules this exception out: nothing to ask
            if not clauses:
                reachable = False  # the question itself is the exception
            exceptions.append(clauses)
        if reachable:
            steps.append(Step(len(steps) + 1, rule, asks, tuple(exceptions)))
    return Flow(question, tuple(steps))


def _asks(
    conditions: Mapping[str, ConditionSpec], settled: Mapping[str, object]
) -> tuple[tuple[Ask, ...], bool]:
    """The conditions still to ask, and whether the settled facts leave them possible."""
    asks: list[Ask] = []
    possible = True
    for field, condition in conditions.items():
        check = Check.of(field, condition)
        if field in settled:
            possible = possible and check.holds(settled[field])
            continue
        asks.append(Ask(field, condition_words(field, condition), check))
    return tuple(asks), possible


def flows(kb: KnowledgeBase) -> tuple[Flow, ...]:
    """One flow per clinical question, in the vocabulary's order."""
    return tuple(question_flow(kb, question) for question in IntendedUse)


@dataclass(frozen=True, slots=True)
class Answer:
    """How one condition met this patient: the patient's value and whether it held."""

    ask: Ask
    value: str
    held: bool | None  # None: the fact is unknown, so the condition cannot hold


@dataclass(frozen=True, slots=True)
class StepResult:
    step: Step
    verdict: Verdict
    answers: tuple[Answer, ...]
    exceptions: tuple[tuple[Answer, ...], ...] = ()  # one per `unless` group, in order

    @property
    def holds(self) -> bool:
        """Whether the step's rule applies to these facts: every condition holds and no
        `unless` group does."""
        if not all(answer.held for answer in self.answers):
            return False
        return not any(all(a.held for a in group) for group in self.exceptions)


@dataclass(frozen=True, slots=True)
class PatientPath:
    """A patient's way through a flow; the primary rule (from the result) is where it ends."""

    flow: Flow
    primary_rule: str
    results: tuple[StepResult, ...]

    @property
    def on_path(self) -> tuple[str, ...]:
        """Rule ids of the steps the patient passed through, ending with the deciding one."""
        return tuple(r.step.rule.id for r in self.results if r.verdict != "not_reached")


def patient_facts(patient: PatientContext, question: Question) -> dict[str, object]:
    """The facts the engine matched for this patient: their own, and those derived from them."""
    return {**known_fields(patient), **derived_facts(patient, question)}


def patient_path(flow: Flow, facts: Mapping[str, object], primary_rule: str) -> PatientPath:
    """Walk `flow` for a patient whose result was decided by `primary_rule`.

    The verdicts come from the result (the engine's answer is authoritative); the answers say,
    condition by condition, which of the patient's facts decided each step.

    Raises:
        ValueError: `primary_rule` is not a step of this flow.
    """
    if primary_rule not in flow.rule_ids:
        raise ValueError(
            f"rule {primary_rule} does not answer the question '{flow.question}' in this "
            "knowledge base"
        )
    results: list[StepResult] = []
    reached = True
    for step in flow.steps:
        answers = tuple(_answer(ask, facts.get(ask.field)) for ask in step.asks)
        exceptions = tuple(
            tuple(_answer(ask, facts.get(ask.field)) for ask in group) for group in step.unless
        )
        if not reached:
            verdict: Verdict = "not_reached"
        elif step.rule.id == primary_rule:
            verdict = "applies"
            reached = False
        else:
            verdict = "does_not_apply"
        results.append(StepResult(step, verdict, answers, exceptions))
    return PatientPath(flow, primary_rule, tuple(results))


def _answer(ask: Ask, value: object) -> Answer:
    held = ask.check.holds(value)
    if value is None and not held:
        return Answer(ask, value_words(ask.field, value), None)
    return Answer(ask, value_words(ask.field, value), held)
