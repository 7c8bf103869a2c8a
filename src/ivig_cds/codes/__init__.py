"""How a site's codes meet the FHIR adapter's code tables: `ivig-cds codes coverage`.

    _inputs     FHIR R4 Bundles, NDJSON files and Bulk Data exports, read leniently
    _tally      every code the adapter reads, with the patients and resources behind it
    _words      which unmapped codes look relevant (their display or text; never a mapping)
    _coverage   the report: relevant unmapped codes, mapped codes with their tables
    _formats    text, CSV, JSON, and the starter ConceptMap of the unmapped codes
    _command    the command, registered in `cli/app.py`

Everything loads on first use: `commands` when `cli.app` registers it (it takes the command
line's shared help formatting from `cli.common`, so the command line loads first), the rest
when a report runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ivig_cds.codes._command import commands
    from ivig_cds.codes._coverage import CodeUse, Coverage, TableMapping, code_coverage
    from ivig_cds.codes._formats import (
        concept_map,
        render_csv,
        render_json,
        render_text,
    )
    from ivig_cds.codes._words import Category, Match

_LAZY = {
    "commands": "_command",
    "CodeUse": "_coverage",
    "Coverage": "_coverage",
    "TableMapping": "_coverage",
    "code_coverage": "_coverage",
    "concept_map": "_formats",
    "render_csv": "_formats",
    "render_json": "_formats",
    "render_text": "_formats",
    "Category": "_words",
    "Match": "_words",
}

__all__ = [
    "Category",
    "CodeUse",
    "Coverage",
    "Match",
    "TableMapping",
    "code_coverage",
    "commands",
    "concept_map",
    "render_csv",
    "render_json",
    "render_text",
]


def __getattr__(name: str) -> Any:
    if name == "commands":  # the command line first: it registers `commands`, which uses it
        importlib.import_module("ivig_cds.cli")
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
