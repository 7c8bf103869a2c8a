"""The report's commands: `ivig-cds report`, and the HTML output of `ivig-cds evaluate`.

`report` writes the static site; `HtmlOutput` is the hook `evaluate --format html` uses. It
evaluates through a `PatientRecorder`, which keeps each patient with its result, because the page
shows the patient's own facts at each step of the flow and a `Recommendation` does not hold them.
"""

# ruff: noqa: PLC0415
# (Jinja2 and the templates load only when a page is written, so `--help` starts fast)

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from ivig_cds._evaluate import Evaluator
from ivig_cds._patient import PatientContext
from ivig_cds._patient_input import parse_patient
from ivig_cds._recommendation import Recommendation
from ivig_cds.cli import common
from ivig_cds.cli.common import EvidenceDir, RulesDir
from ivig_cds.cli.patient_files import STDIN_NAME

if TYPE_CHECKING:
    from ivig_cds.cli.fhir_input import RecordReading

commands = typer.Typer()

_REPORT_HELP = """Write the knowledge base as a static HTML site into DIR.

The site has an index a committee can review from (what the knowledge base is, its version and
content hash, the decision flow of each clinical question drawn from the rules and their
precedence, every rule with its tier), a page per rule (rules/<ID>.html), a page per published
work (evidence/<ID>.html) and the traceability matrix (matrix.html). It runs no script and
fetches nothing: open DIR/index.html from disk or put DIR on any static host."""


@commands.command(cls=common.PlainHelpCommand, help=_REPORT_HELP)
def report(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            file_okay=False,
            help="Folder to write (created if needed).",
        ),
    ],
    rules: RulesDir = None,
    evidence: EvidenceDir = None,
) -> None:
    from ivig_cds.report.site import write_site

    kb = common.load(rules, evidence)
    try:
        written = write_site(kb, out)
    except OSError as exc:
        common.fail(f"cannot write the report into '{out}': {exc.strerror or type(exc).__name__}")
    pages = common.count(len(written), "page")
    typer.echo(
        f"report written: {out / 'index.html'} ({pages}; knowledge base "
        f"{kb.manifest.name} {kb.version}, {kb.content_hash})"
    )


class PatientRecorder(Evaluator):
    """An evaluator for the same knowledge base that remembers each patient it evaluated."""

    def __init__(self, evaluator: Evaluator) -> None:
        super().__init__(evaluator.knowledge_base, engine=evaluator.engine)
        self._seen: list[tuple[PatientContext, Recommendation]] = []

    def evaluate(
        self, patient: PatientContext | Mapping[str, Any], *, ivig_ordered: bool = False
    ) -> Recommendation:
        context = parse_patient(patient)
        result = super().evaluate(context, ivig_ordered=ivig_ordered)
        self._seen.append((context, result))
        return result

    def patient_of(self, result: Recommendation) -> PatientContext:
        return next(patient for patient, seen in self._seen if seen is result)


# Names that say "a file": with several patients, --out must name a folder instead.
FILE_SUFFIXES = frozenset(
    {".html", ".htm", ".md", ".json", ".ndjson", ".txt", ".csv", ".pdf", ".yaml", ".yml"}
)


class HtmlOutput:
    """`evaluate --format html`: one page per patient, on standard output or into `--out`.

    One patient: `--out` names the page's file (default: standard output); an existing folder is
    refused. Several (more than one file, or a folder of them): `--out` names a folder, existing
    or new, which gets one page per input file, named after it; an existing file, or a new name
    ending like a file (`all.html`), is refused. Checked before anything is evaluated; once the
    pages are written, one line says what was written where.
    """

    def __init__(
        self, evaluator: Evaluator, out: Path | None, *, several: bool, first: str | None = None
    ) -> None:
        _check_out(out, several=several, first=first)
        self.evaluator = PatientRecorder(evaluator)
        self._out = out
        self._several = several

    def write(
        self,
        results: Sequence[tuple[str, Recommendation | object]],
        records: Sequence[RecordReading | None] = (),
    ) -> None:
        """Write a page per evaluated patient (`records`: how each FHIR record was read)."""
        from ivig_cds.report.patient import patient_page

        kb = self.evaluator.knowledge_base
        readings = list(records) or [None] * len(results)
        pages: list[tuple[str, str]] = []
        for (source, outcome), reading in zip(results, readings, strict=True):
            if isinstance(outcome, Recommendation):
                patient = self.evaluator.patient_of(outcome)
                html = patient_page(
                    kb,
                    patient,
                    outcome,
                    source=source if self._several else None,
                    record=reading.sections() if reading is not None else (),
                )
                pages.append((source, html))
        if self._out is None:
            for _, html in pages:
                sys.stdout.write(html)
            return
        if not pages and not self._several:
            return  # the patient's error is on standard error; no page to write
        try:
            if self._several:
                self._out.mkdir(parents=True, exist_ok=True)
            for name, html in self._targets(pages):
                name.parent.mkdir(parents=True, exist_ok=True)
                name.write_text(html, encoding="utf-8", newline="\n")
        except OSError as exc:
            common.fail(f"cannot write '{self._out}': {exc.strerror or type(exc).__name__}")
        if self._several:
            typer.echo(f"wrote {common.count(len(pages), 'page')} to {self._out}{os.sep}")
        else:
            typer.echo(f"wrote {self._out}")

    def _targets(self, pages: list[tuple[str, str]]) -> list[tuple[Path, str]]:
        assert self._out is not None
        if not self._several:
            return [(self._out, html) for _, html in pages]
        taken: set[str] = set()
        targets = []
        for source, html in pages:
            stem = "stdin" if source == STDIN_NAME else Path(source).stem
            name = f"{stem}.html" if f"{stem}.html" not in taken else f"{Path(source).name}.html"
            taken.add(name)
            targets.append((self._out / name, html))
        return targets


def _check_out(out: Path | None, *, several: bool, first: str | None) -> None:
    """--out names a file for one patient and a folder for several: refuse the other."""

    def refuse(message: str) -> NoReturn:
        raise typer.BadParameter(message, param_hint="'--out'")

    if several and out is None:
        refuse("several patients make several pages: give --out DIR to write them into")
    if out is None:
        return
    if several and out.exists() and not out.is_dir():
        refuse(f"'{out}' is a file; several patients make one page each: give a folder")
    if several and not out.exists() and out.suffix.lower() in FILE_SUFFIXES:
        refuse(
            f"'{out}' names a file, but several patients make one page each: give a folder, "
            f"e.g. --out {out.with_suffix('')}{os.sep}"
        )
    if not several and out.is_dir():
        stem = Path(first).stem if first is not None and first != STDIN_NAME else "patient"
        refuse(
            f"'{out}' is a folder; one patient makes one page: give a file name, "
            f"e.g. --out {out / (stem + '.html')}"
        )
