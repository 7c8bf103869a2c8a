"""`ivig-cds diff`: the command (`commands`, registered in `cli/app.py`).

`cli.app` imports this module (through `ivig_cds.diff.commands`, which loads it on first use)
after `cli.common`, whose help formatting it takes; the comparison's machinery loads only when
the command runs, so that `--help` and `--version` stay fast.
"""

# ruff: noqa: PLC0415  # the machinery, FHIR models and DuckDB load only when the command runs

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from ivig_cds.cli import common

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ivig_cds.diff._sides import Side
    from ivig_cds.diff._tally import Tally

commands: typer.Typer = typer.Typer()  # typed: mypy meets it inside an import cycle

EXIT_SAME, EXIT_INVALID, EXIT_CHANGED = 0, 1, 3

HELP = """Show which answers a knowledge-base change gives differently, and why.

Evaluates every patient given with two knowledge bases, the old one (--old-rules and
--old-evidence; default: the shipped one) and the new one (--rules and --evidence; default: the
shipped one), and compares, per patient (or per IVIG dose), the tier, the rule that decided
it, the certainty, the cautions, the missing data and the other findings.

\b
PATH is any of:
  patient files (.yaml, .yml, .json) and folders of them, as for `ivig-cds evaluate`;
  NDJSON files (.ndjson), one patient context per line, as for `ivig-cds batch`;
  FHIR R4 Bundles, with --fhir;
  FHIR Bulk Data export folders, with --bulk: each patient now and each IVIG dose judged as
  of its date, as `ivig-cds population` does (tier, deciding rule and missing data).

\b
--format text (default): the transition matrix of old tier x new tier, then the changed
  answers grouped by transition, each with the rule that decided each side;
--format json: one document (sides, counts, matrices, groups with their items, errors);
--format ndjson: one changed patient or dose per line;
--format html: one self-contained page; its matrix links to each group, and each changed
  patient shows both answers and both paths through the decision flow side by side.

Exit codes: 0 no answer changed; 3 some answers changed; 1 an input or a knowledge base is
invalid (the comparison is incomplete; it wins over 3); 2 usage error; 130 interrupted."""


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    NDJSON = "ndjson"
    HTML = "html"


def _folder(flag: str, kind: str, side: str, direction: str) -> object:
    return typer.Option(
        flag,
        metavar="DIR",
        exists=True,
        file_okay=False,
        help=f"{kind} folder of the {side} knowledge base (compared {direction}). "
        "Default: the shipped one.",
        show_default=False,
    )


@commands.command(cls=common.PlainHelpCommand, help=HELP, no_args_is_help=True)
def diff(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH",
            help="Patient files or folders, NDJSON files, FHIR Bundles (--fhir) or Bulk Data "
            "export folders (--bulk).",
            show_default=False,
        ),
    ],
    *,
    rules: Annotated[Path | None, _folder("--rules", "Rules", "new", "to")] = None,
    evidence: Annotated[Path | None, _folder("--evidence", "Evidence", "new", "to")] = None,
    old_rules: Annotated[Path | None, _folder("--old-rules", "Rules", "old", "from")] = None,
    old_evidence: Annotated[
        Path | None, _folder("--old-evidence", "Evidence", "old", "from")
    ] = None,
    output_format: Annotated[
        OutputFormat,
        typer.Option(
            "--format",
            "-f",
            metavar="FORMAT",
            case_sensitive=False,
            help="text (default), json, ndjson or html (see above).",
            show_default=False,
        ),
    ] = OutputFormat.TEXT,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE",
            dir_okay=False,
            help="Write the output here. Default: standard output.",
            show_default=False,
        ),
    ] = None,
    summary: Annotated[
        bool,
        typer.Option("--summary", help="Text: the matrix and what changed, not each patient."),
    ] = False,
    fhir: Annotated[bool, typer.Option("--fhir", help="The files are FHIR R4 Bundles.")] = False,
    bulk: Annotated[
        bool, typer.Option("--bulk", help="The folders are FHIR Bulk Data exports.")
    ] = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            metavar="YYYY-MM-DD",
            help="FHIR: the date records are judged at. Default: today for Bundles, the "
            "export's date for --bulk.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="NDJSON and --bulk: worker processes. Default: the number of cores.",
            show_default=False,
        ),
    ] = None,
    keep_ids: Annotated[
        bool, typer.Option("--keep-ids", help="--bulk: name patients by FHIR id, not pseudonym.")
    ] = False,
    key_file: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="--bulk: pseudonym key file. Default: the key `ivig-cds serve` keeps in its data "
            "folder (or IVIG_CDS_PSEUDONYM_KEY).",
            show_default=False,
        ),
    ] = None,
) -> None:

    day = _date(as_of)
    if fhir and bulk:
        raise typer.BadParameter("give --fhir or --bulk, not both", param_hint="'--bulk'")
    if summary and output_format is not OutputFormat.TEXT:
        raise typer.BadParameter("applies only to --format text", param_hint="'--summary'")
    old, new = _side("old", old_rules, old_evidence), _side("new", rules, evidence)
    from ivig_cds.diff._sides import same_knowledge_base
    from ivig_cds.diff._tally import Tally

    same = same_knowledge_base(old, new)
    with tempfile.TemporaryDirectory(prefix="ivig-diff-") as scratch, Tally(Path(scratch)) as tally:
        try:
            judged_at = _compare(
                paths, old, new, tally, fhir=fhir, bulk=bulk, day=day,
                workers=workers or os.cpu_count() or 1, keep_ids=keep_ids, key_file=key_file,
            )  # fmt: skip
        except KeyboardInterrupt:
            common.error("interrupted; nothing was written")
            raise typer.Exit(130) from None
        _write(tally, old, new, same=same, as_of=judged_at, chosen=output_format, out=out,
               summary_only=summary)  # fmt: skip
        _report(
            tally, same=same, to_stderr=out is not None or output_format is not OutputFormat.TEXT
        )
        changed = any(tally.changed(unit) for unit in tally.units())
    if tally.error_count:
        raise typer.Exit(EXIT_INVALID)
    raise typer.Exit(EXIT_CHANGED if changed else EXIT_SAME)


def _date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"'{value}' is not a date YYYY-MM-DD", param_hint="--as-of"
        ) from None


def _side(role: str, rules: Path | None, evidence: Path | None) -> Side:
    """Load one side, or exit 1 with one line per issue (the first naming the side)."""
    from ivig_cds._errors import EngineUnavailableError, IvigCdsError
    from ivig_cds.diff._sides import SideError, load_side

    try:
        return load_side(role, rules, evidence)
    except SideError as exc:
        first, *rest = str(exc).split("\n")
        common.fail(first, [line.strip() for line in rest])
    except EngineUnavailableError as exc:
        common.fail(str(exc))
    except IvigCdsError as exc:
        common.fail(f"the {role} knowledge base could not be compiled: {exc}")


def _compare(
    paths: list[str],
    old: Side,
    new: Side,
    tally: Tally,
    *,
    fhir: bool,
    bulk: bool,
    day: dt.date | None,
    workers: int,
    keep_ids: bool,
    key_file: Path | None,
) -> dt.date | None:
    """Compare every input into `tally`; the date FHIR records were judged at, if any."""
    from ivig_cds.cli.patient_files import MAX_FHIR_BYTES, STDIN, PatientPathError, discover
    from ivig_cds.diff._files import compare_files
    from ivig_cds.diff._ndjson import compare_ndjson

    if bulk:
        return _compare_exports(
            paths, old, new, tally, day=day, workers=workers, keep_ids=keep_ids, key_file=key_file
        )
    ndjson = [p for p in paths if p != STDIN and p.lower().endswith(".ndjson")]
    others = [p for p in paths if p not in ndjson]
    for path in ndjson:
        if not Path(path).is_file():
            raise typer.BadParameter(f"'{path}' is not an NDJSON file", param_hint="PATH")
    try:
        sources = discover(others)
    except PatientPathError as exc:
        raise typer.BadParameter(str(exc), param_hint="PATH") from None
    stream = typer.get_binary_stream("stdin")
    compare_files(
        sources, old, new, tally, lambda: stream.read(MAX_FHIR_BYTES + 1), fhir=fhir, as_of=day
    )
    from ivig_cds._batch import BatchAbortedError

    for path in ndjson:
        try:
            with Path(path).open("rb") as lines:
                compare_ndjson(Path(path), lines, old.dirs, new.dirs, tally, workers=workers)
        except OSError as exc:
            common.fail(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})")
        except BatchAbortedError as exc:
            common.fail(f"{path}: {exc}; the comparison is incomplete")
    return (day or dt.date.today()) if fhir else None


def _compare_exports(
    paths: list[str],
    old: Side,
    new: Side,
    tally: Tally,
    *,
    day: dt.date | None,
    workers: int,
    keep_ids: bool,
    key_file: Path | None,
) -> dt.date | None:
    from ivig_cds._errors import IvigCdsError
    from ivig_cds._pseudonym import Pseudonymizer, read_default_key
    from ivig_cds.diff._bulk import compare_export
    from ivig_cds.diff._tally import InputError

    try:
        pseudonymizer = None if keep_ids else Pseudonymizer(read_default_key(key_file))
    except IvigCdsError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--key-file'") from None
    judged_at = None
    for path in paths:
        try:
            judged_at = compare_export(
                Path(path), old.dirs, new.dirs, tally, as_of=day, workers=workers,
                pseudonymizer=pseudonymizer,
            )  # fmt: skip
        except IvigCdsError as exc:  # not an export, no date, the engine failed: one line
            tally.add_error(InputError(path, str(exc).removeprefix(f"{path}: ")))
    return judged_at


def _write(
    tally: Tally,
    old: Side,
    new: Side,
    *,
    same: bool,
    as_of: dt.date | None,
    chosen: OutputFormat,
    out: Path | None,
    summary_only: bool,
) -> None:
    from ivig_cds.diff._formats import render_json, render_ndjson
    from ivig_cds.diff._text import render_text

    day = as_of.isoformat() if as_of else None
    pieces: Iterable[str]
    if chosen is OutputFormat.TEXT:
        pieces = (
            line + "\n"
            for line in render_text(
                tally, old, new, same=same, summary_only=summary_only, list_errors=out is not None
            )
        )
    elif chosen is OutputFormat.JSON:
        pieces = render_json(tally, old, new, same=same, as_of=day)
    elif chosen is OutputFormat.NDJSON:
        pieces = render_ndjson(tally)
    else:
        from ivig_cds.diff._html import render_html

        pieces = [render_html(tally, old, new, same=same, as_of=day)]
    if out is None:  # a reader that left (`| head`) is main()'s to handle, as for every command
        _stream(pieces, sys.stdout)
        return
    try:
        with out.open("w", encoding="utf-8", newline="\n") as handle:
            _stream(pieces, handle)
    except OSError as exc:
        common.fail(f"cannot write '{out}': {exc.strerror or type(exc).__name__}")


def _stream(pieces: Iterable[str], handle: IO[str]) -> None:
    for piece in pieces:
        handle.write(piece)
    handle.flush()


def _report(tally: Tally, *, same: bool, to_stderr: bool) -> None:
    """Errors, one line each, and a one-line summary on standard error."""
    from ivig_cds.diff._text import count_words

    shown = tally.errors[:20]
    for error in shown:
        common.error(str(error))
    if tally.error_count > len(shown):
        common.error(f"... and {tally.error_count - len(shown):,} more inputs not compared")
    if not to_stderr:
        return
    parts = [
        f"{count_words(tally.compared(u), u)} compared, {tally.changed(u):,} changed "
        f"({tally.tier_changed(u):,} in tier)"
        for u in tally.units()
    ]
    if same:
        parts.append("both sides are the same knowledge base")
    typer.echo("; ".join(parts) or "nothing compared", err=True)
