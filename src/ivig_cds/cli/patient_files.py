"""Find and read patient files for the command line: files, directories and standard input.

Every way a file can fail (unreadable, not YAML/JSON, an invalid patient) becomes one
`PatientFileError` naming the file, with each problem located at its line and column when the
file says where, so that the command line reports them all the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ivig_cds._errors import InvalidPatientError, IvigCdsError
from ivig_cds._patient import PatientContext, parse_patient
from ivig_cds._yaml import LocatedDocument, YamlProblem, parse_yaml, read_limited

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
    """Read and parse one patient file as YAML or JSON (JSON is read as YAML).

    Raises:
        PatientFileError: the file cannot be read or is not a single YAML/JSON document.
    """
    try:
        raw = source.read_bytes(stdin, max_bytes)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PatientFileError(source.name, "cannot be read", [Problem(reason)]) from None
    try:
        return parse_yaml(raw, max_bytes=max_bytes)
    except YamlProblem as exc:
        raise PatientFileError(
            source.name,
            "is not a valid YAML or JSON file",
            [Problem(exc.message, exc.line, exc.column)],
        ) from None


def read_patient(source: PatientSource, stdin: Callable[[], bytes]) -> PatientContext:
    """Read one patient file into a validated `PatientContext`.

    Raises:
        PatientFileError: naming the file, with one located problem per offending field.
    """
    document = read_document(source, stdin)
    try:
        return parse_patient(document.data, source=source.name)
    except InvalidPatientError as exc:
        raise PatientFileError(
            source.name, "is not a valid patient context", located(exc, document)
        ) from None


def located(error: InvalidPatientError, document: LocatedDocument) -> list[Problem]:
    """Attach to each validation problem the file position of the value it is about."""
    result = []
    for message, loc in zip(error.problems, error.locations, strict=True):
        position = document.locate(loc) if loc else document.marks.get(())
        result.append(Problem(message, *position) if position else Problem(message))
    return result
