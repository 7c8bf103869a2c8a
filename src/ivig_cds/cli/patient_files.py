"""Find and read patient files for the command line: files, directories and standard input.

Every way a file can fail (unreadable, not YAML/JSON, an invalid patient) becomes one
`PatientFileError` naming the file, with each problem located at its line and column when the
file says where, so that the command line reports them all the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from ivig_cds._errors import InvalidPatientError, IvigCdsError
from ivig_cds._json import JsonProblem, loads_strict
from ivig_cds._patient import PatientContext
from ivig_cds._patient_input import parse_patient
from ivig_cds._yaml import LocatedDocument, YamlProblem, node_positions, parse_yaml, read_limited

PATIENT_SUFFIXES = (".json", ".yaml", ".yml")
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
        PatientPathError: a path does not exist, or a directory holds no patient file.
    """
    found: list[PatientSource] = []
    for given in paths:
        if given == STDIN:
            found.append(PatientSource(STDIN_NAME, None))
            continue
        path = Path(given)
        if path.is_dir():
            inside = _patient_files_in(path)
            if not inside:
                raise PatientPathError(_empty_directory(given, path))
            found.extend(PatientSource(str(p), p) for p in inside)
        elif path.exists():
            found.append(PatientSource(given, path))
        else:
            raise PatientPathError(f"'{given}' does not exist")
    return found


def _patient_files_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in PATIENT_SUFFIXES and p.is_file()
    )


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
        invalid(f"invalid JSON: {exc.message}", exc.line, exc.column)
    return LocatedDocument(data, node_positions(text))


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
