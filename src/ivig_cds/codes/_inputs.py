"""The inputs of a coverage report, read leniently: FHIR R4 Bundles and Bulk Data exports.

A path is a Bundle (or one resource, or a CDS Hooks prefetch object) in a JSON file, a folder
of such files, an NDJSON file, or a FHIR Bulk Data export folder (NDJSON files named by their
resource type, found as `ivig-cds population` finds them). Resources are read as plain JSON,
never validated: a coverage report is for data the adapter may not read yet. What cannot be
read becomes one problem line per file (a bad line of an NDJSON file is counted, with the first
one's line number and reason), never a traceback; no line quotes the data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivig_cds.population._export import ExportError, export_files, read_lines

Resource = dict[str, Any]


@dataclass
class Source:
    """One input's resources, with the Medications its medication resources may name
    (`Medication/<id>`, or a Bundle entry's fullUrl)."""

    name: str
    resources: Iterator[Resource]
    medications: dict[str, Resource] = field(default_factory=dict)


def sources(paths: list[Path], problems: list[str]) -> Iterator[Source]:
    """The inputs behind `paths`, in order; what cannot be read is added to `problems`."""
    for path in paths:
        if path.is_dir():
            yield from _folder(path, problems)
        elif path.suffix.lower() == ".ndjson":
            yield Source(str(path), _ndjson([path], problems))
        else:
            source = _json_file(path, problems)
            if source is not None:
                yield source


def _folder(folder: Path, problems: list[str]) -> Iterator[Source]:
    try:
        files = export_files(folder)
    except ExportError:
        files = []
    except OSError as exc:
        problems.append(f"{folder}: cannot be read ({exc.strerror or type(exc).__name__})")
        return
    if files:  # a Bulk Data export: Medications first, so that orders can name them
        shared = [f.path for f in files if f.kind == "Medication"]
        medications = {
            f"Medication/{m['id']}": m
            for m in _ndjson(shared, problems)
            if isinstance(m.get("id"), str)
        }
        others = [f.path for f in files if f.kind != "Medication"]
        rest = _ndjson(others, problems)
        yield Source(str(folder), _chain(medications.values(), rest), medications)
        return
    bundles = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".json" and p.is_file())
    if not bundles:
        problems.append(
            f"{folder}: holds neither NDJSON files named by resource type (a Bulk Data export) "
            "nor .json files (Bundles); not read"
        )
    for path in bundles:
        source = _json_file(path, problems)
        if source is not None:
            yield source


def _chain(first: Iterable[Resource], rest: Iterator[Resource]) -> Iterator[Resource]:
    yield from first
    yield from rest


def _ndjson(paths: list[Path], problems: list[str]) -> Iterator[Resource]:
    for path in paths:
        bad, first = 0, ""
        try:
            for number, _, raw in read_lines(path):
                resource, why = _line(raw)
                if resource is not None:
                    yield resource
                elif why:
                    bad += 1
                    first = first or f"line {number}: {why}"
        except OSError as exc:
            problems.append(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})")
            continue
        if bad:
            noun = "line" if bad == 1 else "lines"
            problems.append(f"{path}: {bad} {noun} not read (first, {first})")


def _line(raw: bytes | None) -> tuple[Resource | None, str]:
    """A resource, or None with why ("" for a blank line, which is not an error here)."""
    if raw is None:
        return None, "line too long"
    if not raw.strip():
        return None, ""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not UTF-8"
    except (ValueError, RecursionError):
        return None, "invalid JSON"
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        return None, "not a FHIR resource (a JSON object with resourceType)"
    return data, ""


def _json_file(path: Path, problems: list[str]) -> Source | None:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        problems.append(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})")
        return None
    except UnicodeDecodeError:
        problems.append(f"{path}: not UTF-8 text; not read")
        return None
    except json.JSONDecodeError as exc:
        problems.append(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}; not read")
        return None
    except (ValueError, RecursionError):
        problems.append(f"{path}: invalid JSON; not read")
        return None
    resources = _resources_in(data)
    if resources is None:
        problems.append(
            f"{path}: not FHIR JSON (a Bundle, a resource or a CDS Hooks prefetch); not read"
        )
        return None
    medications: dict[str, Resource] = {}
    for url, resource in resources:
        if resource.get("resourceType") == "Medication":
            if isinstance(resource.get("id"), str):
                medications[f"Medication/{resource['id']}"] = resource
            if url:
                medications[url] = resource
    return Source(str(path), iter([r for _, r in resources]), medications)


def _resources_in(data: object) -> list[tuple[str | None, Resource]] | None:
    """`(fullUrl, resource)` of a Bundle's entries, of one resource, or of a CDS Hooks
    prefetch object's values; None if `data` is none of these."""
    if not isinstance(data, Mapping):
        return None
    if "resourceType" not in data:  # a prefetch: each value a resource or a Bundle
        found: list[tuple[str | None, Resource]] = []
        for value in data.values():
            inner = _resources_in(value) if isinstance(value, Mapping) else None
            found.extend(inner or ())
        return found or None
    if data.get("resourceType") != "Bundle":
        return [(None, dict(data))] if isinstance(data.get("resourceType"), str) else None
    found = []
    entries = data.get("entry")
    for entry in entries if isinstance(entries, list) else ():
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if isinstance(resource, Mapping) and isinstance(resource.get("resourceType"), str):
            url = entry.get("fullUrl")
            found.append((url if isinstance(url, str) else None, dict(resource)))
    return found
