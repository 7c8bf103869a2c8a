"""The root `ivig-cds` command: global options, and the command groups registered under it.

Exit codes: 0 everything worked; 1 some patient file or the knowledge base is invalid; 2 the
command line itself is wrong (click's usage errors); `batch` adds 3 (stopped early, outputs
incomplete) and 130 (interrupted).

To add a command, write a module in this package with a `typer.Typer()` holding it (see
`evaluate.py`), then add that Typer to `COMMAND_GROUPS` below: without a name its commands join
the top level, with a name they form a group (`ivig-cds rules ...`). Import heavy libraries
(FastAPI, fhir.resources, rich) inside the command, so `--version` and `--help` stay fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ivig_cds import __version__
from ivig_cds._engine import durable_version, load_durable, python_description
from ivig_cds._errors import EngineUnavailableError
from ivig_cds.cli import authoring, batch, common, evaluate, knowledge, serve
from ivig_cds.codes import commands as codes_commands
from ivig_cds.diff import commands as diff_commands
from ivig_cds.population import commands as population_commands
from ivig_cds.report import cli as report_cli
from ivig_cds.service.audit_cli import audit_app

app = typer.Typer(
    name="ivig-cds",
    help="Does IVIG have a role for this multiple-sclerosis patient, and on what evidence?\n\n"
    "Evaluate patient files against an evidence-graded knowledge base, and inspect or audit "
    "that knowledge base. Start with:  ivig-cds evaluate --help\n\n"
    "Exit codes: 0 success; 1 an input file or the knowledge base is invalid; 2 usage error.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    pretty_exceptions_enable=False,  # its tracebacks print local variables: patient data
    rich_markup_mode=None,  # help is plain text, rule texts never pass through markup
    context_settings={"help_option_names": ["-h", "--help"]},
)

# (Typer, group name or None for top-level commands), in the order `--help` lists them.
COMMAND_GROUPS: tuple[tuple[typer.Typer, str | None], ...] = (
    (evaluate.commands, None),
    (batch.commands, None),
    (population_commands, None),
    (diff_commands, None),
    (codes_commands, "codes"),
    (knowledge.rules_app, "rules"),
    (knowledge.evidence_app, "evidence"),
    (authoring.commands, None),
    (serve.commands, None),
    (report_cli.commands, None),
    (audit_app, "audit"),
)
for group, name in COMMAND_GROUPS:
    app.add_typer(group, name=name)


_VERSION = "ivig_cds.version"
_CODES = "ivig_cds.codes"


def _version_flag(ctx: typer.Context, value: bool) -> None:
    ctx.meta[_VERSION] = value
    _show_version(ctx)


def _version_codes(ctx: typer.Context, value: list[Path] | None) -> list[Path] | None:
    ctx.meta[_CODES] = value or []
    _show_version(ctx)
    return value


def _show_version(ctx: typer.Context) -> None:
    """What a bug report needs: this package, its knowledge base (and the site code maps given
    with --codes), the engine and the Python. Both options are eager, so whichever click
    handles second prints."""
    if not ctx.meta.get(_VERSION) or _CODES not in ctx.meta:
        return
    maps = common.site_maps(ctx.meta[_CODES])
    typer.echo(f"ivig-cds {__version__}")
    kb = common.load(None, None)
    typer.echo(f"knowledge base {kb.manifest.name} {kb.version} ({kb.content_hash})")
    if maps is not None:
        typer.echo(f"site code maps {', '.join(maps.files)} ({maps.hash})")
    try:
        load_durable()
        problem = None
    except EngineUnavailableError as exc:
        problem = str(exc)
    engine = f"durable-rules {durable_version() or 'not installed'}"
    typer.echo(engine if problem is None else f"{engine} (cannot be loaded; see below)")
    typer.echo(python_description())
    if problem is not None:
        common.fail(problem)
    raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_version_flag,
            is_eager=True,
            help="Print the versions of ivig-cds, its knowledge base (with its content hash), "
            "durable-rules and Python.",
        ),
    ] = False,
    codes: Annotated[
        list[Path] | None,
        typer.Option(
            "--codes",
            metavar="FILE",
            callback=_version_codes,
            is_eager=True,
            help="With --version: also check these site code maps and print their hash "
            "(commands take --codes after their name).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Does IVIG have a role for this multiple-sclerosis patient, and on what evidence?"""
    if codes:
        raise typer.BadParameter(
            "goes after the command (ivig-cds evaluate --fhir --codes FILE ...); before it, "
            "only with --version",
            param_hint="'--codes'",
        )


def main() -> None:
    """Console-script entry point (also `python -m ivig_cds`)."""
    try:
        app()
    except EngineUnavailableError as exc:  # a command without its own handler met a broken engine
        common.error(str(exc))
        sys.exit(1)
    except BrokenPipeError:  # e.g. `ivig-cds trace | head`: the reader left, nothing to report
        sys.stderr.close()
        sys.exit(1)
