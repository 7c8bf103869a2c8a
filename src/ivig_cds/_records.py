"""Per-record evaluation: one NDJSON line of patient context in, one compact outcome out.

Kept apart from the batch runner so that every engine runs the same code: `RecordEvaluator` is a
plain, picklable callable that `run_batch`'s worker processes, Spark `mapPartitions` or Dask
`map_partitions` call on their own records, and `evaluator_for` gives each process one compiled
`Evaluator` (the population audit reuses it). Every failure becomes an error outcome carrying the
line number and the reason, never the patient record: at most the one offending value, shortened,
as `InvalidPatientError` quotes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ivig_cds._errors import EngineError, InvalidPatientError
from ivig_cds._evaluate import Evaluator, default_evaluator
from ivig_cds._json import JsonProblem, loads_strict
from ivig_cds._knowledge_base import KnowledgeBase
from ivig_cds._loader import load_knowledge_base
from ivig_cds._recommendation import Recommendation

MAX_LINE_BYTES = 1 << 20  # a patient context is a few hundred bytes; 1 MiB is surely a mistake

Record = tuple[int, bytes | None]
"""One input line: its 1-based number and its bytes without the newline, or None for a line
longer than the size limit, which the reader skipped without keeping it."""


class Outcome(NamedTuple):
    """What became of one input line: a result or an error, and the JSON line to write for it.

    `label` is the result's tier, or the error's kind (`invalid_json`, `invalid_patient`, ...).
    """

    line: int
    ok: bool
    label: str
    json: str


# --- one line -----------------------------------------------------------------------------------


class _LineError(ValueError):
    """Why one line gave no result: an error kind and its problems, free of patient data."""

    def __init__(self, kind: str, *problems: str) -> None:
        super().__init__(kind)
        self.kind = kind
        self.problems = list(problems)


_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


def _parse(raw: bytes | None, max_line_bytes: int) -> dict[str, Any]:
    """The line's JSON object, or `_LineError` saying why not."""
    if raw is None or len(raw) > max_line_bytes:
        raise _LineError(
            "line_too_long", f"the line is longer than the limit of {max_line_bytes:,} bytes"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _LineError("not_utf8", f"byte {exc.start + 1} is not UTF-8 ({exc.reason})") from None
    if not text.strip():
        raise _LineError("blank_line", "the line is empty; expected a JSON object")
    try:
        data = loads_strict(text)
    except JsonProblem as exc:
        if exc.line is None:  # Python's reader ran out of stack
            raise _LineError("invalid_json", "nested too deeply for a patient context") from None
        raise _LineError("invalid_json", f"{exc.message} at column {exc.column}") from None
    if not isinstance(data, dict):
        kind = "null" if data is None else _KINDS.get(type(data), type(data).__name__)
        raise _LineError("not_an_object", f"expected a JSON object of patient fields, got {kind}")
    return data


def _evaluate(evaluator: Evaluator, data: dict[str, Any]) -> Recommendation:
    try:
        return evaluator.evaluate(data)
    except InvalidPatientError as exc:
        raise _LineError("invalid_patient", *exc.problems) from None
    except EngineError as exc:  # its messages never carry the patient (see _engine.py)
        raise _LineError("not_evaluated", str(exc)) from None
    except RecursionError:
        raise _LineError("invalid_patient", "nested too deeply for a patient context") from None


def _compact(line: int, rec: Recommendation) -> str:
    """The audit line: what was decided, by which rule, on which evidence; ~400 bytes."""
    return json.dumps(
        {
            "line": line,
            "patient_id": rec.patient_id,
            "tier": rec.tier.value,
            "question": rec.question.intended_use.value,
            "question_inferred": rec.question.inferred,
            "primary_rule": rec.primary_rule,
            "secondary_rules": [f.rule_id for f in rec.findings if f.role == "secondary"],
            "certainty": rec.certainty.level.value if rec.certainty else None,
            "citations": [c.id for c in rec.citations],
            "cautions": [c.rule_id for c in rec.cautions],
            "missing_data": rec.missing_data,
            "kb_version": rec.knowledge_base.version,
            "kb_hash": rec.knowledge_base.content_hash,
        },
        separators=(",", ":"),
    )


def evaluate_line(
    evaluator: Evaluator,
    line: int,
    raw: bytes | None,
    *,
    full: bool = False,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Outcome:
    """Evaluate one NDJSON line; every failure becomes an error outcome, none is raised."""
    try:
        rec = _evaluate(evaluator, _parse(raw, max_line_bytes))
    except _LineError as exc:
        record = {"line": line, "error": exc.kind, "problems": exc.problems}
        return Outcome(line, False, exc.kind, json.dumps(record, separators=(",", ":")))
    tier = rec.tier.value
    if full:
        text = f'{{"line":{line},"recommendation":{rec.model_dump_json()}}}'
        return Outcome(line, True, tier, text)
    return Outcome(line, True, tier, _compact(line, rec))


# --- records -> outcomes, in any process --------------------------------------------------------

_EVALUATORS: dict[tuple[Path | None, Path | None], Evaluator] = {}


def evaluator_for(
    rules: Path | None, evidence: Path | None, knowledge_base: KnowledgeBase | None = None
) -> Evaluator:
    """This process's evaluator for a knowledge base, built once (forked workers inherit it).

    Args:
        rules, evidence: the knowledge base's folders; both None for the shipped one.
        knowledge_base: already loaded from those folders, to compile instead of loading again.

    Raises:
        KnowledgeBaseError: the knowledge base is invalid.
        EngineError: durable_rules rejected the compiled rules.
    """
    key = (rules, evidence)
    if key not in _EVALUATORS:
        if knowledge_base is not None:
            _EVALUATORS[key] = Evaluator(knowledge_base)
        elif rules is None and evidence is None:
            _EVALUATORS[key] = default_evaluator()
        else:
            _EVALUATORS[key] = Evaluator(load_knowledge_base(rules, evidence))
    return _EVALUATORS[key]


@dataclass(frozen=True)
class RecordEvaluator:
    """`records -> outcomes` for one knowledge base: picklable, so it can run anywhere.

    Call it with `(line number, line bytes)` records; it returns one `Outcome` per record, in
    order, and raises nothing for bad input. It carries only the knowledge base's folders and
    builds its `Evaluator` once per process, so it suits `ProcessPoolExecutor.submit`, Spark's
    `rdd.mapPartitions(lambda part: RecordEvaluator()(list(part)))` or Dask alike.

    Attributes:
        rules, evidence: folders of another knowledge base; None for the shipped one.
        full: write whole `Recommendation`s instead of the compact audit line.
        max_line_bytes: longer lines become `line_too_long` errors.
    """

    rules: Path | None = None
    evidence: Path | None = None
    full: bool = False
    max_line_bytes: int = MAX_LINE_BYTES

    def __call__(self, records: Iterable[Record]) -> list[Outcome]:
        evaluator = evaluator_for(self.rules, self.evidence)
        full, limit = self.full, self.max_line_bytes
        return [
            evaluate_line(evaluator, line, raw, full=full, max_line_bytes=limit)
            for line, raw in records
        ]


def evaluate_records(
    records: Iterable[Record],
    *,
    rules: Path | None = None,
    evidence: Path | None = None,
    full: bool = False,
) -> list[Outcome]:
    """Evaluate `(line number, line bytes)` records; one `Outcome` per record, in order.

    A module-level function, hence picklable: see `RecordEvaluator` for the details.
    """
    return RecordEvaluator(rules, evidence, full)(records)
