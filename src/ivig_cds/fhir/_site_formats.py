"""The formats of a site code map, read into `SiteCodeEntry`s with each problem located.

A concept is a group of the code tables and one of its values, written `<group>/<value>`
(`ms_diagnosis/RRMS`, `medication/ivig`) in the code system `urn:ivig-cds:concept`. A map is:

- a FHIR R4 ConceptMap (JSON): per `group`, `source` the site's code system and `target`
  `urn:ivig-cds:concept`; per `element`, `code` the site code and one `target` whose `code` is
  the concept, with `equivalence` `equivalent`, `equal`, `wider` or `subsumes` (the concept
  covers the site code);
- a FHIR R4 ValueSet per concept (JSON): one `identifier` with system `urn:ivig-cds:concept`
  and value the concept; its codes listed in `compose.include[].concept[]` (with the include's
  `system`) or in `expansion.contains[]`;
- a Bundle of ConceptMaps and ValueSets, or the code tables' own YAML (`groups:`, as in
  `fhir/codes/*.yaml`; a `.yaml`/`.yml` file).

Anything that would need a guess (another target system, a narrower equivalence, a filter, an
exclusion, dependsOn) is a problem, not skipped.
"""

from __future__ import annotations

import bisect
import difflib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ivig_cds._errors import KnowledgeIssue
from ivig_cds._json import JsonProblem, loads_strict
from ivig_cds._yaml import (
    LocatedDocument,
    YamlProblem,
    parse_yaml,
    read_limited,
    shorten,
)
from ivig_cds.fhir._codes import GROUP_VALUES, CodeEntry, SiteCodeEntry

CONCEPT_SYSTEM = "urn:ivig-cds:concept"
# The target covers the source code: the site code means (a kind of) the concept.
_COVERING = frozenset({"equivalent", "equal", "wider", "subsumes"})
_CONCEPTS = sorted(f"{g}/{v}" for g, values in GROUP_VALUES.items() for v in values)

Loc = tuple[str | int, ...]
# A formulary's ConceptMap outgrows the 1 MiB of a knowledge file.
MAX_MAP_BYTES = 16 << 20


class SiteMapReader:
    """One file's codes, its problems appended to the shared list."""

    def __init__(self, name: str, issues: list[KnowledgeIssue]) -> None:
        self.name = name
        self.issues = issues
        self.doc = LocatedDocument(None, {})

    def problem(self, loc: Loc, message: str) -> None:
        line, column = self.doc.locate(loc) or (None, None)
        self.issues.append(KnowledgeIssue(self.name, line, column, message))

    def read(self) -> LocatedDocument | None:
        try:
            raw = read_limited(self.name, MAX_MAP_BYTES)
        except OSError as exc:
            self.problem((), f"cannot read the file: {exc.strerror or type(exc).__name__}")
            return None
        try:
            if Path(self.name).suffix.lower() in (".yaml", ".yml"):
                return parse_yaml(raw, max_bytes=MAX_MAP_BYTES)
            if len(raw) > MAX_MAP_BYTES:
                raise JsonProblem(f"file is larger than {MAX_MAP_BYTES >> 20} MiB")
            text = raw.decode("utf-8-sig")
            return LocatedDocument(loads_strict(text), json_positions(text))
        except UnicodeDecodeError as exc:
            self.problem((), f"file is not UTF-8 text (bad byte at offset {exc.start})")
        except (JsonProblem, YamlProblem) as exc:
            kind = "" if isinstance(exc, YamlProblem) else "invalid JSON: "
            self.issues.append(KnowledgeIssue(self.name, exc.line, exc.column, kind + exc.message))
        return None

    def entries(self, data: object) -> list[SiteCodeEntry]:
        if isinstance(data, Mapping) and "groups" in data and "resourceType" not in data:
            return self.code_table(data)
        return self.resource(data, ())

    def resource(self, data: object, loc: Loc) -> list[SiteCodeEntry]:
        kind = data.get("resourceType") if isinstance(data, Mapping) else None
        if kind == "ConceptMap":
            return self.concept_map(data, loc)  # type: ignore[arg-type]
        if kind == "ValueSet":
            return self.value_set(data, loc)  # type: ignore[arg-type]
        if kind == "Bundle" and not loc:
            entries = _list(data, "entry")  # type: ignore[arg-type]
            found: list[SiteCodeEntry] = []
            for i, entry in enumerate(entries):
                item = entry.get("resource") if isinstance(entry, Mapping) else None
                found.extend(self.resource(item, ("entry", i, "resource")))
            if not entries:
                self.problem(loc, "the Bundle has no entries; expected ConceptMaps or ValueSets")
            return found
        shown = f"a {shorten(kind)}" if isinstance(kind, str) else "no resourceType"
        self.problem(
            loc,
            f"{shown}: expected a FHIR ConceptMap, a ValueSet per concept, a Bundle of them, "
            "or a YAML code table (groups:)",
        )
        return []

    def concept_map(self, data: Mapping[str, Any], loc: Loc) -> list[SiteCodeEntry]:
        found: list[SiteCodeEntry] = []
        groups = _list(data, "group")
        if not groups:
            self.problem(loc, "the ConceptMap has no group; see the formats in the README")
        for gi, group in enumerate(_maps(groups)):
            at: Loc = (*loc, "group", gi)
            system = self.system(group.get("source"), (*at, "source"), "group.source")
            if group.get("target") != CONCEPT_SYSTEM:
                self.problem(
                    (*at, "target") if "target" in group else at,
                    f"group.target must be {CONCEPT_SYSTEM} (the concepts of ivig-cds)",
                )
                continue
            for ei, element in enumerate(_maps(_list(group, "element"))):
                where: Loc = (*at, "element", ei)
                code = self.code(element.get("code"), (*where, "code"))
                targets = _list(element, "target")
                if not targets:
                    self.problem(where, "the element has no target; give its concept")
                for ti, target in enumerate(_maps(targets)):
                    there: Loc = (*where, "target", ti)
                    if target.get("equivalence") not in _COVERING:
                        self.problem(
                            (*there, "equivalence") if "equivalence" in target else there,
                            "equivalence must be equivalent, equal, wider or subsumes (the "
                            "concept covers the code); leave other codes out",
                        )
                        continue
                    if "dependsOn" in target or "product" in target:
                        self.problem(there, "dependsOn and product are not read; leave them out")
                        continue
                    concept = self.concept(target.get("code"), (*there, "code"))
                    if system and code and concept:
                        found.append(self.entry(system, code, element, concept, (*where, "code")))
        return found

    def value_set(self, data: Mapping[str, Any], loc: Loc) -> list[SiteCodeEntry]:
        named = [
            (i, item)
            for i, item in enumerate(_list(data, "identifier"))
            if isinstance(item, Mapping) and item.get("system") == CONCEPT_SYSTEM
        ]
        concept = None
        if len(named) != 1:
            self.problem(
                loc,
                f"a ValueSet names its concept with one identifier of system {CONCEPT_SYSTEM} "
                "and value <group>/<value> (e.g. ms_diagnosis/RRMS)",
            )
        else:
            concept = self.concept(named[0][1].get("value"), (*loc, "identifier", named[0][0]))
        compose = _field(data, "compose")
        if "exclude" in compose:
            self.problem(
                (*loc, "compose", "exclude"),
                "compose.exclude is not read; list only the codes that mean the concept",
            )
        codes: list[tuple[str | None, Mapping[str, Any], Loc]] = []
        for ii, include in enumerate(_maps(_list(compose, "include"))):
            at: Loc = (*loc, "compose", "include", ii)
            if "filter" in include or "valueSet" in include:
                self.problem(
                    at,
                    "only codes listed in concept[] are read; expand the filter or "
                    "value set into codes",
                )
            system = self.system(include.get("system"), (*at, "system"), "include.system")
            for ci, item in enumerate(_maps(_list(include, "concept"))):
                codes.append((system, item, (*at, "concept", ci)))
        for ci, item in enumerate(_maps(_list(_field(data, "expansion"), "contains"))):
            at = (*loc, "expansion", "contains", ci)
            codes.append((self.system(item.get("system"), (*at, "system"), "system"), item, at))
        if not codes:
            self.problem(loc, "the ValueSet lists no codes (compose.include[].concept[])")
        found = []
        for system, item, at in codes:
            code = self.code(item.get("code"), (*at, "code"))
            if system and code and concept:
                found.append(self.entry(system, code, item, concept, (*at, "code")))
        return found

    def code_table(self, data: Mapping[str, Any]) -> list[SiteCodeEntry]:
        found = []
        for key in data:
            if key != "groups":
                self.problem((key,), f"unknown key '{shorten(str(key))}'; expected only groups")
        groups = data["groups"] if isinstance(data["groups"], Mapping) else {}
        for name, group in groups.items():
            allowed = GROUP_VALUES.get(name)
            if allowed is None:
                self.problem(
                    ("groups", name),
                    f"unknown group '{shorten(str(name))}'{_suggest(str(name), GROUP_VALUES)}",
                )
                continue
            codes = group.get("codes") if isinstance(group, Mapping) else None
            if not isinstance(codes, list):
                self.problem(("groups", name), "expected codes: a list of entries")
                continue
            for i, item in enumerate(codes):
                at: Loc = ("groups", name, "codes", i)
                try:
                    entry = CodeEntry.model_validate(item)
                except ValidationError as exc:
                    for e in exc.errors(include_url=False, include_input=False):
                        self.problem((*at, *e["loc"]), f"{_dotted(e['loc'])}: {e['msg']}")
                    continue
                if entry.value not in allowed:
                    self.problem(
                        (*at, "value"),
                        f"unknown concept '{name}/{entry.value}'"
                        f"{_suggest(f'{name}/{entry.value}', _CONCEPTS)}",
                    )
                    continue
                found.append(
                    self.entry(entry.system, entry.code, item, (name, entry.value), (*at, "code"))
                )
        return found

    def system(self, value: object, loc: Loc, field: str) -> str | None:
        text = value.strip() if isinstance(value, str) else ""
        if text.startswith(("http:", "https:", "urn:")) and " " not in text:
            return text
        self.problem(loc, f"{field} must be the code system's URI (http..., https... or urn:...)")
        return None

    def code(self, value: object, loc: Loc) -> str | None:
        if isinstance(value, str) and value.strip() and len(value) <= 64 and " " not in value:
            return value.strip()
        self.problem(loc, "code must be a code of at most 64 characters without spaces")
        return None

    def concept(self, value: object, loc: Loc) -> tuple[str, str] | None:
        text = value if isinstance(value, str) else ""
        group, _, name = text.partition("/")
        if name in GROUP_VALUES.get(group, ()):
            return group, name
        self.problem(loc, f"unknown concept '{shorten(text)}'{_suggest(text, _CONCEPTS)}")
        return None

    def entry(
        self, system: str, code: str, item: Mapping[str, Any], concept: tuple[str, str], loc: Loc
    ) -> SiteCodeEntry:
        line, column = self.doc.locate(loc) or (None, None)
        display = item.get("display")
        return SiteCodeEntry(
            system=system,
            code=code,
            display=display.strip()[:2000]
            if isinstance(display, str) and display.strip()
            else code,
            value=concept[1],
            group=concept[0],
            verified=f"site map {self.name}" + (f":{line}" if line else ""),
            site_file=self.name,
            line=line,
            column=column,
        )


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')


def json_positions(text: str) -> dict[Loc, tuple[int, int]]:
    """Line and column of each value of valid JSON, a member located at its key (as
    `_yaml.node_positions` does, at a hundredth of its cost on a large map)."""
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    marks: dict[Loc, tuple[int, int]] = {}
    stack: list[list[Any]] = []  # [path, is_object, array index or member key, expecting key]

    def at(offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(starts, offset)
        return line, offset - starts[line - 1] + 1

    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        top = stack[-1] if stack else None
        if top is not None and top[1] and top[3] and token.startswith('"'):
            top[2], top[3] = str(json.loads(token)), False
            marks[(*top[0], top[2])] = at(match.start())
            continue
        if token in ",:":
            if top is not None and token == ",":
                top[2], top[3] = (top[2], True) if top[1] else (top[2] + 1, False)
            continue
        if token in "}]":
            stack.pop()
            continue
        path: Loc = () if top is None else (*top[0], top[2])
        marks.setdefault(path, at(match.start()))
        if token in "{[":
            stack.append([path, token == "{", 0, token == "{"])
    return marks


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    return value if isinstance(value, list) else []


def _field(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def _maps(items: list[Any]) -> list[Mapping[str, Any]]:
    """Each item, an empty mapping standing in for one that is not (its fields then missing)."""
    return [item if isinstance(item, Mapping) else {} for item in items]


def _dotted(loc: Iterable[object]) -> str:
    return ".".join(str(p) for p in loc) or "entry"


def _suggest(wrong: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(wrong, list(known), n=1)
    return f"; did you mean {close[0]}?" if close else f"; known: {', '.join(sorted(known))}"
