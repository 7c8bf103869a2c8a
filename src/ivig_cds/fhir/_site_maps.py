"""Site code maps: a hospital's own codes, mapped to the concepts of the code tables.

`load_site_maps` reads each file (`_site_formats`: a FHIR ConceptMap, a ValueSet per concept,
a Bundle of them, or a YAML code table), then checks the codes together: a code mapped to two
concepts, or to another concept than the shipped tables give it, is a problem. Every problem
of every file is collected, at `file:line:column`, before one `SiteMapError`: a map that
loaded is valid, and nothing starts on a bad one.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivig_cds._errors import KnowledgeIssue
from ivig_cds.fhir._codes import (
    CodeEntry,
    CodeTables,
    FhirCodeTableError,
    SiteCodeEntry,
    default_code_tables,
    normal_code,
)
from ivig_cds.fhir._site_formats import CONCEPT_SYSTEM, SiteMapReader

__all__ = ["CONCEPT_SYSTEM", "SiteMapError", "SiteMaps", "load_site_maps", "site_code_tables"]


class SiteMapError(FhirCodeTableError):
    """A site code map is invalid; every problem of every file is listed, with file and line."""

    def __init__(self, issues: list[KnowledgeIssue]) -> None:
        self.issues = issues
        noun = "problem" if len(issues) == 1 else "problems"
        body = "\n".join(str(i) for i in issues)
        super().__init__(f"site code maps are invalid ({len(issues)} {noun}):\n{body}")


@dataclass(frozen=True)
class SiteMaps:
    """The site code maps in force: their files (as given), their codes and their hash.

    `hash` is sha256 over the sorted (system, code, concept) triples, so it changes with what
    the maps say and not with how their files are laid out.
    """

    files: tuple[str, ...]
    entries: tuple[SiteCodeEntry, ...]

    @functools.cached_property
    def hash(self) -> str:
        rows = sorted({(e.system, e.code, f"{e.group}/{e.value}") for e in self.entries})
        text = json.dumps(rows, separators=(",", ":"), ensure_ascii=False)
        return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()

    def describe(self) -> dict[str, Any]:
        """For results, `/health` and `--version`: the files, the number of codes, the hash."""
        return {"files": list(self.files), "codes": len(self.entries), "hash": self.hash}


def load_site_maps(paths: Iterable[str | Path], *, tables: CodeTables | None = None) -> SiteMaps:
    """Read and validate site code maps (formats: see `_site_formats`).

    Args:
        paths: the map files, in the order given (`--codes FILE`, repeated).
        tables: the code tables the maps add to; default the shipped ones.

    Returns:
        The maps, to pass to `CodeTables.with_site_maps`.

    Raises:
        SiteMapError: every problem found: a file unreadable or not JSON/YAML, not a
            ConceptMap, ValueSet or code table, an unknown concept, a code mapped to two
            concepts, or a code the tables already map to another concept.
    """
    found: list[SiteCodeEntry] = []
    issues: list[KnowledgeIssue] = []
    files = tuple(str(p) for p in paths)
    for name in files:
        reader = SiteMapReader(name, issues)
        document = reader.read()
        if document is not None:
            reader.doc = document
            found.extend(reader.entries(document.data))
    entries = _cross_checked(found, tables or default_code_tables(), issues)
    if issues:
        order = {name: i for i, name in enumerate(files)}
        issues.sort(key=lambda i: (order.get(i.path, 0), i.line or 0, i.column or 0))
        raise SiteMapError(issues)
    return SiteMaps(files=files, entries=tuple(entries))


@functools.cache
def site_code_tables(paths: tuple[str, ...]) -> CodeTables:
    """The shipped tables with the maps at `paths`, read once per process (for workers that
    receive paths, not tables). Raises `SiteMapError` like `load_site_maps`."""
    if not paths:
        return default_code_tables()
    return default_code_tables().with_site_maps(load_site_maps(paths))


def _cross_checked(
    found: list[SiteCodeEntry], tables: CodeTables, issues: list[KnowledgeIssue]
) -> list[SiteCodeEntry]:
    """The entries, each code once; a code given two concepts, or another concept than the
    tables give it, is a problem at each entry that says so."""
    kept: dict[tuple[str, str], SiteCodeEntry] = {}
    for entry in found:
        concept = f"{entry.group}/{entry.value}"
        known = tables.meaning(entry.system, entry.code)
        first = kept.get((entry.system, _key(entry)))
        if known is not None and (known[0], known[1].value) != (entry.group, entry.value):
            issues.append(
                _issue(
                    entry,
                    f"{entry.system}|{entry.code} is {known[0]}/{known[1].value} in "
                    f"{_where(tables, *known)}; a site map may not make it {concept}",
                )
            )
        elif first is not None and (first.group, first.value) != (entry.group, entry.value):
            issues.append(
                _issue(
                    entry,
                    f"{entry.system}|{entry.code} is mapped to two concepts: {concept} here and "
                    f"{first.group}/{first.value} at {first.verified.removeprefix('site map ')}; "
                    "keep one",
                )
            )
        elif first is None:
            kept[(entry.system, _key(entry))] = entry
    return list(kept.values())


def _where(tables: CodeTables, group: str, entry: CodeEntry) -> str:
    table = tables.table(group, entry)
    return f"the shipped table {table}" if table else entry.verified


def _key(entry: CodeEntry) -> str:
    return normal_code(entry.system, entry.code)


def _issue(entry: SiteCodeEntry, message: str) -> KnowledgeIssue:
    return KnowledgeIssue(entry.site_file, entry.line, entry.column, message)
