"""`ivig-cds population`: the command (`commands`, registered in `cli/app.py`)."""

# ruff: noqa: PLC0415  # the engines load FHIR models and DuckDB: only when the command runs

from __future__ import annotations

import datetime as dt
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ivig_cds._errors import IvigCdsError
from ivig_cds._pseudonym import Pseudonymizer, read_default_key

OUTPUTS = ("results.ndjson", "errors.ndjson", "summary.json", "report.html")

commands = typer.Typer()  # registered in cli/app.py; imports nothing of cli/ (it imports us)

HELP = """Audit IVIG use over a FHIR Bulk Data export (one NDJSON file per resource type).

Writes OUT/results.ndjson (one line per patient with MS on record: phenotype, tier, primary
rule, missing data, mapping notes, each IVIG dose judged as of its date), OUT/errors.ndjson,
OUT/summary.json and OUT/report.html. Patients are keyed by HMAC-SHA256 of their FHIR id under
the key `ivig-cds serve` made (in its data folder), IVIG_CDS_PSEUDONYM_KEY or --key-file, unless
--keep-ids. With --codes FILE (repeatable), the site's own codes are read through its code
maps (a FHIR ConceptMap, a ValueSet per concept, or a YAML code table); summary.json names
them and their hash. Exit codes: 0 every line was read, 1 some lines went to errors.ndjson or
a site code map is invalid, 2 usage error, unreadable export, no pseudonym key, or OUT_DIR
not a writable folder.
"""


class EngineName(StrEnum):
    DUCKDB = "duckdb"
    SPARK = "spark"


@commands.command(help=HELP, no_args_is_help=True)
def population(
    export: Annotated[
        Path, typer.Argument(metavar="EXPORT_DIR", help="Folder of the Bulk Data export.")
    ],
    *,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="OUT_DIR", help="Output folder.")],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            metavar="YYYY-MM-DD",
            help="Date of the tiers. Default: the manifest's transactionTime, else the newest "
            "meta.lastUpdated.",
            show_default=False,
        ),
    ] = None,
    engine: Annotated[EngineName, typer.Option(help="Grouping engine.")] = EngineName.DUCKDB,
    spark_master: Annotated[
        str, typer.Option(metavar="URL", help="Spark master (with --engine spark).")
    ] = "local[*]",
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="DuckDB engine: processes auditing patients. Default: the number of cores.",
            show_default=False,
        ),
    ] = None,
    keep_ids: Annotated[
        bool, typer.Option("--keep-ids", help="Key results by FHIR patient id (not pseudonyms).")
    ] = False,
    key_file: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="Pseudonym key file (if IVIG_CDS_PSEUDONYM_KEY is unset). Default: the key "
            "`ivig-cds serve` made in its data folder; never created here.",
            show_default=False,
        ),
    ] = None,
    codes: Annotated[
        list[Path] | None,
        typer.Option(
            "--codes",
            metavar="FILE",
            help="A site code map (FHIR ConceptMap or ValueSet JSON, or a YAML code table) for "
            "your hospital's own codes. Repeatable.",
            show_default=False,
        ),
    ] = None,
) -> None:
    from ivig_cds.fhir import SiteMapError
    from ivig_cds.population._engines import duckdb_engine, spark_engine
    from ivig_cds.population._run import run_population

    day = None
    if as_of is not None:
        try:
            day = dt.date.fromisoformat(as_of)
        except ValueError:
            raise typer.BadParameter(
                f"'{as_of}' is not a date YYYY-MM-DD", param_hint="--as-of"
            ) from None
    try:
        pseudonymizer = None if keep_ids else Pseudonymizer(read_default_key(key_file))
        chosen = (
            duckdb_engine(workers or os.cpu_count() or 1)
            if engine is EngineName.DUCKDB
            else spark_engine(spark_master)
        )
        run = run_population(
            export,
            out,
            as_of=day,
            pseudonymizer=pseudonymizer,
            engine=chosen,
            code_maps=codes or (),
        )
    except SiteMapError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except IvigCdsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(summary_line(run.summary, run.errors), err=True)
    typer.echo("wrote " + ", ".join(str(out / name) for name in OUTPUTS), err=True)
    raise typer.Exit(1 if run.errors else 0)


def summary_line(summary: dict[str, Any], errors: int) -> str:
    """The run in one line: patients, IVIG doses unsupported at their date, unreadable lines."""
    unread = f"{_count(errors, 'unreadable line')} (errors.ndjson)" if errors else "every line read"
    if not summary["patients"]:
        return f"No patients in this export (as of {summary['as_of']}); {unread}"
    ivig = summary["ivig"]
    doses = sum(ivig["doses_by_tier"].values())
    dosing = (
        f"{ivig['doses_unsupported']:,} of {_count(doses, 'IVIG dose')} unsupported at their date"
        if doses
        else "no IVIG doses in this export"
    )
    return (
        f"{_count(summary['patients'], 'patient')}, {summary['patients_with_ms']:,} with MS on "
        f"record, as of {summary['as_of']}; {dosing}; {unread}"
    )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"
