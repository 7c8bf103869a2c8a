"""The `ivig-cds` command line: evaluate patient files, inspect and audit the knowledge base.

Exit codes: 0 everything worked; 1 some patient file or the knowledge base is invalid; 2 the
command line itself is wrong (click's usage errors); `batch` adds 3 (stopped early, outputs
incomplete) and 130 (interrupted). Errors go to standard error as sentences
naming the file, never as tracebacks. The FHIR adapter and the web service are imported only
inside the options that use them, so `--version`, `--help` and `evaluate` never load them.
"""

# ruff: noqa: PLC0415
# (imports inside functions are deliberate: rich, the FHIR adapter and the web service load
# only in the commands that use them, so that `--version` and `--help` start fast)

from __future__ import annotations

import contextlib
import difflib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, NoReturn

import typer

from ivig_cds import __version__
from ivig_cds._errors import IvigCdsError, KnowledgeBaseError
from ivig_cds._evaluate import Evaluator, default_evaluator
from ivig_cds._knowledge_base import KnowledgeBase
from ivig_cds._loader import load_knowledge_base
from ivig_cds._patient import PatientContext
from ivig_cds._patient_files import (
    MAX_FHIR_BYTES,
    STDIN,
    PatientFileError,
    PatientPathError,
    PatientSource,
    Problem,
    discover,
    read_document,
    read_patient,
)
from ivig_cds._recommendation import PUBMED, Citation, Recommendation
from ivig_cds._record_windows import RECORD_WINDOWS_NAME, RecordWindows, load_record_windows
from ivig_cds._rules import CautionRule, ConclusionRule
from ivig_cds._trace import to_csv, to_json, to_markdown, trace_matrix

if TYPE_CHECKING:
    from rich.console import Console

    from ivig_cds._batch import BatchSummary

Runner = Callable[[PatientSource, Callable[[], bytes]], Recommendation]


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    MARKDOWN = "markdown"


class TraceFormat(StrEnum):
    MARKDOWN = "markdown"
    CSV = "csv"
    JSON = "json"


app = typer.Typer(
    name="ivig-cds",
    help="Does IVIG have a role for this multiple-sclerosis patient, and on what evidence?\n\n"
    "Evaluate patient files against an evidence-graded knowledge base, and inspect or audit "
    "that knowledge base. Start with:  ivig-cds evaluate --help\n\n"
    "Exit codes: 0 success; 1 an input file or the knowledge base is invalid; 2 usage error.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # its tracebacks print local variables: patient data
    rich_markup_mode=None,  # help is plain text, rule texts never pass through markup
    context_settings={"help_option_names": ["-h", "--help"]},
)
rules_app = typer.Typer(
    help="List the rules of the knowledge base, or show one rule in full.\n\n"
    "Conclusions (C..) set the tier for a clinical situation; cautions (K..) are attached to "
    "results. Without a subcommand, lists them all.",
    no_args_is_help=False,
    invoke_without_command=True,
)
evidence_app = typer.Typer(
    help="List the evidence registry (the published works the rules cite), or show one entry "
    "in full with the rules that cite it. Without a subcommand, lists them all.",
    no_args_is_help=False,
    invoke_without_command=True,
)
app.add_typer(rules_app, name="rules")
app.add_typer(evidence_app, name="evidence")

RulesDir = Annotated[
    Path | None,
    typer.Option(
        "--rules",
        metavar="DIR",
        exists=True,
        file_okay=False,
        help="Rules folder of another knowledge base (with knowledge-base.yaml at its top). "
        "Default: the shipped one.",
    ),
]
EvidenceDir = Annotated[
    Path | None,
    typer.Option(
        "--evidence",
        metavar="DIR",
        exists=True,
        file_okay=False,
        help="Evidence folder of another knowledge base. Default: the shipped one.",
    ),
]


# --- shared helpers --------------------------------------------------------------------------


def _console(file: IO[str] | None = None) -> Console:
    """A console that styles and wraps only for a terminal; pipes get plain, unwrapped text."""
    from rich.console import Console

    stream = file if file is not None else sys.stdout
    tty = stream.isatty()
    return Console(
        file=stream,
        markup=False,
        emoji=False,
        highlight=False,
        soft_wrap=not tty,
        no_color=None if tty else True,  # None: rich honours NO_COLOR at a terminal
    )


def _error(message: str, details: Sequence[str] = ()) -> None:
    typer.echo(f"{typer.style('error:', fg='red', bold=True)} {message}", err=True)
    for line in details:
        typer.echo(f"  {line}", err=True)


def _fail(message: str, details: Sequence[str] = ()) -> NoReturn:
    _error(message, details)
    raise typer.Exit(1)


def _load(rules: Path | None, evidence: Path | None, *, validating: bool = False) -> KnowledgeBase:
    """The knowledge base, or exit 1 listing every problem at path:line:column."""
    try:
        return load_knowledge_base(rules, evidence)
    except KnowledgeBaseError as exc:
        count = len(exc.issues)
        hint = "" if validating else "; fix these, then check with `ivig-cds validate`"
        _fail(
            f"the knowledge base is invalid ({count} {'error' if count == 1 else 'errors'}){hint}:",
            [str(issue) for issue in exc.issues],
        )


def _kb_line(kb: KnowledgeBase) -> str:
    return f"{kb.manifest.name} {kb.version} ({kb.content_hash})"


def _show_version(value: bool) -> None:
    if not value:
        return
    typer.echo(f"ivig-cds {__version__}")
    kb = _load(None, None)
    typer.echo(f"knowledge base {_kb_line(kb)}")
    raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print the package version and the knowledge base's version and content hash.",
        ),
    ] = False,
) -> None:
    """Does IVIG have a role for this multiple-sclerosis patient, and on what evidence?"""


# --- evaluate --------------------------------------------------------------------------------

_TIER_HELP = "\n".join(
    f"  {tier:<22} {meaning}"
    for tier, meaning in {
        "second_line": "IVIG may be considered now, as a second-line option.",
        "not_first_line": "Approved first-line therapy is preferred; IVIG only if it cannot "
        "be used.",
        "insufficient_evidence": "Evidence too limited to recommend IVIG; not standard practice.",
        "not_recommended": "Trials showed no benefit, or IVIG has no role here.",
        "indeterminate": "A needed fact is missing; the result lists which.",
        "not_applicable": "Outside this knowledge base (no MS diagnosis).",
    }.items()
)

_EVALUATE_HELP = f"""Evaluate patient files and say whether IVIG has a role, and on what evidence.

Each PATH is a YAML or JSON patient file, a directory (every *.yaml, *.yml and *.json file
directly inside it, in name order; subfolders are not searched), or - for standard input.
A patient file is a mapping of patient-context fields, for example:

\b
  patient_id: example-1
  ms_phenotype: RRMS        # CIS, RRMS, SPMS, PPMS or not_ms; leave out if unknown
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

with its rationale, certainty, citations (PubMed links), cautions and missing data.

Output: text for a person at a terminal (the default there), json otherwise (one document, or
a list of {{"source", "recommendation"}} / {{"source", "error"}} when several files or a
directory are given), or markdown for a clinical note. An invalid file is reported on standard
error with its field and line, and the others are still evaluated; the exit code is 1 if any
file failed, else 0."""


@app.command(help=_EVALUATE_HELP, no_args_is_help=True)
def evaluate(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH", help="Patient files, directories of them, or - for standard input."
        ),
    ],
    output_format: Annotated[
        OutputFormat | None,
        typer.Option(
            "--format",
            "-f",
            case_sensitive=False,
            help="text, json or markdown. Default: text at a terminal, json when piped.",
            show_default=False,
        ),
    ] = None,
    fhir: Annotated[
        bool,
        typer.Option(
            "--fhir", help="The files are FHIR R4 Bundles (JSON) rather than patient contexts."
        ),
    ] = False,
    rules: RulesDir = None,
    evidence: EvidenceDir = None,
) -> None:
    try:
        sources = discover(paths)
    except PatientPathError as exc:
        raise typer.BadParameter(str(exc), param_hint="PATH") from None
    as_list = len(sources) > 1 or any(Path(p).is_dir() for p in paths if p != STDIN)
    evaluator = _evaluator(rules, evidence)
    run_one = _fhir_runner(evaluator) if fhir else _patient_runner(evaluator)
    results = _evaluate_all(sources, run_one)

    chosen = output_format or (OutputFormat.TEXT if sys.stdout.isatty() else OutputFormat.JSON)
    _print_results(results, chosen, as_list=as_list)
    if any(isinstance(outcome, PatientFileError) for _, outcome in results):
        raise typer.Exit(1)


def _evaluator(rules: Path | None, evidence: Path | None) -> Evaluator:
    try:
        if rules is None and evidence is None:
            return default_evaluator()
        return Evaluator(_load(rules, evidence))
    except IvigCdsError as exc:
        _fail(f"the knowledge base could not be compiled: {exc}")


def _patient_runner(evaluator: Evaluator) -> Runner:
    def run(source: PatientSource, stdin: Callable[[], bytes]) -> Recommendation:
        return evaluator.evaluate(read_patient(source, stdin))

    return run


def _fhir_runner(evaluator: Evaluator) -> Runner:
    try:
        from ivig_cds.fhir import evaluate_fhir
    except ModuleNotFoundError as exc:
        if exc.name not in ("ivig_cds.fhir", "fhir", "fhir.resources"):
            raise
        _fail(
            "--fhir is not available in this installation "
            f"(module {exc.name} is missing); evaluate patient-context files without --fhir"
        )

    def run(source: PatientSource, stdin: Callable[[], bytes]) -> Recommendation:
        document = read_document(source, stdin, max_bytes=MAX_FHIR_BYTES)
        if not isinstance(document.data, dict):
            raise PatientFileError(
                source.name, "is not a FHIR Bundle", [Problem("expected a JSON object")]
            )
        try:
            recommendation: Recommendation = evaluate_fhir(document.data, evaluator=evaluator)
            return recommendation
        except ValueError as exc:
            raise PatientFileError(
                source.name, "is not a usable FHIR Bundle", [Problem(str(exc))]
            ) from None

    return run


def _evaluate_all(
    sources: Sequence[PatientSource],
    run_one: Runner,
) -> list[tuple[str, Recommendation | PatientFileError]]:
    stream = typer.get_binary_stream("stdin")

    def stdin() -> bytes:  # one byte past the largest accepted input: enough to refuse it
        return stream.read(MAX_FHIR_BYTES + 1)

    results: list[tuple[str, Recommendation | PatientFileError]] = []

    def step(source: PatientSource, report: Callable[[PatientFileError], None]) -> None:
        outcome: Recommendation | PatientFileError
        try:
            outcome = run_one(source, stdin)
        except PatientFileError as exc:
            outcome = exc
        except IvigCdsError as exc:  # the engine failed on a valid patient: a knowledge defect
            outcome = PatientFileError(source.name, "could not be evaluated", [Problem(str(exc))])
        if isinstance(outcome, PatientFileError):
            report(outcome)
        results.append((source.name, outcome))

    if len(sources) > 1 and sys.stderr.isatty():
        from rich.progress import Progress
        from rich.text import Text

        with Progress(console=_console(sys.stderr), transient=True) as progress:

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
    return results


def _report(error: PatientFileError) -> None:
    _error(f"{error.source}: {error.summary}", [f"- {p}" for p in error.problems])


def _print_results(
    results: Sequence[tuple[str, Recommendation | PatientFileError]],
    chosen: OutputFormat,
    *,
    as_list: bool,
) -> None:
    from ivig_cds._render import render_json, render_json_list, render_markdown, render_text

    if chosen is OutputFormat.JSON:
        if as_list:
            typer.echo(render_json_list(results), nl=False)
        elif isinstance(results[0][1], Recommendation):
            typer.echo(render_json(results[0][1]), nl=False)
        return
    done = [(s, r) for s, r in results if isinstance(r, Recommendation)]
    if chosen is OutputFormat.MARKDOWN:
        reports = [render_markdown(r, source=s if as_list else None) for s, r in done]
        typer.echo("\n---\n\n".join(reports), nl=False)
        return
    console = _console()
    for i, (source, rec) in enumerate(done):
        if i:
            console.print()
        console.print(render_text(rec, source=source if as_list else None))


# --- batch -----------------------------------------------------------------------------------

_BATCH_HELP = """Evaluate many patients from an NDJSON file: one JSON patient object per line.

Each line of INPUT (or of standard input, for -) is a patient context as in a patient file,
written as one JSON object. Every line gives exactly one line in one of two files, in input
order, so that lines read = results + errors:

\b
  --out     one result per valid line: {"line": n, "patient_id", "tier", "question",
            "primary_rule", "certainty", "citations", "cautions", "missing_data", ...}
            (--full: {"line": n, "recommendation": <the whole recommendation>})
  --errors  one record per invalid line: {"line": n, "error": kind, "problems": [...]}
            with kind blank_line, line_too_long (over 1 MiB), not_utf8, invalid_json,
            not_an_object, invalid_patient or not_evaluated

Lines are evaluated by --workers processes, in chunks, with constant memory whatever the
input size. A progress bar shows on standard error at a terminal; a summary (counts per tier
and per error kind) is printed at the end.

Exit codes: 0 every line gave a result; 1 some lines went to the errors file (or the knowledge
base is invalid); 2 usage error; 3 the run stopped early (a worker died, an output could not be
written): the outputs are incomplete; 130 interrupted."""


@app.command(help=_BATCH_HELP, no_args_is_help=True)
def batch(
    source: Annotated[
        str, typer.Argument(metavar="INPUT", help="NDJSON patient file, or - for standard input.")
    ],
    *,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", metavar="PATH", dir_okay=False, help="Results file (NDJSON)."),
    ],
    errors: Annotated[
        Path | None,
        typer.Option(
            "--errors",
            metavar="PATH",
            dir_okay=False,
            help="Errors file (NDJSON). Default: beside --out, e.g. results.errors.ndjson.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="Worker processes; 1 evaluates in this process. Default: the number of cores.",
            show_default=False,
        ),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Write whole recommendations, not the audit line.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar and no summary.")
    ] = False,
    rules: RulesDir = None,
    evidence: EvidenceDir = None,
) -> None:
    from ivig_cds import _batch

    errors = errors or _errors_path(out)
    _check_batch_paths(source, out, errors)
    try:
        _batch.evaluator_for(rules, evidence)  # compiled once, here; forked workers inherit it
    except KnowledgeBaseError:
        _load(rules, evidence)  # loads it again to report every issue, then exits 1
        raise
    except IvigCdsError as exc:
        _fail(f"the knowledge base could not be compiled: {exc}")
    evaluate = _batch.RecordEvaluator(rules, evidence, full=full)
    stdin = source == STDIN
    with contextlib.ExitStack() as files:
        try:
            reader = (
                typer.get_binary_stream("stdin")
                if stdin
                else files.enter_context(Path(source).open("rb"))
            )
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot read '{source}': {exc.strerror}", param_hint="INPUT"
            ) from None
        results_file = files.enter_context(_open_output(out, "'--out'"))
        errors_file = files.enter_context(_open_output(errors, "'--errors'"))
        total = None if stdin or not Path(source).is_file() else Path(source).stat().st_size
        show = not quiet and sys.stderr.isatty()
        with _batch_progress(total, show) as progress:
            try:
                summary = _batch.run_batch(
                    reader,
                    results_file,
                    errors_file,
                    evaluate,
                    workers=workers or os.cpu_count() or 1,
                    progress=progress,
                )
            except _batch.BatchAbortedError as exc:
                _error(f"{exc}; the outputs are incomplete")
                if exc.summary is not None and not quiet:
                    _print_summary(exc.summary, out, errors)
                raise typer.Exit(3) from None
            except KeyboardInterrupt:
                _error("interrupted; the outputs are incomplete")
                raise typer.Exit(130) from None
    if not quiet:
        _print_summary(summary, out, errors)
    if summary.errors:
        raise typer.Exit(1)


def _errors_path(out: Path) -> Path:
    """results.ndjson -> results.errors.ndjson; results -> results.errors.ndjson."""
    suffix = out.suffix or ".ndjson"
    return out.with_name(f"{out.stem if out.suffix else out.name}.errors{suffix}")


def _check_batch_paths(source: str, out: Path, errors: Path) -> None:
    """Usage errors before any work: a missing input, or two roles given the same file."""
    if source != STDIN:
        path = Path(source)
        if not path.exists():
            raise typer.BadParameter(f"'{source}' does not exist", param_hint="INPUT")
        if path.is_dir():
            raise typer.BadParameter(
                f"'{source}' is a directory; give one NDJSON file", param_hint="INPUT"
            )
        for given, option in ((out, "'--out'"), (errors, "'--errors'")):
            if _same_file(path, given):
                raise typer.BadParameter(
                    f"'{given}' is the input file; writing it would destroy the input",
                    param_hint=option,
                )
    if _same_file(out, errors):
        raise typer.BadParameter(
            f"'{errors}' is also the results file; give another path", param_hint="'--errors'"
        )


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _open_output(path: Path, option: str) -> IO[str]:
    try:
        return path.open("w", encoding="utf-8", newline="\n")
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot write '{path}': {exc.strerror or type(exc).__name__}", param_hint=option
        ) from None


@contextlib.contextmanager
def _batch_progress(
    total: int | None, show: bool
) -> Iterator[Callable[[int, BatchSummary], None] | None]:
    """A progress bar on standard error measured in input bytes, so no counting pass is needed.

    It is refreshed by the caller, not by rich's thread: no thread runs when workers fork.
    """
    if not show:
        yield None
        return
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("Evaluating"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[lines]:,} lines, {task.fields[rate]:,.0f}/s"),
        TimeElapsedColumn(),
    ]
    if total is not None:
        columns.append(TimeRemainingColumn())
    bar = Progress(*columns, console=_console(sys.stderr), transient=True, auto_refresh=False)
    task = bar.add_task("batch", total=total, lines=0, rate=0.0)
    shown = 0.0

    def update(done: int, summary: BatchSummary) -> None:
        nonlocal shown
        bar.update(task, completed=done, lines=summary.lines, rate=summary.rate)
        if time.monotonic() - shown > 0.1:
            bar.refresh()
            shown = time.monotonic()

    with bar:
        yield update


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _print_summary(summary: BatchSummary, out: Path, errors: Path) -> None:
    """Counts on standard output, like `validate`'s summary; tiers in the README's order."""
    from ivig_cds._vocabulary import Tier

    typer.echo(
        f"{_count(summary.lines, 'line')}: {_count(summary.results, 'result')}, "
        f"{_count(summary.errors, 'error')}, "
        f"in {summary.elapsed:.1f} s ({summary.rate:,.0f} lines/s)"
    )
    for tier in Tier:
        if summary.tiers[tier.value]:
            typer.echo(f"  {tier.value:<22} {summary.tiers[tier.value]:>12,}")
    for kind, count in sorted(summary.error_kinds.items()):
        typer.echo(f"  error: {kind:<15} {count:>12,}")
    typer.echo(f"results: {out}")
    typer.echo(f"errors:  {errors}")


# --- rules and evidence ----------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table at a terminal; tab-separated lines with a header line for a pipe."""
    if not sys.stdout.isatty():
        for row in (headers, *rows):
            typer.echo("\t".join(row))
        return
    from rich.table import Table

    table = Table(*headers, box=None, header_style="bold")
    for row in rows:
        table.add_row(*row)
    _console().print(table)


def _find(kind: str, wanted: str, known: Sequence[str]) -> str:
    """The id the user meant (case-insensitively), or a usage error suggesting the nearest."""
    if wanted in known:
        return wanted
    folded = {k.casefold(): k for k in known}
    if wanted.casefold() in folded:
        return folded[wanted.casefold()]
    close = difflib.get_close_matches(wanted, list(known), n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    listing = f"`ivig-cds {kind}` lists them"
    raise typer.BadParameter(
        f"no {kind[:-1] if kind == 'rules' else 'entry'} '{wanted}'{hint} ({listing})",
        param_hint="ID",
    )


@rules_app.callback()
def _rules_group(ctx: typer.Context, rules: RulesDir = None, evidence: EvidenceDir = None) -> None:
    ctx.obj = (rules, evidence)
    if ctx.invoked_subcommand is None:
        _list_rules(_load(rules, evidence))


def _dirs(
    ctx: typer.Context, rules: Path | None, evidence: Path | None
) -> tuple[Path | None, Path | None]:
    group_rules, group_evidence = ctx.obj if ctx.obj else (None, None)
    return rules or group_rules, evidence or group_evidence


@rules_app.command("list")
def rules_list(ctx: typer.Context, rules: RulesDir = None, evidence: EvidenceDir = None) -> None:
    """List every rule: id, kind, tier, question(s), precedence, certainty and title."""
    _list_rules(_load(*_dirs(ctx, rules, evidence)))


def _list_rules(kb: KnowledgeBase) -> None:
    rows = [
        [
            r.id,
            "conclusion",
            r.tier.value,
            ",".join(q.value for q in r.questions),
            str(r.precedence),
            r.certainty.level.value if r.certainty else "-",
            r.title,
        ]
        for r in kb.conclusions
    ]
    rows += [[r.id, "caution", "-", "-", "-", "-", r.title] for r in kb.cautions]
    _table(["id", "kind", "tier", "questions", "precedence", "certainty", "title"], rows)


@rules_app.command("windows")
def rules_windows(ctx: typer.Context, rules: RulesDir = None, evidence: EvidenceDir = None) -> None:
    """List the record windows the FHIR adapter applies to dated answers, with their reasons."""
    kb = _load(*_dirs(ctx, rules, evidence))
    windows = _record_windows(kb)
    if windows is None:
        _fail(f"no {RECORD_WINDOWS_NAME} in {kb.rules_dir}; the FHIR adapter uses the shipped one")
    _table(
        ["window", "weeks", "reason"],
        [[name, str(w.weeks), w.reason] for name, w in windows.rows()],
    )


def _record_windows(kb: KnowledgeBase) -> RecordWindows | None:
    """The knowledge base's record windows (validated when it loaded), None if it has none."""
    path = kb.rules_dir / RECORD_WINDOWS_NAME
    return load_record_windows(path) if path.is_file() else None


@rules_app.command("show")
def rules_show(
    ctx: typer.Context,
    rule_id: Annotated[str, typer.Argument(metavar="ID", help="A rule id such as C02a or K1.")],
    rules: RulesDir = None,
    evidence: EvidenceDir = None,
) -> None:
    """Show one rule in full: conditions, tier, rationale, certainty, citations, provenance."""
    kb = _load(*_dirs(ctx, rules, evidence))
    ids = [r.id for r in (*kb.conclusions, *kb.cautions)]
    rule = kb.rule(_find("rules", rule_id, ids))
    _print_lines(_rule_lines(kb, rule))


def _rule_lines(kb: KnowledgeBase, rule: ConclusionRule | CautionRule) -> list[tuple[str, str]]:
    from ivig_cds._render import TIER_MEANINGS, cite

    lines: list[tuple[str, str]] = [
        (f"{rule.id}  {rule.title}", "bold"),
        (f"{rule.kind}, version {rule.version}, file {kb.sources.get(rule.id, '?')}", "dim"),
        ("", ""),
        ("When (all must hold):", "bold"),
    ]
    lines += [(f"  {name} {c.describe()}", "") for name, c in rule.when.items()]
    if not rule.when:
        lines.append(("  always", ""))
    if isinstance(rule, CautionRule) and rule.any_of:
        lines.append(("And one of these:", "bold"))
        for group in rule.any_of:
            words = " and ".join(f"{name} {c.describe()}" for name, c in group.items())
            lines.append((f"  - {words}", ""))
    lines.append(("", ""))
    if isinstance(rule, ConclusionRule):
        lines += [
            (f"Questions: {', '.join(q.value for q in rule.questions)}", ""),
            (f"Precedence: {rule.precedence} (lower wins)", ""),
            (f"Tier: {rule.tier.value}: {TIER_MEANINGS[rule.tier]}", ""),
            (f"Summary: {rule.summary}", ""),
        ]
        if rule.certainty is not None:
            lines.append((f"Certainty: {rule.certainty.level.value}: {rule.certainty.reason}", ""))
        lines += [("", ""), ("Rationale:", "bold"), (f"  {rule.rationale.strip()}", "")]
    else:
        lines += [("Text:", "bold"), (f"  {rule.text.strip()}", "")]
    lines += [("", ""), ("Evidence:", "bold")]
    for evidence_id in rule.evidence:
        entry = kb.evidence[evidence_id]
        citation = Citation.of(entry)
        lines.append((f"  - {evidence_id}: {cite(citation)} {citation.url or ''}".rstrip(), ""))
    if not rule.evidence:
        why = (
            "an indeterminate result makes no evidence claim"
            if isinstance(rule, ConclusionRule)
            else "it rests on the passages below"
        )
        lines.append((f"  none ({why})", ""))
    p = rule.provenance
    lines += [
        ("", ""),
        (f"Provenance: spec {p.spec}; seeds {', '.join(p.seeds)}; reviewed {p.reviewed}", "dim"),
    ]
    lines += [(f'  {q.seed}: "{q.quote}"', "dim") for q in p.passages]
    if p.clinical_judgement:
        lines.append((f"  Clinical judgement, beyond the sources: {p.clinical_judgement}", "dim"))
    return lines


def _print_lines(lines: Sequence[tuple[str, str]]) -> None:
    from rich.text import Text

    console = _console()
    for text, style in lines:
        console.print(Text(text, style=style))


@evidence_app.callback()
def _evidence_group(
    ctx: typer.Context, rules: RulesDir = None, evidence: EvidenceDir = None
) -> None:
    ctx.obj = (rules, evidence)
    if ctx.invoked_subcommand is None:
        _list_evidence(_load(rules, evidence))


@evidence_app.command("list")
def evidence_list(ctx: typer.Context, rules: RulesDir = None, evidence: EvidenceDir = None) -> None:
    """List every evidence entry: id, year, design, n, PMID, rules citing it and title."""
    _list_evidence(_load(*_dirs(ctx, rules, evidence)))


def _list_evidence(kb: KnowledgeBase) -> None:
    rows = [
        [
            e.id,
            str(e.year or "-"),
            e.design.value,
            str(e.n or "-"),
            e.pmid or "-",
            ",".join(kb.cited_by(e.id)) or "-",
            e.title,
        ]
        for e in kb.evidence.values()
    ]
    _table(["id", "year", "design", "n", "pmid", "cited_by", "title"], rows)


@evidence_app.command("show")
def evidence_show(
    ctx: typer.Context,
    evidence_id: Annotated[
        str, typer.Argument(metavar="ID", help="An evidence id such as pmid-15451222.")
    ],
    rules: RulesDir = None,
    evidence: EvidenceDir = None,
) -> None:
    """Show one evidence entry: design, n, regimen, outcomes with figures, quality notes, and
    which rules cite it."""
    kb = _load(*_dirs(ctx, rules, evidence))
    entry = kb.evidence[_find("evidence", evidence_id, list(kb.evidence))]
    lines: list[tuple[str, str]] = [
        (f"{entry.id}  {entry.title}", "bold"),
        (f"file {kb.sources.get(entry.id, '?')}", "dim"),
        ("", ""),
    ]
    facts = {
        "Authors": ", ".join(entry.authors) or None,
        "Journal": entry.journal,
        "Year": str(entry.year) if entry.year is not None else None,
        "Citation": entry.citation,
        "PMID": f"{entry.pmid} {PUBMED.format(pmid=entry.pmid)}" if entry.pmid else None,
        "DOI": entry.doi,
        "Identifiers": entry.identifiers_note,
        "Seed": f"{entry.source.seed} {entry.source.section or ''}".rstrip(),
        "Design": entry.design.value,
        "Population": entry.population,
        "n": str(entry.n) if entry.n is not None else None,
        "Regimen": entry.regimen,
        "Duration": entry.duration,
    }
    lines += [(f"{k}: {v}", "") for k, v in facts.items() if v]
    if entry.outcomes:
        lines += [("", ""), ("Outcomes (figures as printed in the source):", "bold")]
        lines += [(f"  - {o.measure}: {o.result}", "") for o in entry.outcomes]
    lines += [("", ""), ("Findings:", "bold"), (f"  {entry.findings.strip()}", "")]
    if entry.quality_notes:
        lines += [("", ""), ("Quality notes:", "bold")]
        lines += [(f"  - {note}", "") for note in entry.quality_notes]
    cited = kb.cited_by(entry.id)
    lines += [
        ("", ""),
        (f"Cited by: {', '.join(cited)}" if cited else "Cited by: no rule (background)", "bold"),
    ]
    _print_lines(lines)


# --- validate, trace, schema, serve ----------------------------------------------------------


@app.command()
def validate(rules: RulesDir = None, evidence: EvidenceDir = None) -> None:
    """Validate the knowledge base: every file, every cross-reference, and rule compilation.

    Prints every problem found as path:line:column and exits 1, or a one-line summary.
    """
    kb = _load(rules, evidence, validating=True)
    try:
        Evaluator(kb)
    except IvigCdsError as exc:
        _fail(f"the knowledge base loaded but could not be compiled: {exc}")
    windows = _record_windows(kb)
    typer.echo(
        f"knowledge base OK: {len(kb.conclusions)} conclusions, {len(kb.cautions)} cautions, "
        f"{len(kb.evidence)} evidence entries (version {kb.version}, {kb.content_hash})"
    )
    if windows is not None:
        typer.echo(
            "record windows OK: "
            + ", ".join(f"{name} {w.weeks} weeks" for name, w in windows.rows())
        )


@app.command()
def trace(
    output_format: Annotated[
        TraceFormat,
        typer.Option("--format", "-f", case_sensitive=False, help="markdown, csv or json."),
    ] = TraceFormat.MARKDOWN,
    rules: RulesDir = None,
    evidence: EvidenceDir = None,
) -> None:
    """Print the traceability matrix: rules (with question, tier, certainty) x evidence.

    An "x" marks each work a rule cites. The JSON form also lists, for each evidence entry,
    the rules that cite it.
    """
    from ivig_cds._render import dumps

    matrix = trace_matrix(_load(rules, evidence))
    if output_format is TraceFormat.JSON:
        typer.echo(dumps(to_json(matrix)), nl=False)
    elif output_format is TraceFormat.CSV:
        typer.echo(to_csv(matrix), nl=False)
    else:
        typer.echo(to_markdown(matrix), nl=False)


@app.command()
def schema() -> None:
    """Print the JSON Schema of a patient file (the patient context), for validating input."""
    from ivig_cds._render import dumps

    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **PatientContext.model_json_schema(),
    }
    typer.echo(dumps(document), nl=False)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8080,
    fhir_server: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="The one FHIR server the service may query when the EHR sends no prefetch "
            "(only when the request's fhirServer is this URL). Default: fetch nothing and "
            "answer 412.",
        ),
    ] = None,
    jwt_issuer: Annotated[
        list[str] | None,
        typer.Option(
            metavar="ISSUER=KEYFILE",
            help="Require a bearer JWT on every call, signed by this issuer with the public key "
            "in KEYFILE (PEM, or a JWK Set in .json). Repeat for several issuers.",
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="The service's external base URL, checked as the JWT audience behind a proxy.",
        ),
    ] = None,
) -> None:
    """Run the CDS Hooks 2.0 service (HTTP) on HOST:PORT until interrupted.

    Discovery is at GET /cds-services; hooks: patient-view, order-select, order-sign.
    """
    issuers = _jwt_issuers(jwt_issuer or [])
    try:
        from ivig_cds._service import run
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith(("ivig_cds._service", "fastapi", "uvicorn")):
            raise
        _fail(
            f"the CDS Hooks service is not available in this installation "
            f"(module {exc.name} is missing)"
        )
    run(
        host=host,
        port=port,
        fhir_server=fhir_server,
        jwt_issuers=issuers or None,
        public_base_url=public_url,
    )


def _jwt_issuers(specs: list[str]) -> dict[str, str | dict[str, object]]:
    """Parse repeated ISSUER=KEYFILE options into the service's issuer-to-key mapping."""
    issuers: dict[str, str | dict[str, object]] = {}
    for spec in specs:
        issuer, sep, key_file = spec.rpartition("=")
        if not sep or not issuer or not key_file:
            raise typer.BadParameter(f"'{spec}' is not ISSUER=KEYFILE", param_hint="'--jwt-issuer'")
        path = Path(key_file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(
                f"cannot read key file '{key_file}': {getattr(exc, 'strerror', None) or exc}",
                param_hint="'--jwt-issuer'",
            ) from None
        if path.suffix == ".json":
            try:
                issuers[issuer] = json.loads(text)
            except json.JSONDecodeError as exc:
                raise typer.BadParameter(
                    f"'{key_file}' is not a JSON JWK Set ({exc.msg} at line {exc.lineno})",
                    param_hint="'--jwt-issuer'",
                ) from None
        else:
            issuers[issuer] = text
    return issuers


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:  # e.g. `ivig-cds trace | head`: the reader left, nothing to report
        sys.stderr.close()
        sys.exit(1)
