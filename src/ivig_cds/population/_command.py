"""`ivig-cds population`: the command (`commands`, registered in `cli/app.py`)."""

# ruff: noqa: PLC0415  # the engines load FHIR models and DuckDB: only when the command runs

from __future__ import annotations

import datetime as dt
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ivig_cds._errors import IvigCdsError
from ivig_cds._pseudonym import Pseudonymizer, read_key

commands = typer.Typer()  # registered in cli/app.py; imports nothing of cli/ (it imports us)

HELP = """Audit IVIG use over a FHIR Bulk Data export (one NDJSON file per resource type).

Writes OUT/results.ndjson (one line per patient with MS on record: phenotype, tier, primary
rule, missing data, mapping notes, each IVIG dose judged as of its date), OUT/errors.ndjson,
OUT/summary.json and OUT/report.html. Patients are keyed by HMAC-SHA256 of their FHIR id under
IVIG_CDS_PSEUDONYM_KEY (or --key-file) unless --keep-ids. Exit codes: 0 every line was read,
1 some lines went to errors.ndjson, 2 usage error or unreadable export.
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
            help="Pseudonym key file (if IVIG_CDS_PSEUDONYM_KEY unset).",
            show_default=False,
        ),
    ] = None,
) -> None:
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
        pseudonymizer = None if keep_ids else Pseudonymizer(read_key(key_file))
        chosen = (
            duckdb_engine(workers or os.cpu_count() or 1)
            if engine is EngineName.DUCKDB
            else spark_engine(spark_master)
        )
        run = run_population(export, out, as_of=day, pseudonymizer=pseudonymizer, engine=chosen)
    except IvigCdsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    summary = run.summary
    typer.echo(
        f"{summary['patients']:,} patients, {summary['patients_with_ms']:,} with MS on record, "
        f"as of {summary['as_of']}; {summary['ivig']['doses_unsupported']:,} IVIG doses "
        f"unsupported at their date; {run.errors:,} unreadable lines (errors.ndjson)",
        err=True,
    )
    raise typer.Exit(1 if run.errors else 0)
