"""`run_population`: export folder in, `results.ndjson`, `errors.ndjson`, `summary.json` and
`report.html` out.

One pass over the export triages every line (`_export.triage`) into a staging file of
patient-keyed resources; the engine groups it by key and audits each patient; this module
writes the outcomes as they come, in key order, and counts. Every line of every file ends
counted once: used (read by the mapping), skipped (a type or resource the audit does not read)
or an error (in `errors.ndjson`), and the summary checks the sum per file. Memory does not
grow with the export: the staging file and the errors are on disk, the engine streams.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivig_cds._errors import IvigCdsError
from ivig_cds._pseudonym import Pseudonymizer
from ivig_cds._vocabulary import Tier
from ivig_cds.fhir import CodeTables, site_code_tables
from ivig_cds.population._audit import PatientAuditor
from ivig_cds.population._engines import SEPARATOR, Engine, duckdb_engine
from ivig_cds.population._error_log import ErrorLog
from ivig_cds.population._export import (
    FHIR_ID,
    ExportError,
    ExportFile,
    Rejected,
    Shared,
    export_files,
    manifest_date,
    parse_date,
    read_lines,
    triage,
)
from ivig_cds.population._medications import MedicationIndex
from ivig_cds.population._report import write_report

KEY_CACHE = 100_000  # FHIR ids whose key (an HMAC) is remembered: a bounded cache

# Doses given where the sources say no (or too little) or the decision lacked data. Doses for
# patients the sources do not address (outside_evidence) are counted apart: the sources cannot
# judge them either way, so they are flagged for review, not called unsupported.
UNSUPPORTED = tuple(
    t.value for t in (Tier.NOT_RECOMMENDED, Tier.INSUFFICIENT_EVIDENCE, Tier.INDETERMINATE)
)


class OutputError(IvigCdsError, ValueError):
    """The output folder cannot be made, or is a file."""


@dataclass
class FileCount:
    """Lines of one file: read = used + skipped + errors."""

    name: str
    read: int = 0
    used: int = 0
    skipped: int = 0
    errors: int = 0


@dataclass
class PopulationRun:
    """What a run did: the date used, the counts per file, and the summary written."""

    as_of: dt.date
    as_of_source: str
    files: list[FileCount]
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(f.errors for f in self.files)


def run_population(
    export: Path,
    out: Path,
    *,
    as_of: dt.date | None = None,
    pseudonymizer: Pseudonymizer | None = None,
    engine: Engine | None = None,
    code_maps: Sequence[str | Path] = (),
) -> PopulationRun:
    """Audit a FHIR Bulk Data export; see the module docstring.

    Args:
        export: the export's folder.
        out: the output folder (created; its four files are replaced).
        as_of: the date of each patient's tier "now"; default the export's `transactionTime`
            (from its saved manifest), else the newest `meta.lastUpdated` in it.
        pseudonymizer: keys results by HMAC of the FHIR patient id; None keeps the ids.
        engine: `duckdb_engine(workers)` (default, one process) or `spark_engine(master)`.
        code_maps: site code map files (`--codes`), checked before anything is read; the
            summary then names them and their hash (`site_codes`).

    Raises:
        SiteMapError: a site code map is invalid (every problem listed).
        ExportError: the folder is not an export, or it has no date and none was given.
        OutputError: `out` is a file, or cannot be created (checked before any work).
    """
    maps = tuple(str(path) for path in code_maps)
    codes = site_code_tables(maps) if maps else None
    files = export_files(export)
    _output_folder(out)
    counts = [FileCount(f.name) for f in files]
    source = "--as-of"
    if as_of is None:
        as_of, source = manifest_date(export), "the export manifest's transactionTime"
    with tempfile.TemporaryDirectory(prefix="ivig-population-") as scratch_name:
        scratch = Path(scratch_name)
        staging = scratch / "staged.txt"
        errors = ErrorLog(scratch)
        chosen = engine or duckdb_engine()
        newest = _stage(
            files, counts, errors, staging, pseudonymizer, with_text=chosen.with_text, codes=codes
        )
        if as_of is None:
            as_of, source = newest, "the newest meta.lastUpdated in the export"
        if as_of is None:
            raise ExportError(
                f"{export}: no export date (no manifest.json with transactionTime, no "
                "meta.lastUpdated in any resource); give one with --as-of"
            )
        run = PopulationRun(as_of, source, counts)
        tally = _Tally()
        with (out / "results.ndjson").open("w", encoding="utf-8") as results:
            sources = [f.path for f in files]
            for outcome in chosen(staging, sources, PatientAuditor(as_of, code_maps=maps), scratch):
                if outcome.result is not None:
                    results.write(outcome.result + "\n")
                tally.add(json.loads(outcome.tally))
                for error in outcome.errors:
                    errors.add(*error)
                for index, used in outcome.used:
                    counts[index].used += used
        for index, n in errors.per_file.items():
            counts[index].errors = n
        errors.write(out / "errors.ndjson", [f.name for f in files])
    run.summary = tally.summary(run)
    if codes is not None and codes.site_maps is not None:
        run.summary["site_codes"] = codes.site_maps.describe()
    (out / "summary.json").write_text(json.dumps(run.summary, indent=2) + "\n", encoding="utf-8")
    write_report(out / "report.html", run.summary)
    return run


def _output_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise OutputError(
            f"{out} is a file; --out names a folder (for results.ndjson, errors.ndjson, "
            "summary.json and report.html)"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create the output folder {out}: {exc.strerror or type(exc).__name__}"
        ) from None


def _stage(
    files: list[ExportFile],
    counts: list[FileCount],
    errors: ErrorLog,
    staging: Path,
    pseudonymizer: Pseudonymizer | None,
    *,
    with_text: bool,
    codes: CodeTables | None = None,
) -> dt.date | None:
    """Triage every line; index the patients' lines in `staging` (with their text if
    `with_text`), each order's Medication beside it; return the newest lastUpdated."""
    newest = ""
    keys: dict[str, str] = {}
    medications = MedicationIndex(with_text=with_text, codes=codes)

    def key_of(patient_id: str) -> str:
        key = keys.get(patient_id)
        if key is None:
            key = pseudonymizer(patient_id) if pseudonymizer else patient_id
            if len(keys) < KEY_CACHE:
                keys[patient_id] = key
        return key

    with staging.open("w", encoding="utf-8") as out:

        def write(key: str, where: tuple[int, int, int, int], text: str | None) -> None:
            fields = [key, *map(str, where)]
            out.write(SEPARATOR.join([*fields, text or ""] if with_text else fields) + "\n")

        for index, file in enumerate(files):
            count = counts[index]
            for line, offset, raw in read_lines(file.path):
                count.read += 1
                found = triage(file.kind, raw)
                where = (index, line, offset, len(raw) if raw is not None else 0)
                reason: str | None = None
                if isinstance(found, Shared):
                    reason = medications.add(found.resource_id, found.data, found.text, where)
                elif isinstance(found, Rejected):
                    reason = found.reason if found.error else None
                    count.skipped += not found.error
                elif not FHIR_ID.match(found.patient_id):
                    reason = "the patient's id is not a FHIR id"
                else:
                    key = key_of(found.patient_id)
                    newest = max(newest, found.last_updated or "")
                    write(key, where, found.text)
                    joined = medications.referred(found.medication) if found.medication else None
                    if joined is not None:
                        write(key, joined[:4], joined[4])
                if reason is not None:
                    errors.add(index, line, reason)
    for index, used, skipped in medications.counts():
        counts[index].used += used
        counts[index].skipped += skipped
    return parse_date(newest)


class _Tally:
    """Counts for `summary.json`, from each patient's compact tally."""

    def __init__(self) -> None:
        self.patients = 0
        self.with_ms = 0
        self.phenotype_tier: Counter[tuple[str, str]] = Counter()
        self.without_ms: Counter[str] = Counter()
        self.missing: Counter[str] = Counter()
        self.doses: Counter[tuple[str, str]] = Counter()
        self.dose_missing: Counter[str] = Counter()
        self.exposed_patients: Counter[str] = Counter()

    def add(self, tally: dict[str, Any]) -> None:
        self.patients += 1
        if not tally["ms"]:
            self.without_ms[tally["phenotype"] or "unknown"] += 1
            return
        self.with_ms += 1
        tier = tally["tier"] or "not_evaluated"
        self.phenotype_tier[(tally["phenotype"] or "unknown", tier)] += 1
        if tier == "indeterminate":
            self.missing.update(tally["missing"])
        tiers = set()
        for kind, judged, missing in tally["doses"]:
            dose_tier = judged or "undated"
            self.doses[(kind, dose_tier)] += 1
            tiers.add(dose_tier)
            if dose_tier == "indeterminate":
                self.dose_missing.update(missing)
        for dose_tier in tiers:
            self.exposed_patients[dose_tier] += 1

    def summary(self, run: PopulationRun) -> dict[str, Any]:
        doses_by_tier: Counter[str] = Counter()
        for (_, tier), n in self.doses.items():
            doses_by_tier[tier] += n
        return {
            "as_of": run.as_of.isoformat(),
            "as_of_source": run.as_of_source,
            "files": [
                vars(f) | {"balanced": f.read == f.used + f.skipped + f.errors} for f in run.files
            ],
            "patients": self.patients,
            "patients_with_ms": self.with_ms,
            "patients_without_ms": dict(sorted(self.without_ms.items())),
            "by_phenotype_and_tier": [
                {"phenotype": p, "tier": t, "patients": n}
                for (p, t), n in sorted(self.phenotype_tier.items())
            ],
            "missing_data_when_indeterminate": _ranked(self.missing),
            "ivig": {
                "doses_by_tier": dict(sorted(doses_by_tier.items())),
                "doses_by_kind_and_tier": [
                    {"kind": k, "tier": t, "doses": n} for (k, t), n in sorted(self.doses.items())
                ],
                "patients_by_tier": dict(sorted(self.exposed_patients.items())),
                "doses_unsupported": sum(doses_by_tier[t] for t in UNSUPPORTED),
                # the sources cannot judge these (a child, a newer therapy): for review, apart
                "doses_outside_evidence": doses_by_tier[Tier.OUTSIDE_EVIDENCE.value],
                "missing_data_when_indeterminate": _ranked(self.dose_missing),
            },
        }


def _ranked(counter: Counter[str]) -> list[dict[str, Any]]:
    ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    return [{"fact": fact, "count": n} for fact, n in ranked]
