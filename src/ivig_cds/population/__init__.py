"""Population audit: a FHIR Bulk Data export in, an IVIG stewardship audit out.

`_export` finds the files and triages each line to a patient; `_medications` joins the
Medications that orders name to those patients; `_engines` groups them by patient (DuckDB
embedded, or Spark); `_audit` maps and judges one patient (picklable, for any engine); `_run`
writes the outputs (`_error_log` keeps the errors on disk) and `_report` the HTML page;
`_command` is the CLI command.
Only the command is imported eagerly: the rest loads the FHIR models, which the CLI's other
commands should not wait for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ivig_cds.population._command import commands, population

if TYPE_CHECKING:
    from ivig_cds.population._audit import PatientAuditor, PatientOutcome
    from ivig_cds.population._engines import EngineUnavailableError, duckdb_engine, spark_engine
    from ivig_cds.population._export import READ_TYPES, ExportError
    from ivig_cds.population._run import PopulationRun, run_population

_LAZY = {
    "PatientAuditor": "_audit",
    "PatientOutcome": "_audit",
    "EngineUnavailableError": "_engines",
    "duckdb_engine": "_engines",
    "spark_engine": "_engines",
    "READ_TYPES": "_export",
    "ExportError": "_export",
    "PopulationRun": "_run",
    "run_population": "_run",
}

__all__ = [
    "READ_TYPES",
    "EngineUnavailableError",
    "ExportError",
    "PatientAuditor",
    "PatientOutcome",
    "PopulationRun",
    "commands",
    "duckdb_engine",
    "population",
    "run_population",
    "spark_engine",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
