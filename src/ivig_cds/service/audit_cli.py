"""`ivig-cds audit summary|export|purge`: read and prune the decision store.

Only typer loads at import; SQLAlchemy and fhir.resources load inside the commands.
"""

# ruff: noqa: PLC0415
# (imports inside functions are deliberate: `ivig-cds --help` must not load the database stack)

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from ivig_cds.service.store import Store

__all__ = ["audit_app"]

audit_app = typer.Typer(
    help="Report on, export and prune the service's decision and feedback store.",
    no_args_is_help=True,
    add_completion=False,
)


class SummaryFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    CSV = "csv"


class ExportFormat(StrEnum):
    NDJSON = "ndjson"
    GUIDANCE_RESPONSE = "guidance-response"


StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        metavar="URL",
        help="The store `serve --store` wrote to (sqlite:///FILE or postgresql://...). "
        "Default: the one `serve` writes by default, in the data folder.",
        show_default=False,
    ),
]
SinceOption = Annotated[
    str | None,
    typer.Option(metavar="DATE", help="Only records from this date (YYYY-MM-DD, UTC) on."),
]


@audit_app.command()
def summary(
    store: StoreOption = None,
    since: SinceOption = None,
    output_format: Annotated[
        SummaryFormat,
        typer.Option("--format", "-f", case_sensitive=False, help="text, json or csv."),
    ] = SummaryFormat.TEXT,
) -> None:
    """Decisions per month, rule and tier; feedback per rule: accepted, overridden, override
    rate and the most frequent override reasons."""
    from ivig_cds.service.audit import summarize

    start = _date(since, "--since")
    opened = _open(store)
    rows = summarize(opened.rows("decisions", start), opened.rows("feedback", start))
    opened.dispose()
    if output_format is SummaryFormat.JSON:
        typer.echo(json.dumps({"since": since, "rows": [r.as_json() for r in rows]}, indent=2))
    elif output_format is SummaryFormat.CSV:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["month", "rule", "tier", "decisions", "accepted", "overridden",
                         "override_rate", "top_reasons"])  # fmt: skip
        for r in rows:
            reasons = ";".join(f"{c}={n}" for c, n in r.top_reasons())
            rate = "" if r.override_rate is None else f"{r.override_rate:.3f}"
            writer.writerow([r.month, r.rule, r.tier, r.decisions, r.accepted, r.overridden,
                             rate, reasons])  # fmt: skip
        typer.echo(out.getvalue(), nl=False)
    else:
        total = sum(r.decisions for r in rows)
        answered = sum(r.accepted + r.overridden for r in rows)
        typer.echo(
            f"{_count(total, 'decision')}, {_count(answered, 'feedback item')}"
            + (f" since {since}" if since else "")
        )
        if rows:
            typer.echo(f"{'month':<8} {'rule':<10} {'tier':<22} {'decisions':>9} {'accepted':>8} "
                       f"{'overridden':>10} {'override rate':>13}  top reasons")  # fmt: skip
        for r in rows:
            rate = "-" if r.override_rate is None else f"{r.override_rate:.0%}"
            reasons = ", ".join(f"{c} ({n})" for c, n in r.top_reasons()) or "-"
            typer.echo(f"{r.month:<8} {r.rule:<10} {r.tier:<22} {r.decisions:>9} {r.accepted:>8} "
                       f"{r.overridden:>10} {rate:>13}  {reasons}")  # fmt: skip


@audit_app.command()
def export(
    store: StoreOption = None,
    since: SinceOption = None,
    output_format: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            "-f",
            case_sensitive=False,
            help="ndjson (decisions and feedback) or guidance-response (decisions as FHIR R4 "
            "GuidanceResponse, one per line).",
        ),
    ] = ExportFormat.NDJSON,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write the records, oldest first, one JSON document per line."""
    from ivig_cds.service.audit import guidance_response, ndjson_records

    start = _date(since, "--since")
    opened = _open(store)
    decisions = opened.rows("decisions", start)
    if output_format is ExportFormat.NDJSON:
        lines = list(ndjson_records(decisions, opened.rows("feedback", start)))
    else:
        lines = [json.dumps(guidance_response(d), sort_keys=True) for d in decisions]
    opened.dispose()
    text = "".join(line + "\n" for line in lines)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {_count(len(lines), 'record')} to {output}", err=True)


@audit_app.command()
def purge(
    before: Annotated[
        str,
        typer.Option(
            metavar="DATE", help="Remove records before this date (UTC), not a future one."
        ),
    ],
    store: StoreOption = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Remove without asking (needed when standard input is not a terminal).",
        ),
    ] = False,
) -> None:
    """Remove decisions and feedback recorded before DATE (how long to keep them is the
    operator's retention policy). Says how many records will go, then asks, unless --yes.

    Exit codes: 0 removed, or nothing to remove; 1 nothing removed (declined, no --yes without
    a terminal, or the store failed); 2 usage error (a bad or future date).
    """
    cutoff = _date(before, "--before")
    assert cutoff is not None
    today = dt.datetime.now(dt.UTC).date()
    if cutoff.date() > today:
        raise typer.BadParameter(
            f"{cutoff.date().isoformat()} is in the future (today is {today.isoformat()}, UTC)",
            param_hint="'--before'",
        )
    opened = _open(store)
    from ivig_cds.service.store import StoreError, display_url

    day = cutoff.date().isoformat()
    try:
        found = opened.count_before(cutoff)
        if not any(found.values()):
            typer.echo(f"nothing to remove: no decision or feedback recorded before {day}")
            return
        typer.echo(
            f"{_records(found)} recorded before {day} will be removed from "
            f"{display_url(opened.url)}"
        )
        if not yes:
            if not _interactive():
                _fail("standard input is not a terminal, so nothing was removed; add --yes")
            if not typer.confirm("Remove them?", default=False):
                typer.echo("nothing removed")
                raise typer.Exit(1)
        removed = opened.purge(cutoff)
    except StoreError as exc:
        _fail(f"could not purge the store: {type(exc).__name__}")
    finally:
        opened.dispose()
    typer.echo(f"removed {_records(removed)} recorded before {day}")


def _interactive() -> bool:
    """Whether someone can answer the question (a pipe or a cron job cannot: never wait)."""
    return sys.stdin.isatty()


def _records(counts: dict[str, int]) -> str:
    return (
        f"{_count(counts['decisions'], 'decision')} and "
        f"{_count(counts['feedback'], 'feedback item')}"
    )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _open(url: str | None) -> Store:
    from ivig_cds._data_dir import default_store_url
    from ivig_cds.service.store import Store, StoreError, display_url

    chosen = default_store_url() if url is None else url
    if not chosen.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
        raise typer.BadParameter(
            f"'{chosen}' is not sqlite:///FILE or postgresql://...", param_hint="'--store'"
        )
    if chosen.startswith("sqlite:///") and not Path(chosen.removeprefix("sqlite:///")).is_file():
        hint = (
            "`ivig-cds serve` creates it there on its first start; or give --store URL"
            if url is None
            else "the file does not exist"
        )
        _fail(f"no store at {display_url(chosen)} ({hint})")
    store = Store(chosen)
    try:
        revision = store.revision()
    except StoreError as exc:
        store.dispose()
        _fail(f"cannot read the store at {display_url(chosen)}: {type(exc).__name__}")
    if revision is None:
        store.dispose()
        _fail(f"{display_url(chosen)} holds no ivig-cds store (no schema revision)")
    return store


def _date(text: str | None, option: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"'{text}' is not a date (YYYY-MM-DD)", param_hint=f"'{option}'"
        ) from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _fail(message: str) -> NoReturn:
    typer.echo(f"ivig-cds: error: {message}", err=True)
    raise typer.Exit(1)
