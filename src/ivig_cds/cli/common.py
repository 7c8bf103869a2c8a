"""What every command shares: the console, error reporting, the knowledge-base options.

Errors go to standard error as sentences naming the file, never as tracebacks; `fail` exits 1
(an input or the knowledge base is invalid), click's usage errors exit 2.
"""

# ruff: noqa: PLC0415
# (rich loads only when something is printed, so that `--version` and `--help` start fast)

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand

from ivig_cds._errors import EngineUnavailableError, IvigCdsError, KnowledgeBaseError
from ivig_cds._evaluate import Evaluator, default_evaluator
from ivig_cds._knowledge_base import KnowledgeBase
from ivig_cds._loader import load_knowledge_base

if TYPE_CHECKING:
    from rich.console import Console

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


class PlainHelpCommand(TyperCommand):
    """A command whose help shows the placeholders written for it (`PATH...`, `ID`), not typer's
    `{PATH}` and `<list[str]>`. Every command takes it as `cls=`.

    Parameters are told apart by click's `param_type_name`, and contexts and formatters are
    typed loosely, because typer 0.29 ships its own copy of click while older typers use click.
    """

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                pieces.append(_placeholder(param))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        params = self.get_params(ctx)
        arguments = [
            (_placeholder(p), getattr(p, "help", None) or "")
            for p in params
            if p.param_type_name == "argument"
        ]
        options = [
            record
            for p in params
            if p.param_type_name == "option" and (record := p.get_help_record(ctx))
        ]
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _placeholder(argument: Any) -> str:
    name = str(argument.metavar or (argument.name or "arg").upper())
    return f"{name}..." if argument.nargs != 1 else name


def console(file: IO[str] | None = None) -> Console:
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


def error(message: str, details: Sequence[str] = ()) -> None:
    typer.echo(f"{typer.style('error:', fg='red', bold=True)} {message}", err=True)
    for line in details:
        typer.echo(f"  {line}", err=True)


def fail(message: str, details: Sequence[str] = ()) -> NoReturn:
    error(message, details)
    raise typer.Exit(1)


def load(rules: Path | None, evidence: Path | None, *, validating: bool = False) -> KnowledgeBase:
    """The knowledge base, or exit 1 listing every problem at path:line:column."""
    try:
        return load_knowledge_base(rules, evidence)
    except KnowledgeBaseError as exc:
        count = len(exc.issues)
        hint = "" if validating else "; fix these, then check with `ivig-cds validate`"
        fail(
            f"the knowledge base is invalid ({count} {'error' if count == 1 else 'errors'}){hint}:",
            [str(issue) for issue in exc.issues],
        )


def evaluator(rules: Path | None, evidence: Path | None) -> Evaluator:
    """The shipped evaluator, or one compiled for another knowledge base; exit 1 if it fails."""
    try:
        if rules is None and evidence is None:
            return default_evaluator()
        return Evaluator(load(rules, evidence))
    except EngineUnavailableError as exc:
        fail(str(exc))
    except IvigCdsError as exc:
        fail(f"the knowledge base could not be compiled: {exc}")


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, whole: Sequence[int] | None = None
) -> None:
    """A table at a terminal; tab-separated lines with a header line for a pipe.

    With `whole` (column indexes), each row stays on one line: those columns are never cut, and
    the others are cut with an ellipsis on a narrow terminal, so the table is as tall as its rows.
    """
    if not sys.stdout.isatty():
        for row in (headers, *rows):
            typer.echo("\t".join(row))
        return
    from rich.table import Table
    from rich.text import Text

    out = console()
    if whole is None:
        shown = Table(*headers, box=None, header_style="bold")
        for row in rows:
            shown.add_row(*row)
        out.print(shown)
        return
    widths = _fit(
        [max(len(r[i]) for r in (headers, *rows)) for i in range(len(headers))], whole, out.width
    )
    for n, row in enumerate((headers, *rows)):
        cells = [_cut(cell, width) for cell, width in zip(row, widths, strict=True)]
        out.print(Text("  ".join(cells).rstrip(), style="bold" if n == 0 else ""), crop=False)


_NARROWEST = 8  # a cut column still shows this much


def _fit(widths: list[int], whole: Sequence[int], total: int) -> list[int]:
    """Column widths within `total` (with two spaces between columns): the widest column that
    may be cut loses a character at a time, down to `_NARROWEST`."""
    widths = list(widths)
    excess = sum(widths) + 2 * (len(widths) - 1) - total
    while excess > 0:
        cuttable = [i for i, w in enumerate(widths) if i not in whole and w > _NARROWEST]
        if not cuttable:
            break
        widest = max(cuttable, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    return widths


def _cut(cell: str, width: int) -> str:
    return cell.ljust(width) if len(cell) <= width else cell[: width - 1] + "…"


def print_lines(lines: Sequence[tuple[str, str]]) -> None:
    """Print (text, rich style) pairs; the text never passes through rich's markup."""
    from rich.text import Text

    out = console()
    for text, style in lines:
        out.print(Text(text, style=style))


def find_id(kind: str, wanted: str, known: Sequence[str]) -> str:
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
