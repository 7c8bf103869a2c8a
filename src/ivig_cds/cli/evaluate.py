"""`ivig-cds evaluate`: patient files (or FHIR Bundles) in, one recommendation each out."""

# ruff: noqa: PLC0415
# (rich, the renderers and the FHIR adapter load only when used, so `--help` starts fast)

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ivig_cds._errors import IvigCdsError
from ivig_cds._evaluate import Evaluator
from ivig_cds._recommendation import Recommendation
from ivig_cds._vocabulary import TIER_LABELS, TIER_MEANINGS, Tier
from ivig_cds.cli import common
from ivig_cds.cli.common import EvidenceDir, RulesDir, SiteCodeFiles
from ivig_cds.cli.fhir_input import Evaluated, RecordReading, Runner
from ivig_cds.cli.patient_files import (
    MAX_FHIR_BYTES,
    STDIN,
    PatientFileError,
    PatientPathError,
    PatientSource,
    Problem,
    discover,
    read_patient,
)
from ivig_cds.cli.summary import COLUMNS, summary_rows

if TYPE_CHECKING:
    from ivig_cds.report.cli import HtmlOutput

Results = list[tuple[str, Recommendation | PatientFileError]]

commands = typer.Typer()


class OutputFormat(StrEnum):
    TABLE = "table"
    TEXT = "text"
    JSON = "json"
    MARKDOWN = "markdown"
    HTML = "html"


def _tier_help() -> str:
    """One line per tier, from the vocabulary, so that a new tier is documented as it lands."""
    return "\n".join(
        textwrap.fill(
            f"{TIER_LABELS[tier]}: {TIER_MEANINGS[tier]}",
            width=78,  # click indents help by 2: 80 columns
            initial_indent=f"  {tier.value:<22} ",
            subsequent_indent=" " * 25,
        )
        for tier in Tier
    )


_TIER_HELP = _tier_help()

_EVALUATE_HELP = f"""Evaluate patient files and say whether IVIG has a role, and on what evidence.

Each PATH is a YAML or JSON patient file, a directory (every *.yaml, *.yml and *.json file
directly inside it, in name order; subfolders are not searched), or - for standard input.
A patient file is a mapping of patient-context fields, for example:

\b
  patient_id: example-1
  ms_phenotype: RRMS        # CIS, RRMS, SPMS, PPMS or not_ms; omit if unknown
  first_line_dmt: not_tolerated
  sex: female
  age_years: 34
  edss: 2.5

Leave out what you do not know: the result says which unknown facts matter. Run
`ivig-cds schema` for every field and its allowed values.

The result is one tier for the question asked (intended_use; inferred when absent:
acute_relapse during a relapse, else disease_modifying):

\b
{_TIER_HELP}

(the code as JSON gives it, then the label the other formats show), with its rationale,
certainty, citations (PubMed links), cautions and the questions whose answers could change it.

Output (--format): at a terminal, a table with one row per file (file, tier, question, rule,
key citation, missing data; on a narrow terminal the last two are left out, saying so) when
several files or a directory are given, and the full text for one file; when piped, json (one
document, or a list of {{"source", "recommendation"}} / {{"source", "error"}} for several
files). text gives every result in full, markdown a report for a clinical note, table the
overview (tab-separated when piped), html a page per patient (--out FILE for one patient,
--out DIR for several).

With --fhir each PATH is a FHIR R4 Bundle (or a CDS Hooks prefetch) in JSON. Every format then
says how the record was read: entries that disagree (each leaves its fact unknown), notes on
entries set aside or left unknown, and codes not recognised; JSON gives {{"source",
"recommendation", "record": {{"notes", "conflicts", "unmapped"}}}} for each file. With
--codes FILE (repeatable), your hospital's own codes are read through its site code maps (a
FHIR ConceptMap, a ValueSet per concept, or a YAML code table); each result names the maps and
their hash ("site_codes" in JSON), and a bad map stops the command (exit 1). A FHIR Bulk
Data export is audited by `ivig-cds population`, and a file of one patient per line (NDJSON)
is evaluated by `ivig-cds batch`.

An invalid file is reported on standard error with its field and line, and the others are
still evaluated; the exit code is 1 if any file failed, 2 for a usage error, else 0."""


@commands.command(cls=common.PlainHelpCommand, help=_EVALUATE_HELP, no_args_is_help=True)
def evaluate(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH", help="Patient files, directories of them, or - for standard input."
        ),
    ],
    *,
    output_format: Annotated[
        OutputFormat | None,
        typer.Option(
            "--format",
            "-f",
            metavar="FORMAT",
            parser=common.choice(OutputFormat),
            autocompletion=common.choices(OutputFormat),
            help="table, text, json, markdown or html (a self-contained page with the "
            "patient's path through the decision flow). Default at a terminal: table for "
            "several files, text for one; json when piped.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="PATH",
            help="With --format html: the page's file for one patient; a folder for several "
            "(a directory or more than one file), created if needed. Default: standard output.",
            show_default=False,
        ),
    ] = None,
    fhir: Annotated[
        bool,
        typer.Option(
            "--fhir",
            help="The files are FHIR R4 Bundles (JSON) rather than patient contexts; each "
            "result says how the record was read.",
        ),
    ] = False,
    codes: SiteCodeFiles = None,
    rules: RulesDir = None,
    evidence: EvidenceDir = None,
) -> None:
    if codes and not fhir:
        raise typer.BadParameter("applies only to FHIR records: add --fhir", param_hint="'--codes'")
    try:
        sources = discover(paths)
    except PatientPathError as exc:
        raise typer.BadParameter(str(exc), param_hint="PATH") from None
    site_maps = common.site_maps(codes)
    as_list = len(sources) > 1 or any(Path(p).is_dir() for p in paths if p != STDIN)
    chosen = output_format or _default_format(as_list)
    evaluator = common.evaluator(rules, evidence)
    html = _html_output(chosen, evaluator, out, several=as_list, first=sources[0].name)
    if html is not None:
        evaluator = html.evaluator
    if fhir:
        from ivig_cds.cli.fhir_input import fhir_runner

        run_one = fhir_runner(evaluator, site_maps)
    else:
        run_one = _patient_runner(evaluator)
    results, records = _evaluate_all(sources, run_one)

    if html is not None:
        html.write(results, records)
    else:
        _print_results(results, records if fhir else None, chosen, as_list=as_list)
    if any(isinstance(outcome, PatientFileError) for _, outcome in results):
        raise typer.Exit(1)


def _html_output(
    chosen: OutputFormat, evaluator: Evaluator, out: Path | None, *, several: bool, first: str
) -> HtmlOutput | None:
    """`--format html` is written by the report package, which keeps each patient it evaluates."""
    if chosen is not OutputFormat.HTML:
        if out is not None:
            hint = (
                ": add --format html to write the page"
                if out.suffix.lower() in (".html", ".htm")
                else "; the other formats print to standard output"
            )
            raise typer.BadParameter(f"applies only to --format html{hint}", param_hint="'--out'")
        return None
    from ivig_cds.report.cli import HtmlOutput

    return HtmlOutput(evaluator, out, several=several, first=first)


def _patient_runner(evaluator: Evaluator) -> Runner:
    def run(source: PatientSource, stdin: Callable[[], bytes]) -> Evaluated:
        return evaluator.evaluate(read_patient(source, stdin)), None

    return run


def _evaluate_all(
    sources: Sequence[PatientSource],
    run_one: Runner,
) -> tuple[Results, list[RecordReading | None]]:
    """Each file's result or error, in order, and beside each what its FHIR record said."""
    stream = typer.get_binary_stream("stdin")

    def stdin() -> bytes:  # one byte past the largest accepted input: enough to refuse it
        return stream.read(MAX_FHIR_BYTES + 1)

    results: Results = []
    records: list[RecordReading | None] = []

    def step(source: PatientSource, report: Callable[[PatientFileError], None]) -> None:
        outcome: Recommendation | PatientFileError
        record: RecordReading | None = None
        try:
            outcome, record = run_one(source, stdin)
        except PatientFileError as exc:
            outcome = exc
        except IvigCdsError as exc:  # the engine failed on a valid patient: a knowledge defect
            outcome = PatientFileError(source.name, "could not be evaluated", [Problem(str(exc))])
        if isinstance(outcome, PatientFileError):
            report(outcome)
        results.append((source.name, outcome))
        records.append(record)

    if len(sources) > 1 and sys.stderr.isatty():
        from rich.progress import Progress
        from rich.text import Text

        with Progress(console=common.console(sys.stderr), transient=True) as progress:

            def above_the_bar(error: PatientFileError) -> None:
                message = Text()
                message.append("error:", style="bold red")
                message.append(f" {error.source}: {error.summary}")
                message.append("".join(f"\n    - {p}" for p in error.problems))
                progress.console.print(message)

            task = progress.add_task("Evaluating", total=len(sources))
            for source in sources:
                step(source, above_the_bar)
                progress.advance(task)
    else:
        for source in sources:
            step(source, _report)
    return results, records


def _report(error: PatientFileError) -> None:
    common.error(f"{error.source}: {error.summary}", [f"- {p}" for p in error.problems])


def _default_format(as_list: bool) -> OutputFormat:
    if not sys.stdout.isatty():
        return OutputFormat.JSON
    return OutputFormat.TABLE if as_list else OutputFormat.TEXT


def _print_results(
    results: Results,
    records: Sequence[RecordReading | None] | None,
    chosen: OutputFormat,
    *,
    as_list: bool,
) -> None:
    """Print every result in `chosen`; `records` (for --fhir) say how each record was read."""
    from ivig_cds.cli import render

    readings = list(records) if records is not None else [None] * len(results)
    if chosen is OutputFormat.JSON:
        shown = [r.as_json() if r is not None else None for r in readings]
        source, outcome = results[0]
        if as_list:
            typer.echo(render.render_json_list(results, shown if records else None), nl=False)
        elif isinstance(outcome, Recommendation) and shown[0] is not None:
            document = render.result_json(source, outcome, shown[0])
            typer.echo(render.dumps(document), nl=False)
        elif isinstance(outcome, Recommendation):
            typer.echo(render.render_json(outcome), nl=False)
        return
    if chosen is OutputFormat.TABLE:
        common.table(COLUMNS, summary_rows(results), more="--format text shows every result")
        return
    done = [
        (s, r, reading.sections() if reading is not None else ())
        for (s, r), reading in zip(results, readings, strict=True)
        if isinstance(r, Recommendation)
    ]
    if chosen is OutputFormat.MARKDOWN:
        reports = [
            render.render_markdown(r, source=s if as_list else None, record=record)
            for s, r, record in done
        ]
        typer.echo("\n---\n\n".join(reports), nl=False)
        return
    console = common.console()
    for i, (source, rec, record) in enumerate(done):
        if i:
            console.print()
        console.print(render.render_text(rec, source=source if as_list else None, record=record))
