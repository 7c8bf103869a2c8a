"""A FHIR Bulk Data export on disk: its files, its date, and each line sorted to a patient.

An export is a folder of NDJSON files, one resource type per file, a type absent or split in
numbered files (`Condition.ndjson`, `Condition.2.ndjson`, `1.Condition.ndjson`,
`Condition_002.ndjson`...). Each line is triaged on its own (`triage`): it names a patient and
goes on to be grouped, or is skipped (a type the audit does not read, a resource about no
patient) or is an error (with its file, line and reason). A Medication line names no patient:
it is `Shared`, joined later to each patient whose orders refer to it. Nothing here reads
patient data into a message.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ivig_cds._errors import IvigCdsError

READ_TYPES = (
    "Patient",
    "Medication",
    "Condition",
    "Observation",
    "MedicationRequest",
    "MedicationStatement",
    "MedicationAdministration",
    "Procedure",
    "AllergyIntolerance",
)
"""The resource types the audit reads; lines of other types are counted as skipped."""

MAX_LINE_BYTES = 4 << 20  # one resource; a chart's largest are a few KB
_BLOCK_BYTES = 1 << 20
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_FILE = re.compile(r"^(?:\d+[._-])?(?P<type>[A-Z][A-Za-z]+)(?:[._-]\d+)?\.ndjson$")
_MANIFEST_NAMES = ("manifest.json", "status.json")


class ExportError(IvigCdsError, ValueError):
    """The export folder cannot be read as a FHIR Bulk Data export."""


@dataclass(frozen=True)
class ExportFile:
    """One NDJSON file of the export: its name (as reported), path and resource type."""

    name: str
    path: Path
    kind: str


class Staged(NamedTuple):
    """A line that names a patient: grouped with the rest of that patient's resources (and
    the Medication its `medicationReference` names, if any)."""

    patient_id: str
    kind: str
    text: str
    last_updated: str | None
    medication: str | None = None


class Shared(NamedTuple):
    """A Medication line: about no patient, but read with the orders that refer to it."""

    resource_id: str
    data: dict[str, Any]
    text: str


class Rejected(NamedTuple):
    """A line that is not used: `error` (unreadable) or skipped (`error` False), and why."""

    error: bool
    reason: str


def export_files(folder: Path) -> list[ExportFile]:
    """The export's NDJSON files in a fixed order (type, then name), so that every engine
    sees each patient's resources in the same order.

    Raises:
        ExportError: the folder does not exist or holds no NDJSON file named by its type.
    """
    if not folder.is_dir():
        raise ExportError(f"{folder}: not a folder; give the folder of a FHIR Bulk Data export")
    files = []
    for path in sorted(folder.iterdir()):
        match = _FILE.match(path.name)
        if path.is_file() and match:
            files.append(ExportFile(path.name, path, match["type"]))
    if not files:
        raise ExportError(
            f"{folder}: no NDJSON file named by its resource type (Patient.ndjson, "
            "Condition.2.ndjson, ...); is this a FHIR Bulk Data export?"
        )
    return sorted(files, key=lambda f: (f.kind, _natural(f.name)))


def _natural(name: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def manifest_date(folder: Path) -> dt.date | None:
    """The export's `transactionTime` from its saved manifest (the Bulk Data status
    response), if the folder holds one."""
    for name in _MANIFEST_NAMES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            value = json.loads(path.read_bytes()).get("transactionTime")
        except (OSError, ValueError, AttributeError):
            raise ExportError(
                f"{path}: not a Bulk Data manifest (a JSON object with transactionTime)"
            ) from None
        day = parse_date(value)
        if day is None:
            raise ExportError(f"{path}: transactionTime is not a FHIR instant")
        return day
    return None


def parse_date(value: object) -> dt.date | None:
    """The date of a FHIR date, dateTime or instant (`YYYY-MM-DD...`); None otherwise."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def read_lines(path: Path) -> Iterator[tuple[int, int, bytes | None]]:
    """`(line number, byte offset, bytes)` for each line (a final newline ends the last line,
    it does not start a new one); bytes are None for a line over `MAX_LINE_BYTES`, never held
    whole. Read in blocks: a line at a time costs more than parsing it."""
    number, start, position = 0, 0, 0
    pending, too_long = b"", False
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(_BLOCK_BYTES), b""):
            pieces = block.split(b"\n")
            cursor = position
            for i, piece in enumerate(pieces[:-1]):
                line = pending + piece if i == 0 else piece
                number += 1
                long = (too_long and i == 0) or len(line) > MAX_LINE_BYTES
                yield number, start, None if long else _strip(line)
                cursor += len(piece) + 1
                start = cursor
            if len(pieces) > 1:
                pending, too_long = pieces[-1], False
            else:
                pending += pieces[-1]
            if len(pending) > MAX_LINE_BYTES:
                pending, too_long = b"", True
            position += len(block)
    if pending or too_long:
        yield number + 1, start, None if too_long else _strip(pending)


def _strip(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


def triage(kind: str, raw: bytes | None) -> Staged | Shared | Rejected:  # noqa: PLR0911
    """Sort one line of a `kind` file: the patient it is about, or why it is not used."""
    if raw is None:
        return Rejected(True, f"line longer than {MAX_LINE_BYTES} bytes")
    if not raw.strip():
        return Rejected(True, "blank line")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected(True, f"not UTF-8 (byte {exc.start + 1})")
    try:
        data = json.loads(text)
    except ValueError as exc:
        return Rejected(
            True,
            f"invalid JSON: {getattr(exc, 'msg', 'malformed')} "
            f"at column {getattr(exc, 'colno', 0)}",
        )
    except RecursionError:
        return Rejected(True, "invalid JSON: nested too deeply")
    if not isinstance(data, dict):
        return Rejected(True, f"expected a FHIR resource (a JSON object), got {_kind(data)}")
    found = data.get("resourceType")
    if found != kind:
        what = f"'{found[:40]}'" if isinstance(found, str) else "no resourceType"
        return Rejected(True, f"{what} in a file of {kind} resources")
    if kind not in READ_TYPES:
        return Rejected(False, f"{kind} is not read by the audit")
    if kind == "Medication":
        rid = data.get("id")
        if not isinstance(rid, str) or not FHIR_ID.match(rid):
            return Rejected(True, "no id: a Medication is found by its id")
        return Shared(rid, data, text.replace("\r", " "))
    patient = data.get("id") if kind == "Patient" else _patient_of(data)
    if not isinstance(patient, str) or not patient:
        field = "id" if kind == "Patient" else _reference_field(kind)
        return Rejected(True, f"no patient: {field} is missing or not a Patient reference")
    if "\r" in text:  # only possible as JSON whitespace: keep lines one record each
        text = text.replace("\r", " ")
    meta = data.get("meta")
    updated = meta.get("lastUpdated") if isinstance(meta, dict) else None
    return Staged(
        patient, kind, text, updated if isinstance(updated, str) else None, _medication_of(data)
    )


def _medication_of(data: dict[str, Any]) -> str | None:
    """The id of the Medication a medication resource refers to (`Medication/<id>`, as the
    adapter resolves it), if any."""
    holder = data.get("medicationReference")
    reference = holder.get("reference") if isinstance(holder, dict) else None
    if isinstance(reference, str) and reference.startswith("Medication/"):
        return reference.removeprefix("Medication/") or None
    return None


def _reference_field(kind: str) -> str:
    return "patient.reference" if kind == "AllergyIntolerance" else "subject.reference"


def _patient_of(data: dict[str, Any]) -> str | None:
    holder = data.get("patient" if data["resourceType"] == "AllergyIntolerance" else "subject")
    reference = holder.get("reference") if isinstance(holder, dict) else None
    if not isinstance(reference, str):
        return None
    parts = reference.rstrip("/").split("/")  # relative `Patient/1` or an absolute URL
    if len(parts) < 2 or parts[-2] != "Patient":
        if len(parts) >= 4 and parts[-4] == "Patient" and parts[-2] == "_history":
            return parts[-3] or None
        return None
    return parts[-1] or None


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__
