"""FHIR Bulk Data exports: the population audit's reading, run once, judged by both sides.

The export is triaged, grouped and mapped exactly as `ivig-cds population` does it
(`run_population` with its DuckDB engine and worker processes); only the per-patient auditor
changes. `PairEngine` wraps the engine so that each patient's resources go to a `PairAuditor`,
which runs the population's own `PatientAuditor` once per knowledge base: the tier now and
each IVIG dose judged as of its date, from the record as it stood then. Its results line holds
both judgements; this module turns each into compared items, one for the patient now and one
per dose.

The population audit records the tier, the deciding rule and the missing data of each
judgement, so those are what is compared here (no cautions, certainty or other findings), and
it maps records with the shipped record windows, so a change to `record-windows.yaml` does not
show on an export (it does on FHIR Bundles).
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivig_cds._pseudonym import Pseudonymizer
from ivig_cds.diff._answer import Answer, Compared
from ivig_cds.diff._sides import Dirs
from ivig_cds.diff._tally import InputError, Tally
from ivig_cds.population._audit import PatientAuditor, PatientOutcome, Row
from ivig_cds.population._engines import Engine, duckdb_engine
from ivig_cds.population._run import run_population


@dataclass(frozen=True)
class PairAuditor(PatientAuditor):
    """The population's auditor run with each knowledge base; picklable, for any engine.

    Its results line is `{"old": <the old side's line>, "new": <the new side's line>}`; the
    counts it reports (tally, errors, lines used) are the new side's, the same on both sides.
    """

    old: Dirs = (None, None)
    new: Dirs = (None, None)

    def __call__(self, key: str, rows: Sequence[Row]) -> PatientOutcome:
        before = PatientAuditor(self.as_of, self.old)(key, rows)
        after = PatientAuditor(self.as_of, self.new)(key, rows)
        if before.result is None and after.result is None:
            return after
        pair = f'{{"old":{before.result or "null"},"new":{after.result or "null"}}}'
        return after._replace(result=pair)


@dataclass(frozen=True)
class PairEngine:
    """An engine that audits each patient with a `PairAuditor` instead of the one it is given."""

    inner: Engine
    old: Dirs
    new: Dirs

    @property
    def with_text(self) -> bool:
        return self.inner.with_text

    def __call__(
        self, staging: Path, sources: Sequence[Path], auditor: PatientAuditor, scratch: Path
    ) -> Iterator[PatientOutcome]:
        pair = PairAuditor(auditor.as_of, old=self.old, new=self.new)
        return self.inner(staging, sources, pair, scratch)


def compare_export(
    export: Path,
    old: Dirs,
    new: Dirs,
    tally: Tally,
    *,
    as_of: dt.date | None = None,
    workers: int = 1,
    pseudonymizer: Pseudonymizer | None = None,
) -> dt.date:
    """Compare every patient with MS on record in an export, now and at each IVIG dose.

    Returns:
        The date the tier "now" was judged at (`as_of`, else the export's own date).

    Raises:
        ExportError: the folder is not a Bulk Data export, or has no date and none was given.
    """
    engine = PairEngine(duckdb_engine(workers), old, new)
    with tempfile.TemporaryDirectory(prefix="ivig-diff-") as scratch:
        out = Path(scratch)
        run = run_population(export, out, as_of=as_of, pseudonymizer=pseudonymizer, engine=engine)
        with (out / "results.ndjson").open(encoding="utf-8") as results:
            for line in results:
                for item in _items(str(export), json.loads(line)):
                    tally.add(item)
        with (out / "errors.ndjson").open(encoding="utf-8") as errors:
            for line in errors:
                error = json.loads(line)
                tally.add_error(
                    InputError(str(export / error["file"]), error["error"], error["line"])
                )
    return run.as_of


def _items(source: str, pair: dict[str, Any]) -> Iterator[Compared]:
    old, new = pair["old"] or {}, pair["new"] or {}
    patient = new.get("patient") or old.get("patient")
    yield Compared(
        unit="patient",
        source=source,
        patient=patient,
        old=Answer.from_judged(old),
        new=Answer.from_judged(new),
    )
    for before, after in zip(old.get("ivig", []), new.get("ivig", []), strict=True):
        dose = {k: after.get(k) for k in ("kind", "resource", "date")}
        yield Compared(
            unit="dose",
            source=source,
            patient=patient,
            dose=dose,
            old=Answer.from_judged(before),
            new=Answer.from_judged(after),
        )
