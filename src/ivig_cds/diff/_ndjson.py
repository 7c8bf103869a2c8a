"""NDJSON patient contexts: each line evaluated once per knowledge base, by `batch`'s machinery.

`PairRecordEvaluator` is `RecordEvaluator` for two knowledge bases: a picklable
`records -> outcomes` function that runs `batch`'s own per-line evaluation (`evaluate_line`)
with each side's evaluator and compares the two audit lines. `run_batch` feeds it chunks
through worker processes exactly as it does for `ivig-cds batch`. Each outcome's `label` is
the transition (`old>new`); its `json` is the changed item's record, or empty when nothing
changed, so the parent parses only what changed.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from ivig_cds._batch import run_batch
from ivig_cds._records import Outcome, Record, evaluate_line, evaluator_for
from ivig_cds.diff._answer import Answer, Compared, parse_transition, transition_key
from ivig_cds.diff._sides import Dirs
from ivig_cds.diff._tally import InputError, Tally

NOT_EVALUATED = "not_evaluated"  # batch's error kind for an engine failure: a knowledge defect


@dataclass(frozen=True)
class PairRecordEvaluator:
    """`records -> outcomes` for two knowledge bases: picklable, like `RecordEvaluator`.

    Attributes:
        old, new: each side's rules and evidence folders; (None, None) for the shipped one.
        source: the input's name, recorded in each changed item.
    """

    old: Dirs
    new: Dirs
    source: str = "<ndjson>"

    def __call__(self, records: Iterable[Record]) -> list[Outcome]:
        old, new = evaluator_for(*self.old), evaluator_for(*self.new)
        outcomes = []
        for line, raw in records:
            before = evaluate_line(old, line, raw)
            if not before.ok and before.label != NOT_EVALUATED:
                outcomes.append(before)  # the input itself is invalid, whichever side reads it
                continue
            after = evaluate_line(new, line, raw)
            if not after.ok and after.label != NOT_EVALUATED:
                outcomes.append(after)
                continue
            outcomes.append(self._compared(line, raw, before, after))
        return outcomes

    def _compared(self, line: int, raw: bytes | None, before: Outcome, after: Outcome) -> Outcome:
        old, new = json.loads(before.json), json.loads(after.json)
        item = Compared(
            unit="patient",
            source=self.source,
            line=line,
            patient=old.get("patient_id") or new.get("patient_id"),
            old=_answer(before.ok, old),
            new=_answer(after.ok, new),
        )
        change = item.change()
        label = transition_key(*item.transition)
        if change is None:
            return Outcome(line, True, label, "")
        context = json.loads(raw) if raw is not None else None
        return Outcome(line, True, label, replace(item, context=context).spool(change))


def _answer(ok: bool, data: dict[str, object]) -> Answer:
    if ok:
        return Answer.from_compact(data)
    problems = data.get("problems")
    reason = problems[0] if isinstance(problems, list) and problems else "not evaluated"
    return Answer.unanswered(str(reason))


_KINDS = {
    "blank_line": "blank line",
    "line_too_long": "line too long",
    "not_utf8": "not UTF-8",
    "invalid_json": "invalid JSON",
    "not_an_object": "not a JSON object",
    "invalid_patient": "invalid patient context",
}


def compare_ndjson(
    path: Path,
    stream: IO[bytes],
    old: Dirs,
    new: Dirs,
    tally: Tally,
    *,
    workers: int,
) -> None:
    """Compare every line of an NDJSON stream into `tally`; bad lines become input errors.

    Raises:
        BatchAbortedError: a worker died; the comparison is incomplete.
    """
    function = PairRecordEvaluator(old, new, str(path))
    with (
        tempfile.TemporaryFile("w+", encoding="utf-8") as results,
        tempfile.TemporaryFile("w+", encoding="utf-8") as errors,
    ):
        summary = run_batch(stream, results, errors, function, workers=workers)
        for key, n in summary.tiers.items():  # every compared line, by transition
            unit_old, unit_new = parse_transition(key)
            tally.count("patient", unit_old, unit_new, n)
        results.seek(0)
        for text in results:
            if text.strip():
                tally.add_changed(text.rstrip("\n"), counted=True)
        errors.seek(0)
        for text in errors:
            record = json.loads(text)
            kind = _KINDS.get(record["error"], record["error"])
            message = f"{kind}: {'; '.join(record['problems'])}"
            tally.add_error(InputError(str(path), message, record["line"]))
