"""What every command shares: the console, error reporting, the knowledge-base options.

Errors go to standard error as sentences naming the file, never as tracebacks; `fail` exits 1
(an input or the knowledge base is invalid), click's usage errors exit 2.
"""

# ruff: noqa: PLC0415
# (rich loads only when something is printed, so that `--version` and `--help` start fast)

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from typer.core import TyperCommand

from ivig_cds._errors import EngineUnavailableError, IvigCdsError, KnowledgeBaseError
from ivig_cds._evaluate import Evaluator, default_evaluator
from ivig_cds._hints import closest
from ivig_cds._knowledge_base import KnowledgeBase
from ivig_cds._loader import load_knowledge_base
from ivig_cds.cli.layout import Column

if TYPE_CHECKING:
    from rich.console import Console

    from ivig_cds.fhir import CodeTables, SiteMaps

E = TypeVar("E", bound=StrEnum)

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

SiteCodeFiles = Annotated[
    list[Path] | None,
    typer.Option(
        "--codes",
        metavar="FILE",
        help="A site code map: a FHIR ConceptMap or ValueSet (JSON) or a YAML code table "
        "mapping your hospital's codes to the concepts the FHIR adapter reads. Repeatable.",
        show_default=False,
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

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Typer 0.29 checks option values with pydantic and words a bad one as pydantic does
        ("Value error, 'x' is not one of ..."); the usage error keeps only the sentence."""
        try:
            return list(super().parse_args(ctx, args))
        except Exception as exc:
            message = getattr(exc, "message", None)
            if isinstance(message, str):
                exc.message = _PYDANTIC_PREFIX.sub("", message)  # type: ignore[attr-defined]
            raise

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


_PYDANTIC_PREFIX = re.compile(r"^(Value|Assertion) error, ")


def choice(kind: type[E], noun: str = "format") -> Callable[[str], E]:
    """The parser of an option whose values are `kind`'s (any case): anything else is a usage
    error naming every value ("unknown format 'pdf'; choose table, json or html")."""

    def parse(value: str) -> E:
        if isinstance(value, kind):
            return value
        for member in kind:
            if member.value.casefold() == str(value).casefold():
                return member
        values = [member.value for member in kind]
        listed = f"{', '.join(values[:-1])} or {values[-1]}" if len(values) > 1 else values[0]
        raise typer.BadParameter(f"unknown {noun} '{value}'; choose {listed}")

    return parse


def choices(kind: type[StrEnum]) -> Callable[[], list[str]]:
    """Shell completion for an option parsed by `choice`."""
    return lambda: [member.value for member in kind]


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


def site_maps(paths: Sequence[Path] | None) -> SiteMaps | None:
    """The site code maps given with `--codes`, None without; exit 1 listing every problem at
    file:line:column."""
    if not paths:
        return None
    from ivig_cds.fhir import SiteMapError, load_site_maps

    try:
        return load_site_maps(paths)
    except SiteMapError as exc:
        count = len(exc.issues)
        fail(
            f"the site code maps are invalid ({count} {'problem' if count == 1 else 'problems'});"
            " fix these and try again:",
            [str(issue) for issue in exc.issues],
        )


def code_tables(maps: SiteMaps | None) -> CodeTables | None:
    """The shipped code tables with `maps` added; None (the shipped tables) without maps."""
    if maps is None:
        return None
    from ivig_cds.fhir import default_code_tables

    return default_code_tables().with_site_maps(maps)


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
    columns: Sequence[Column | str], rows: Sequence[Sequence[str]], *, more: str = ""
) -> None:
    """A table at a terminal, within its width; tab-separated lines with a header line for a
    pipe, every column whole.

    At a terminal, columns give way as their `Column` says (cut, left out, shortened, wrapped;
    see `layout.fit`), and the table says below it what it left out and, with `more`, where to
    see it. A plain header never gives way.
    """
    specs = [c if isinstance(c, Column) else Column(c) for c in columns]
    if not sys.stdout.isatty():
        for row in ([c.header for c in specs], *rows):
            typer.echo("\t".join(row))
        return
    from rich.text import Text

    from ivig_cds.cli.layout import Hanging, fit, render_rows

    out = console()
    shape = fit(specs, rows, out.width, more=more)
    for line in render_rows(specs, shape):
        out.print(line, crop=False, overflow="ignore", no_wrap=True)
    for note in shape.notes:
        out.print(Hanging(Text(note, style="dim")))


def print_lines(lines: Sequence[tuple[str, str]]) -> None:
    """Print (text, rich style) pairs; the text never passes through rich's markup. At a
    terminal a long line wraps under its own indentation (see `layout.Hanging`)."""
    from rich.text import Text

    from ivig_cds.cli.layout import Hanging

    out = console()
    for text, style in lines:
        out.print(Hanging(Text(text, style=style)))


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`1 page`, `3 pages`: a number with its noun agreeing."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def find_id(kind: str, wanted: str, known: Sequence[str]) -> str:
    """The id the user meant (case-insensitively), or a usage error suggesting the nearest."""
    if wanted in known:
        return wanted
    folded = {k.casefold(): k for k in known}
    if wanted.casefold() in folded:
        return folded[wanted.casefold()]
    close = closest(wanted, known, cutoff=0.5)
    hint = f"; did you mean '{close}'?" if close is not None else ""
    listing = f"`ivig-cds {kind}` lists them"
    raise typer.BadParameter(
        f"no {kind[:-1] if kind == 'rules' else 'entry'} '{wanted}'{hint} ({listing})",
        param_hint="ID",
    )
