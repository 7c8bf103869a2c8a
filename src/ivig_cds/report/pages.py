"""What each page of the report says, gathered from the knowledge base into plain values.

Templates only lay these out; every judgement about what to show (which cautions a conclusion
can carry, which work a quoted passage comes from, how a condition reads) is made here, in code
that the tests can reach. Works are named by their authors, year, title and PMID, never by the
file they were read from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ivig_cds._evidence import EvidenceEntry
from ivig_cds._knowledge_base import KnowledgeBase
from ivig_cds._record_windows import (
    RECORD_WINDOWS_NAME,
    RecordWindows,
    Window,
    load_record_windows,
)
from ivig_cds._reference import Check
from ivig_cds._rules import CautionRule, ConclusionRule, ConditionSpec, Operator, Passage
from ivig_cds.report.flow import Flow, flows
from ivig_cds.report.words import condition_words, group_words, short_work

AnyRule = ConclusionRule | CautionRule


@dataclass(frozen=True, slots=True)
class Attribution:
    """The work a quoted passage comes from, or the works it may come from.

    A passage records the document it was read from, and one document may print several
    works' abstracts; the passage is attributed to one work when the knowledge base settles
    which (the document holds one work, the quote is printed in one work's entry, or the rule
    cites one work of that document), and to the candidates otherwise: never to a guess.
    """

    works: tuple[EvidenceEntry, ...]

    @property
    def settled(self) -> bool:
        return len(self.works) == 1


@dataclass(frozen=True, slots=True)
class FlowPlace:
    """Where a conclusion sits in one question's flow."""

    flow: Flow
    step: int


@dataclass(frozen=True, slots=True)
class Site:
    """The knowledge base, indexed the ways the pages read it."""

    kb: KnowledgeBase
    flows: tuple[Flow, ...]
    documents: tuple[tuple[EvidenceEntry, ...], ...]  # the works read from each document
    works: tuple[EvidenceEntry, ...]  # sorted: works with a PMID by year, then the others
    windows: tuple[tuple[str, Window], ...]  # how long a record's dated answer counts
    labels: Mapping[str, str]  # evidence id -> short name, "2003a"/"2003b" where two collide

    @classmethod
    def of(cls, kb: KnowledgeBase) -> Site:
        seeds = sorted({e.source.seed for e in kb.evidence.values()})
        documents = tuple(
            tuple(
                sorted((e for e in kb.evidence.values() if e.source.seed == seed), key=_work_order)
            )
            for seed in seeds
        )
        works = tuple(sorted(kb.evidence.values(), key=_work_order))
        return cls(kb, flows(kb), documents, works, _windows(kb), _labels(works))

    @property
    def rules(self) -> tuple[AnyRule, ...]:
        return (*self.kb.conclusions, *self.kb.cautions)

    def label(self, entry: EvidenceEntry) -> str:
        return self.labels[entry.id]

    def read_with(self, entry: EvidenceEntry) -> tuple[EvidenceEntry, ...]:
        """The other works read from the same document as `entry`."""
        return tuple(e for e in self._document(entry.source.seed) if e.id != entry.id)

    def _document(self, seed: str) -> tuple[EvidenceEntry, ...]:
        return next((d for d in self.documents if d and d[0].source.seed == seed), ())

    def attribution(self, rule: AnyRule, passage: Passage) -> Attribution:
        """The work `passage` (of `rule`'s provenance) is quoted from; see `Attribution`."""
        document = self._document(passage.seed)
        named = tuple(e for e in document if e.id == passage.work)
        if named:
            return Attribution(named)
        if len(document) <= 1:
            return Attribution(document)
        quote = _folded(passage.quote)
        printed = tuple(e for e in document if quote in _folded(_printed(e)))
        if len(printed) == 1:
            return Attribution(printed)
        cited = tuple(e for e in document if e.id in rule.evidence)
        return Attribution(cited or document)

    @property
    def years(self) -> str:
        """The works' publication years as a range ("2002-2008"), and how many are undated."""
        years = sorted(e.year for e in self.works if e.year is not None)
        undated = len(self.works) - len(years)
        span = f"{years[0]}-{years[-1]}" if years and years[0] != years[-1] else ""
        span = span or (str(years[0]) if years else "")
        if not undated:
            return span
        note = "one undated" if undated == 1 else f"{undated} undated"
        return f"{span} ({note})" if span else note

    def places(self, rule: ConclusionRule) -> tuple[FlowPlace, ...]:
        return tuple(
            FlowPlace(flow, step.number)
            for flow in self.flows
            for step in flow.steps
            if step.rule.id == rule.id
        )

    def citing(self, entry: EvidenceEntry) -> tuple[AnyRule, ...]:
        return tuple(self.kb.rule(rule_id) for rule_id in self.kb.cited_by(entry.id))

    def cited(self, rule: AnyRule) -> tuple[EvidenceEntry, ...]:
        return tuple(self.kb.evidence[e] for e in rule.evidence)

    def cautions_for(self, rule: ConclusionRule) -> tuple[CautionRule, ...]:
        """Cautions whose conditions this conclusion does not rule out when it sets the tier."""
        return tuple(c for c in self.kb.cautions if can_carry(rule, c))

    def carried_by(self, caution: CautionRule) -> tuple[ConclusionRule, ...]:
        return tuple(r for r in self.kb.conclusions if can_carry(r, caution))


def _windows(kb: KnowledgeBase) -> tuple[tuple[str, Window], ...]:
    """The record windows beside the rules (validated when the knowledge base loaded)."""
    path = kb.rules_dir / RECORD_WINDOWS_NAME
    if not path.is_file():
        return ()
    windows = load_record_windows(path)
    return tuple(
        (RecordWindows.model_fields[name].description or name, window)
        for name, window in windows.rows()
    )


def _labels(works: tuple[EvidenceEntry, ...]) -> dict[str, str]:
    """Short names for the works; two alike get the year-suffix letters a reference list uses."""
    names = {entry.id: short_work(entry) for entry in works}
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    seen: dict[str, int] = {}
    for entry in works:
        name = names[entry.id]
        if counts[name] > 1 and entry.year is not None:
            seen[name] = seen.get(name, 0) + 1
            names[entry.id] = f"{name}{'abcdefghijklmnopqrstuvwxyz'[seen[name] - 1]}"
    return names


def _folded(text: str) -> str:
    return " ".join(text.casefold().split())


def _printed(entry: EvidenceEntry) -> str:
    """What an entry copies from its source as printed: title, figures, regimen, population."""
    parts = [entry.title, entry.population, entry.regimen or "", entry.duration or ""]
    parts += [f"{o.measure} {o.result}" for o in entry.outcomes]
    return " | ".join(parts)


def _work_order(entry: EvidenceEntry) -> tuple[int, int, str]:
    return (0 if entry.pmid else 1, entry.year or 9999, entry.title)


def conditions(when: Mapping[str, ConditionSpec]) -> tuple[str, ...]:
    """A rule's conditions in plain words, in the order the file gives them."""
    return tuple(condition_words(field, c) for field, c in when.items())


def group_conditions(rule: AnyRule) -> tuple[tuple[str, ...], ...]:
    """A caution's `any_of` groups (at least one must hold)."""
    groups = rule.any_of if isinstance(rule, CautionRule) else ()
    return tuple(conditions(group) for group in groups)


def exceptions(rule: AnyRule) -> tuple[tuple[str, ...], ...]:
    """A rule's `unless` groups (it does not apply when any of them holds)."""
    return tuple(conditions(group) for group in rule.unless)


def unless_words(rule: AnyRule) -> str:
    """A rule's `unless` groups in one phrase ("pregnant; or postpartum and ..."), or ""."""
    return group_words(rule.unless)


def attached_when(caution: CautionRule) -> str:
    """A caution's conditions in one phrase: its `when`, one of its `any_of` groups, and none
    of its `unless` groups."""
    parts = list(conditions(caution.when))
    groups = [" and ".join(group) for group in group_conditions(caution)]
    if len(groups) == 1:
        parts.append(groups[0])
    elif groups:
        parts.append("any of: " + "; or ".join(groups))
    phrase = "; and ".join(parts) or "always"
    unless = unless_words(caution)
    return f"{phrase}; unless {unless}" if unless else phrase


def can_carry(rule: ConclusionRule, caution: CautionRule) -> bool:
    """Whether some patient decided by `rule` could meet `caution`'s conditions.

    The result's own facts (tier, deciding rule, question) are known exactly; a patient field
    the conclusion also tests must have a value both accept; other fields are open.
    """
    if not _compatible(rule, caution.when):
        return False
    return not caution.any_of or any(_compatible(rule, group) for group in caution.any_of)


def _compatible(rule: ConclusionRule, when: Mapping[str, ConditionSpec]) -> bool:
    for field, condition in when.items():
        check = Check.of(field, condition)
        if field == "tier":
            known: tuple[object, ...] = (rule.tier.value,)
        elif field == "primary_rule":
            known = (rule.id,)
        elif field == "question":
            known = tuple(q.value for q in rule.questions)
        elif field in rule.when:
            known = _accepted(rule.when[field])
            if known == ():
                continue  # a range or a list: some value may satisfy both
        else:
            continue
        if not any(check.holds(value) for value in known):
            return False
    return True


def _accepted(condition: ConditionSpec) -> tuple[object, ...]:
    """The values a condition accepts, when they can be listed; () when they cannot."""
    if condition.operator is Operator.UNKNOWN:
        return (None,)
    if condition.operator in (Operator.EQUALS, Operator.IN):
        return condition.values
    return ()
