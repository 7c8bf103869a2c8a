"""Comparing two knowledge bases over real patients: which answers change, and why.

`ivig-cds diff` evaluates every patient given (patient files, NDJSON contexts, FHIR Bundles,
Bulk Data exports) once with each knowledge base and compares the compact answers: tier,
deciding rule, certainty, cautions, missing data, other findings.

    _answer    the compact answer of one side, and what differs between two (`Compared` items)
    _sides     the two knowledge bases, loaded and compiled once
    _files     patient files and FHIR Bundles, read as `evaluate` reads them
    _ndjson    NDJSON contexts through `batch`'s workers (`PairRecordEvaluator`, picklable)
    _bulk      Bulk Data exports through the population audit (`PairAuditor`, picklable)
    _tally     the transition matrix and the changed items by group, streamed to disk
    _text, _formats, _html    the outputs: text, JSON/NDJSON, one HTML page
    _command   the command, registered in `cli/app.py`

Everything loads on first use: `commands` when `cli.app` registers it (it takes the command
line's shared help formatting from `cli.common`, so it loads after the command line, never
with this package, which would import `cli` in a circle), the rest when a comparison runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ivig_cds.diff._answer import Answer, Change, Compared, compare
    from ivig_cds.diff._bulk import PairAuditor
    from ivig_cds.diff._command import commands
    from ivig_cds.diff._ndjson import PairRecordEvaluator

_LAZY = {
    "Answer": "_answer",
    "Change": "_answer",
    "Compared": "_answer",
    "compare": "_answer",
    "PairAuditor": "_bulk",
    "PairRecordEvaluator": "_ndjson",
    "commands": "_command",
}

__all__ = [
    "Answer",
    "Change",
    "Compared",
    "PairAuditor",
    "PairRecordEvaluator",
    "commands",
    "compare",
]


def __getattr__(name: str) -> Any:
    if name == "commands":  # the command line first: it registers `commands`, which uses it
        importlib.import_module("ivig_cds.cli")
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
