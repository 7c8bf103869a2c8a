"""Checks across files, run at load: after them, every reference in the knowledge base resolves.

Each file was already valid on its own; these catch what only the whole collection shows (ids
used twice, citations of evidence that does not exist, evidence nobody cites, conditions on
fields the patient context does not have, two conclusions claiming the same precedence).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import StrictBool, TypeAdapter, ValidationError

from ivig_cds._errors import KnowledgeIssue
from ivig_cds._evidence import EvidenceEntry
from ivig_cds._hints import did_you_mean
from ivig_cds._patient import PatientContext
from ivig_cds._patient_input import short_repr
from ivig_cds._rules import (
    Asked,
    CautionRule,
    ConclusionRule,
    ConditionSpec,
    Manifest,
    NotAsked,
    Operator,
)
from ivig_cds._vocabulary import IntendedUse, Tier
from ivig_cds._yaml import LocatedDocument, shorten

# Facts the engine derives before matching, beside the patient's own fields. `relapse_ongoing`:
# acute_relapse is true, or the relapse question is asked with acute_relapse unknown.
CONCLUSION_DERIVED: dict[str, Any] = {"question": IntendedUse, "relapse_ongoing": StrictBool}
# `ivig_ordered`: an IVIG order is being placed or signed now (the caller says so).
CAUTION_DERIVED: dict[str, Any] = {
    **CONCLUSION_DERIVED,
    "tier": Tier,
    "primary_rule": str,
    "ivig_ordered": StrictBool,
}
LIST_FIELDS = frozenset(
    name
    for name, f in PatientContext.model_fields.items()
    if any(get_origin(arg) is tuple for arg in get_args(f.annotation))
)


@dataclass(frozen=True, slots=True)
class LocatedRule:
    rule: ConclusionRule | CautionRule
    path: Path
    doc: LocatedDocument


def cross_check(
    rules: list[LocatedRule],
    evidence: list[tuple[EvidenceEntry, Path, LocatedDocument]],
    *,
    unusable_evidence: AbstractSet[str] = frozenset(),
    unusable_rules: AbstractSet[str] = frozenset(),
    cited_by_unusable: AbstractSet[str] | None = frozenset(),
) -> list[KnowledgeIssue]:
    """Issues that only the whole collection shows.

    `unusable_rules` are the ids of rule files that failed, and `cited_by_unusable` the evidence
    they cite (None: unknown, some could not be read); references to them are not errors either.
    `unusable_evidence` names evidence files (by stem) that exist but failed validation; their
    own errors are already reported, so citations of them are not reported again.
    """
    evidence_ids = {e.id for e, _, _ in evidence} | unusable_evidence
    conclusion_ids = {r.rule.id for r in rules if isinstance(r.rule, ConclusionRule)}
    return [
        *_unique_ids(((r.rule.id, r.path, r.doc) for r in rules), "rule"),
        *_unique_ids(((e.id, p, d) for e, p, d in evidence), "evidence"),
        *_file_named_after_id(evidence),
        *_citations_resolve(rules, evidence_ids),
        *_passages_name_their_work(rules, {e.id: e for e, _, _ in evidence}, evidence_ids),
        *_evidence_used(rules, evidence, cited_by_unusable),
        *_conditions_legal(rules, conclusion_ids | unusable_rules),
        *_precedence_unique(rules),
    ]


def _issue(
    path: Path, doc: LocatedDocument, loc: tuple[str | int, ...], msg: str
) -> KnowledgeIssue:
    line, column = doc.locate(loc) or (None, None)
    return KnowledgeIssue(str(path), line, column, msg)


def _unique_ids(
    items: Iterable[tuple[str, Path, LocatedDocument]], what: str
) -> Iterator[KnowledgeIssue]:
    first: dict[str, Path] = {}
    for ident, path, doc in items:
        if ident in first:
            yield _issue(
                path, doc, ("id",), f"id: {what} id '{ident}' is already used by {first[ident]}"
            )
        else:
            first[ident] = path


def _file_named_after_id(
    evidence: list[tuple[EvidenceEntry, Path, LocatedDocument]],
) -> Iterator[KnowledgeIssue]:
    for entry, path, doc in evidence:
        if path.stem != entry.id:
            yield _issue(
                path,
                doc,
                ("id",),
                f"id: '{entry.id}' must match the file name "
                f"'{path.stem}'; rename the file to {entry.id}.yaml",
            )


def _citations_resolve(rules: list[LocatedRule], known: set[str]) -> Iterator[KnowledgeIssue]:
    for r in rules:
        for i, cited in enumerate(r.rule.evidence):
            if cited not in known:
                yield _issue(
                    r.path,
                    r.doc,
                    ("evidence", i),
                    f"evidence.{i}: cites '{cited}', "
                    f"which is not in the evidence registry{did_you_mean(cited, known)}",
                )
        if len(set(r.rule.evidence)) != len(r.rule.evidence):
            yield _issue(r.path, r.doc, ("evidence",), "evidence: an entry is cited twice")


def _passages_name_their_work(
    rules: list[LocatedRule], entries: Mapping[str, EvidenceEntry], known: set[str]
) -> Iterator[KnowledgeIssue]:
    for r in rules:
        for i, passage in enumerate(r.rule.provenance.passages):
            loc = ("provenance", "passages", i, "work")
            if passage.work is None:
                continue
            if passage.work not in known:
                hint = did_you_mean(passage.work, known)
                yield _issue(
                    r.path,
                    r.doc,
                    loc,
                    f"provenance.passages.{i}.work: '{passage.work}' is not in the evidence "
                    f"registry{hint}",
                )
            elif passage.work in entries and entries[passage.work].source.seed != passage.seed:
                yield _issue(
                    r.path,
                    r.doc,
                    loc,
                    f"provenance.passages.{i}.work: '{passage.work}' was read from "
                    f"{entries[passage.work].source.seed}, not from {passage.seed}",
                )


def _evidence_used(
    rules: list[LocatedRule],
    evidence: list[tuple[EvidenceEntry, Path, LocatedDocument]],
    cited_by_unusable: AbstractSet[str] | None,
) -> Iterator[KnowledgeIssue]:
    cited = {e for r in rules for e in r.rule.evidence}
    for entry, path, doc in evidence:
        maybe_cited = cited_by_unusable is None or entry.id in cited_by_unusable
        if entry.id not in cited and not entry.background and not maybe_cited:
            yield _issue(
                path,
                doc,
                ("id",),
                f"id: evidence '{entry.id}' is cited by no rule; "
                "cite it or mark it 'background: true'",
            )
        if entry.id in cited and entry.background:
            yield _issue(
                path,
                doc,
                ("background",),
                f"background: '{entry.id}' is cited by a "
                "rule, so it is not background; remove 'background: true'",
            )


def _numeric(annotation: Any) -> bool:
    try:
        TypeAdapter(annotation).validate_python(1)
    except ValidationError:
        return False
    return True


NUMERIC_FIELDS = frozenset(
    name for name, f in PatientContext.model_fields.items() if _numeric(f.annotation)
)


def _conditions_legal(
    rules: list[LocatedRule], conclusion_ids: set[str]
) -> Iterator[KnowledgeIssue]:
    for r in rules:
        derived = CONCLUSION_DERIVED if isinstance(r.rule, ConclusionRule) else CAUTION_DERIVED
        for loc, name, cond in r.rule.conditions:
            for problem in condition_problems(name, cond, derived, conclusion_ids):
                yield _issue(r.path, r.doc, loc, f"{'.'.join(map(str, loc[:-1]))}.{problem}")


def condition_problems(
    name: str,
    cond: ConditionSpec,
    derived: Mapping[str, Any],
    conclusion_ids: AbstractSet[str] = frozenset(),
) -> Iterator[str]:
    """What is wrong with one condition on `name`, each line starting with the field's name."""
    patient_fields = PatientContext.model_fields
    allowed = [*patient_fields, *derived]
    where = shorten(name)
    op = cond.operator
    if name not in allowed:
        yield (f"{where}: '{where}' is not a patient-context field" + did_you_mean(name, allowed))
        return
    if op is Operator.UNKNOWN and name in derived:
        yield f"{where}: '{name}' is always known; 'unknown: true' can never hold"
    if op is Operator.NOT_EMPTY and name not in LIST_FIELDS:
        yield (
            f"{where}: 'not_empty' applies to list fields only ({', '.join(sorted(LIST_FIELDS))})"
        )
        return
    if name in LIST_FIELDS and op not in (Operator.NOT_EMPTY, Operator.UNKNOWN):
        yield f"{where}: a list field takes 'not_empty: true' or 'unknown: true'"
        return
    if (op is Operator.RANGE) and name not in NUMERIC_FIELDS:
        yield (
            f"{where}: 'at_least'/'at_most' apply to number fields "
            f"only ({', '.join(sorted(NUMERIC_FIELDS))})"
        )
        return
    if name == "primary_rule":
        for value in cond.values:
            if value not in conclusion_ids:
                yield (
                    f"{where}: '{value}' is not a conclusion "
                    f"id{did_you_mean(str(value), conclusion_ids)}"
                )
        return
    annotation: Any = derived.get(name) or patient_fields[name].annotation
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    bounds: list[object] = [b for b in (cond.at_least, cond.at_most) if b is not None]
    for candidate in bounds or list(cond.values):
        try:
            adapter.validate_python(candidate)
        except ValidationError as exc:
            reason = exc.errors(include_url=False)[0]["msg"]
            yield f"{where}: {short_repr(candidate)} is not a legal value: {reason}"


def _precedence_unique(rules: list[LocatedRule]) -> Iterator[KnowledgeIssue]:
    claimed: dict[tuple[IntendedUse, int], str] = {}
    for r in rules:
        if not isinstance(r.rule, ConclusionRule):
            continue
        for question in r.rule.questions:
            key = (question, r.rule.precedence)
            if key in claimed:
                yield _issue(
                    r.path,
                    r.doc,
                    ("precedence",),
                    f"precedence: {r.rule.precedence} "
                    f"for question '{question}' is already held by {claimed[key]}; "
                    "precedence must be unique within a question",
                )
            else:
                claimed[key] = r.rule.id


def not_asked_problems(
    manifest: Manifest, path: Path, doc: LocatedDocument
) -> Iterator[KnowledgeIssue]:
    """The manifest's `not_asked` and `asked` entries must name patient fields and legal
    conditions (`asked` may also test the result: tier, primary rule, an IVIG order)."""
    fields = list(PatientContext.model_fields)
    entries: list[tuple[str, NotAsked | Asked, Mapping[str, Any]]]
    entries = [("not_asked", e, {}) for e in manifest.not_asked]
    entries += [("asked", e, CAUTION_DERIVED) for e in manifest.asked]
    counters: dict[str, int] = {}
    for key, entry, derived in entries:
        i = counters[key] = counters.get(key, -1) + 1
        if entry.field not in fields:
            yield _issue(
                path,
                doc,
                (key, i, "field"),
                f"{key}.{i}.field: '{shorten(entry.field)}' is not a patient-context field"
                + did_you_mean(entry.field, fields),
            )
        for name, cond in entry.when.items():
            for problem in condition_problems(name, cond, derived):
                yield _issue(path, doc, (key, i, "when", name), f"{key}.{i}.when.{problem}")
