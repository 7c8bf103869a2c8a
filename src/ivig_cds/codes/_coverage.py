"""The coverage of a site's data by the code tables: what maps, and what looks relevant but does
not.

A code is mapped when `CodeTables.lookup` finds it in any group; each mapping is reported with
its group, value, the table file that holds it and the entry's `verified` source. An unmapped
code is listed only when its display or text looks relevant (`_words`); the others are only
counted. Nothing is ever mapped by its words.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ivig_cds._yaml import YamlProblem, parse_yaml
from ivig_cds.codes._inputs import sources
from ivig_cds.codes._tally import CodeCount, Tally
from ivig_cds.codes._words import Match
from ivig_cds.fhir._codes import (
    GROUP_VALUES,
    CodeEntry,
    CodeFile,
    CodeTables,
    SiteCodeEntry,
    default_code_tables,
)

KIND_ORDER = ("condition", "medication", "observation", "allergy", "procedure")


@dataclass(frozen=True, slots=True)
class TableMapping:
    """One table entry that maps a code: its group and value, the table file (None when the
    entry is not from a shipped table, such as a site map) and where it was verified."""

    group: str
    value: str
    table: str | None
    verified: str


@dataclass(frozen=True, slots=True)
class CodeUse:
    """One code as used in the data: where, how often, and what the tables make of it.

    `matched` is the relevant word of an unmapped code; `mapped_by_other_code` counts the
    resources carrying an unmapped code that map anyway through another of their codes.
    """

    kind: str
    system: str
    code: str
    display: str | None
    patients: int
    resources: int
    mapped_by_other_code: int
    matched: Match | None
    mappings: tuple[TableMapping, ...]


@dataclass(frozen=True, slots=True)
class Coverage:
    """A coverage report: relevant unmapped codes, mapped codes, and what could not be read.

    `other_unmapped` counts the unmapped codes that do not look relevant (not listed);
    `problems` has one line per input, file or NDJSON file that could not be read (in part);
    `site_codes` describes the site code maps in force (files, codes, hash), if any.
    """

    inputs: tuple[str, ...]
    resources: int
    patients: int
    unmapped: tuple[CodeUse, ...]
    mapped: tuple[CodeUse, ...]
    other_unmapped: int
    problems: tuple[str, ...]
    site_codes: Mapping[str, Any] | None = None


def code_coverage(paths: Iterable[str | Path], tables: CodeTables | None = None) -> Coverage:
    """Read every input in `paths` and report which of its codes `tables` map.

    Args:
        paths: FHIR R4 Bundle files (JSON), folders of them, NDJSON files, and FHIR Bulk Data
            export folders.
        tables: the code tables to check against (default: the shipped ones); with site code
            maps, `default_code_tables().with_site_maps(load_site_maps(files))`.

    Returns:
        The report; inputs that could not be read (in part) are listed in `problems`, never
        raised.
    """
    tables = tables if tables is not None else default_code_tables()
    given = [Path(p) for p in paths]
    problems: list[str] = []

    @functools.cache
    def found(system: str, code: str) -> tuple[tuple[str, CodeEntry], ...]:
        hits = ((group, tables.lookup(group, system or None, code)) for group in GROUP_VALUES)
        return tuple((group, entry) for group, entry in hits if entry is not None)

    tally = Tally(mapped=lambda system, code: bool(found(system, code)))
    for source in sources(given, problems):
        for resource in source.resources:
            tally.add(resource, source.medications)
    files = shipped_table_files()
    unmapped: list[CodeUse] = []
    mapped: list[CodeUse] = []
    other = 0
    for (kind, system, code), count in tally.codes.items():
        hits = found(system, code)
        if hits:
            mappings = tuple(
                TableMapping(group, entry.value, _table(files, group, entry), entry.verified)
                for group, entry in hits
            )
            mapped.append(_use(kind, system, code, count, match=None, mappings=mappings))
        elif count.match is not None:
            unmapped.append(_use(kind, system, code, count, match=count.match, mappings=()))
        else:
            other += 1
    return Coverage(
        inputs=tuple(str(p) for p in given),
        resources=tally.resources,
        patients=len(tally.patients),
        unmapped=tuple(sorted(unmapped, key=_order)),
        mapped=tuple(sorted(mapped, key=_order)),
        other_unmapped=other,
        problems=tuple(problems),
        site_codes=tables.site_maps.describe() if tables.site_maps is not None else None,
    )


def _use(
    kind: str,
    system: str,
    code: str,
    count: CodeCount,
    *,
    match: Match | None,
    mappings: tuple[TableMapping, ...],
) -> CodeUse:
    return CodeUse(
        kind=kind,
        system=system,
        code=code,
        display=count.display,
        patients=len(count.patients),
        resources=count.resources,
        mapped_by_other_code=count.mapped_by_other_code,
        matched=match,
        mappings=mappings,
    )


def _order(use: CodeUse) -> tuple[int, int, int, str, str]:
    """By kind, then the most patients (then resources) first, then system and code."""
    return (KIND_ORDER.index(use.kind), -use.patients, -use.resources, use.system, use.code)


@functools.cache
def shipped_table_files() -> Mapping[tuple[str, CodeEntry], str]:
    """The shipped table file (`conditions.yaml`...) of each (group, entry) of the shipped
    tables, which `CodeTables` does not keep."""
    folder = Path(str(resources.files("ivig_cds.fhir"))) / "codes"
    files: dict[tuple[str, CodeEntry], str] = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            code_file = CodeFile.model_validate(parse_yaml(path.read_bytes()).data)
        except (YamlProblem, ValueError):  # the tables' own loader reports it, with its place
            continue
        for group, entries in code_file.groups.items():
            files.update({(group, entry): path.name for entry in entries.codes})
    return files


def _table(files: Mapping[tuple[str, CodeEntry], str], group: str, entry: CodeEntry) -> str | None:
    """The shipped table file of an entry, or the site code map it came from."""
    if isinstance(entry, SiteCodeEntry):
        return entry.site_file
    return files.get((group, entry))


def kinds_of(uses: Sequence[CodeUse]) -> dict[str, list[CodeUse]]:
    """`uses` by kind, in `KIND_ORDER`, kinds without a use left out."""
    grouped: dict[str, list[CodeUse]] = {kind: [] for kind in KIND_ORDER}
    for use in uses:
        grouped[use.kind].append(use)
    return {kind: listed for kind, listed in grouped.items() if listed}
