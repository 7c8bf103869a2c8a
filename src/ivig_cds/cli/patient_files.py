"""Find and read patient files for the command line: files, directories and standard input.

Every way a file can fail (unreadable, not YAML/JSON, an invalid patient) becomes one
`PatientFileError` naming the file, with each problem located at its line and column when the
file says where, so that the command line reports them all the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NoReturn

from ivig_cds._errors import InvalidPatientError, IvigCdsError
from ivig_cds._json import JsonProblem, loads_strict
from ivig_cds._patient import PatientContext
from ivig_cds._patient_input import parse_patient
from ivig_cds._yaml import LocatedDocument, YamlProblem, node_positions, parse_yaml, read_limited

PATIENT_SUFFIXES = (".json", ".yaml", ".yml")
NDJSON_SUFFIXES = (".ndjson", ".jsonl")
MANIFESTS = frozenset({"manifest.json", "status.json"})  # what a Bulk Data export folder holds
# A full patient context is under 12 KiB even with 50 long risk factors; the YAML reader is pure
# Python (a 1 MiB flow list took 13 s), so a bound this low keeps any one file under a second.
MAX_PATIENT_BYTES = 64 * 1024
MAX_FHIR_BYTES = 1 << 20  # a FHIR Bundle: as much as the CDS Hooks service accepts
STDIN = "-"
STDIN_NAME = "<stdin>"


class PatientPathError(IvigCdsError):
    """A path given on the command line names no patient file: a usage error, not bad data."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a patient file; `line`/`column` are 1-based when known."""

    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        return f"line {self.line}, column {self.column}: {self.message}"


class PatientFileError(IvigCdsError):
    """A patient file that could not be read, parsed, validated or evaluated."""

    def __init__(self, source: str, summary: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.summary = summary
        self.problems = tuple(problems)
        lines = "".join(f"\n  - {p}" for p in self.problems)
        super().__init__(f"{source}: {summary}{lines}")


@dataclass(frozen=True, slots=True)
class PatientSource:
    """One patient file to read: `path` is None for standard input."""

    name: str
    path: Path | None

    def read_bytes(self, stdin: Callable[[], bytes], max_bytes: int = MAX_PATIENT_BYTES) -> bytes:
        """The file's bytes: at most one past `max_bytes` from a file (enough to refuse it);
        standard input is read by `stdin`, which the caller bounds."""
        return stdin() if self.path is None else read_limited(self.path, max_bytes)


def discover(paths: Iterable[str]) -> list[PatientSource]:
    """Expand command-line paths into patient files, in the order given.

    A directory stands for the `*.json`, `*.yaml` and `*.yml` files directly inside it (not in
    its subfolders), sorted by name; `-` stands for standard input.

    Raises:
        PatientPathError: a path does not exist, a directory holds no patient file, or a path
            names NDJSON (a file of one record per line, or a FHIR Bulk Data export folder),
            which `batch` and `population` read: the message names the command to use.
    """
    found: list[PatientSource] = []
    for given in paths:
        if given == STDIN:
            found.append(PatientSource(STDIN_NAME, None))
            continue
        path = Path(given)
        if path.is_dir():
            inside = _patient_files_in(path)
            pointer = _ndjson_folder(given, path, inside)
            if pointer is not None:
                raise PatientPathError(pointer)
            if not inside:
                raise PatientPathError(_empty_directory(given, path))
            found.extend(PatientSource(str(p), p) for p in inside)
        elif path.exists() and path.suffix.lower() in NDJSON_SUFFIXES:
            raise PatientPathError(_ndjson_file(given, path))
        elif path.exists():
            found.append(PatientSource(given, path))
        else:
            raise PatientPathError(f"'{given}' does not exist")
    return found


def _patient_files_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in PATIENT_SUFFIXES and p.is_file()
    )


NdjsonKind = Literal["fhir", "contexts"]


def ndjson_kind(first_line: bytes) -> NdjsonKind | None:
    """What an NDJSON file holds, from its first line: FHIR resources (`population` reads them)
    or patient contexts (`batch` reads them); None if the line is not a JSON object."""
    try:
        data = json.loads(first_line.removeprefix(BOM))
    except ValueError:  # not JSON, or not UTF-8
        return None
    if not isinstance(data, dict):
        return None
    return "fhir" if isinstance(data.get("resourceType"), str) else "contexts"


def _first_line(path: Path) -> bytes:
    """The first line that is not blank, read up to 1 MiB (b"" if there is none)."""
    try:
        with path.open("rb") as file:
            for _ in range(100):
                line = file.readline(1 << 20)
                if line.strip() or not line:
                    return line
    except OSError:
        pass
    return b""


def _ndjson_file(given: str, path: Path) -> str:
    kind = ndjson_kind(_first_line(path))
    if kind == "fhir":
        return (
            f"'{given}' holds FHIR resources, one per line (a file of a Bulk Data export), not "
            f"one patient; audit the export's folder with: ivig-cds population {path.parent} "
            "--out DIR"
        )
    if kind == "contexts":
        return (
            f"'{given}' holds one patient per line (NDJSON); evaluate it with: "
            f"ivig-cds batch {given} --out results.ndjson"
        )
    return (
        f"'{given}' is an NDJSON file (one JSON document per line): ivig-cds batch evaluates "
        "patients given that way, ivig-cds population audits a FHIR Bulk Data export"
    )


def _ndjson_folder(given: str, path: Path, inside: Sequence[Path]) -> str | None:
    """A folder of NDJSON files and no patient file (a manifest aside): name the command."""
    if any(p.name.lower() not in MANIFESTS for p in inside):
        return None  # patient files to evaluate (examples/ keeps patients.ndjson beside them)
    ndjson = sorted(p for p in path.iterdir() if p.suffix.lower() in NDJSON_SUFFIXES)
    kinds = {ndjson_kind(_first_line(p)) for p in ndjson if p.is_file()}
    if "fhir" in kinds:
        return (
            f"'{given}' is a FHIR Bulk Data export (NDJSON files of resources), not patient "
            f"files; audit it with: ivig-cds population {given} --out DIR"
        )
    if "contexts" in kinds:
        return (
            f"'{given}' holds NDJSON files (one patient per line), not patient files; "
            "evaluate each with: ivig-cds batch FILE --out results.ndjson"
        )
    return None


def _empty_directory(given: str, path: Path) -> str:
    message = (
        f"directory '{given}' holds no patient file (*.json, *.yaml, *.yml) directly inside it; "
        "subfolders are not searched"
    )
    holding = [d for d in sorted(path.iterdir()) if d.is_dir() and _patient_files_in(d)]
    if holding:
        names = ", ".join(f"'{d}'" for d in holding)
        message += f"; these subfolders hold patient files: {names}"
    return message


def read_document(
    source: PatientSource, stdin: Callable[[], bytes], *, max_bytes: int = MAX_PATIENT_BYTES
) -> LocatedDocument:
    """Read and parse one patient file: `.json` as strict JSON, `.yaml`/`.yml` as YAML, and
    anything else (standard input included) by its content: JSON if it starts with `{` or `[`.

    Raises:
        PatientFileError: the file cannot be read or is not a single JSON/YAML document.
    """
    try:
        raw = source.read_bytes(stdin, max_bytes)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PatientFileError(source.name, "cannot be read", [Problem(reason)]) from None
    if _is_json(source, raw):
        return _parse_json(source, raw, max_bytes)
    try:
        return parse_yaml(raw, max_bytes=max_bytes)
    except YamlProblem as exc:
        raise PatientFileError(
            source.name, "is not a valid YAML file", [Problem(exc.message, exc.line, exc.column)]
        ) from None


def _is_json(source: PatientSource, raw: bytes) -> bool:
    suffix = source.path.suffix.lower() if source.path is not None else ""
    if suffix in (".yaml", ".yml"):
        return False
    return suffix == ".json" or raw.removeprefix(BOM).lstrip()[:1] in (b"{", b"[")


BOM = b"\xef\xbb\xbf"


def _parse_json(source: PatientSource, raw: bytes, max_bytes: int) -> LocatedDocument:
    """Strict JSON (no trailing commas, unquoted words, NaN or repeated keys), with positions."""

    def invalid(message: str, line: int | None = None, column: int | None = None) -> NoReturn:
        problems = [Problem(message, line, column)]
        if raw.removeprefix(BOM).lstrip()[:1] not in (b"{", b"[", b""):
            problems.append(Problem("the file looks like YAML; YAML files end in .yaml or .yml"))
        raise PatientFileError(source.name, "is not valid JSON", problems)

    if len(raw) > max_bytes:
        invalid(f"file is larger than {max_bytes // 1024} KiB")
    try:
        text = raw.removeprefix(BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        invalid(f"file is not UTF-8 text (bad byte at offset {exc.start})")
    if not text.strip():
        invalid("file is empty; expected a JSON object")
    try:
        data = loads_strict(text)
    except JsonProblem as exc:
        hint = _ndjson_hint(source, text) if exc.message.startswith("Extra data") else None
        if hint is not None:
            raise PatientFileError(
                source.name,
                "is not valid JSON",
                [Problem(f"invalid JSON: {exc.message}", exc.line, exc.column), hint],
            ) from None
        invalid(f"invalid JSON: {exc.message}", exc.line, exc.column)
    return LocatedDocument(data, node_positions(text))


def _ndjson_hint(source: PatientSource, text: str) -> Problem | None:
    """A JSON document per line (NDJSON) where one document was expected: the command to use."""
    kind = ndjson_kind(text.lstrip().split("\n", 1)[0].encode())
    shown = source.name if source.path is not None else STDIN
    if kind == "fhir":
        return Problem(
            "the file holds FHIR resources, one per line, as a Bulk Data export does: "
            "ivig-cds population audits an export's folder"
        )
    if kind == "contexts":
        return Problem(
            "the file holds one patient per line (NDJSON): evaluate it with "
            f"ivig-cds batch {shown} --out results.ndjson"
        )
    return None


def read_patient(source: PatientSource, stdin: Callable[[], bytes]) -> PatientContext:
    """Read one patient file into a validated `PatientContext`.

    Raises:
        PatientFileError: naming the file, with one located problem per offending field.
    """
    document = read_document(source, stdin)
    _refuse_other_documents(source, document.data)
    try:
        return parse_patient(document.data, source=source.name)
    except InvalidPatientError as exc:
        raise PatientFileError(
            source.name, "is not a valid patient context", located(exc, document)
        ) from None


def _refuse_other_documents(source: PatientSource, data: object) -> None:
    """A FHIR resource or a CDS Hooks request is not a patient context: say what to do."""
    if not isinstance(data, dict):
        return
    kind = data.get("resourceType")
    if kind == "Bundle":
        shown = source.name if source.path is not None else STDIN
        hint = f"add --fhir to evaluate it: ivig-cds evaluate --fhir {shown}"
        raise PatientFileError(
            source.name, "is a FHIR Bundle, not a patient context", [Problem(hint)]
        )
    if isinstance(kind, str):
        hint = "--fhir evaluates a FHIR R4 Bundle holding the patient's resources"
        raise PatientFileError(
            source.name, f"is a FHIR {kind[:40]} resource, not a patient context", [Problem(hint)]
        )
    if "hook" in data and "prefetch" in data:
        hint = "send it to the CDS Hooks service (ivig-cds serve), or its prefetch Bundle to --fhir"
        raise PatientFileError(
            source.name, "is a CDS Hooks request, not a patient context", [Problem(hint)]
        )


def located(error: InvalidPatientError, document: LocatedDocument) -> list[Problem]:
    """Attach to each validation problem the file position of the value it is about."""
    result = []
    for message, loc in zip(error.problems, error.locations, strict=True):
        position = document.locate(loc) if loc else document.marks.get(())
        result.append(Problem(message, *position) if position else Problem(message))
    return result
