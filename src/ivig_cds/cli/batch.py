"""`ivig-cds batch`: a population as NDJSON, through worker processes, to results and errors."""

# ruff: noqa: PLC0415
# (the batch machinery and rich load only when this command runs)

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from ivig_cds._errors import EngineUnavailableError, IvigCdsError, KnowledgeBaseError
from ivig_cds.cli import common
from ivig_cds.cli.common import EvidenceDir, RulesDir
from ivig_cds.cli.patient_files import STDIN

if TYPE_CHECKING:
    from ivig_cds._batch import BatchSummary

commands = typer.Typer()

_BATCH_HELP = """Evaluate many patients from an NDJSON file: one JSON patient object per line.

Each line of INPUT (or of standard input, for -) is a patient context as in a patient file,
written as one JSON object. Every line gives exactly one line in one of two files, in input
order, so that lines read = results + errors:

\b
  --out     one result per valid line: {"line": n, "patient_id", "tier",
            "question", "primary_rule", "certainty", "citations", "cautions",
            "missing_data", ...} (--full: {"line": n, "recommendation": <the
            whole recommendation>})
  --errors  one record per invalid line: {"line": n, "error": kind,
            "problems": [...]} with kind blank_line, line_too_long (over
            1 MiB), not_utf8, invalid_json, not_an_object, invalid_patient
            or not_evaluated

Lines are evaluated by --workers processes, in chunks, with constant memory whatever the
input size. A progress bar shows on standard error at a terminal; a summary (counts per tier
and per error kind) is printed at the end.

Exit codes: 0 every line gave a result; 1 some lines went to the errors file (or the knowledge
base is invalid); 2 usage error; 3 the run stopped early (a worker died, an output could not be
written): the outputs are incomplete; 130 interrupted."""


@commands.command(cls=common.PlainHelpCommand, help=_BATCH_HELP, no_args_is_help=True)
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
    from ivig_cds import _batch, _records

    errors = errors or _errors_path(out)
    _check_batch_paths(source, out, errors)
    try:
        _records.evaluator_for(rules, evidence)  # compiled once, here; forked workers inherit it
    except KnowledgeBaseError:
        common.load(rules, evidence)  # loads it again to report every issue, then exits 1
        raise
    except EngineUnavailableError as exc:
        common.fail(str(exc))
    except IvigCdsError as exc:
        common.fail(f"the knowledge base could not be compiled: {exc}")
    evaluate = _records.RecordEvaluator(rules, evidence, full=full)
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
                common.error(f"{exc}; the outputs are incomplete")
                if exc.summary is not None and not quiet:
                    _print_summary(exc.summary, out, errors)
                raise typer.Exit(3) from None
            except KeyboardInterrupt:
                common.error("interrupted; the outputs are incomplete")
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
        if path.suffix.lower() in (".yaml", ".yml"):
            raise typer.BadParameter(
                f"'{source}' is a YAML file, and batch reads NDJSON (one JSON patient object per "
                f"line, like examples/patients.ndjson); evaluate YAML files with "
                f"`ivig-cds evaluate {source}`",
                param_hint="INPUT",
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
    bar = Progress(*columns, console=common.console(sys.stderr), transient=True, auto_refresh=False)
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


def _print_summary(summary: BatchSummary, out: Path, errors: Path) -> None:
    """Counts on standard output, like `validate`'s summary; tiers by their labels and colours,
    in the README's order (the results file holds their codes)."""
    from rich.text import Text

    from ivig_cds._vocabulary import TIER_LABELS, Tier
    from ivig_cds.cli.render import TIER_STYLES

    typer.echo(
        f"{common.count(summary.lines, 'line')}: {common.count(summary.results, 'result')}, "
        f"{common.count(summary.errors, 'error')}, "
        f"in {summary.elapsed:.1f} s ({summary.rate:,.0f} lines/s)"
    )
    console = common.console()
    width = max(len(label) for label in TIER_LABELS.values())
    for tier in Tier:
        if summary.tiers[tier.value]:
            line = Text("  ")
            line.append(f"{TIER_LABELS[tier]:<{width}}", style=TIER_STYLES[tier])
            line.append(f" {summary.tiers[tier.value]:>12,}")
            console.print(line)
    for kind, count in sorted(summary.error_kinds.items()):
        typer.echo(f"  error: {kind:<15} {count:>12,}")
    typer.echo(f"results: {out}")
    typer.echo(f"errors:  {errors}")
