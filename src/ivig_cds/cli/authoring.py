"""Tools for knowledge engineers and integrators: `validate`, `trace` and `schema`."""

# ruff: noqa: PLC0415
# (the JSON writer lives with the renderers, loaded only when used)

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from ivig_cds._errors import EngineUnavailableError, IvigCdsError
from ivig_cds._evaluate import Evaluator
from ivig_cds._patient import PatientContext
from ivig_cds._recommendation import Recommendation
from ivig_cds._trace import to_csv, to_json, to_markdown, trace_matrix
from ivig_cds.cli import common
from ivig_cds.cli.common import EvidenceDir, RulesDir
from ivig_cds.cli.knowledge import record_windows

commands = typer.Typer()


class TraceFormat(StrEnum):
    MARKDOWN = "markdown"
    CSV = "csv"
    JSON = "json"


@commands.command(cls=common.PlainHelpCommand)
def validate(rules: RulesDir = None, evidence: EvidenceDir = None) -> None:
    """Validate the knowledge base: every file, every cross-reference, and rule compilation.

    Prints every problem found as path:line:column and exits 1, or a one-line summary.
    """
    kb = common.load(rules, evidence, validating=True)
    try:
        Evaluator(kb)
    except EngineUnavailableError as exc:
        common.fail(str(exc))
    except IvigCdsError as exc:
        common.fail(f"the knowledge base loaded but could not be compiled: {exc}")
    windows = record_windows(kb)
    counts = (
        common.count(len(kb.conclusions), "conclusion"),
        common.count(len(kb.cautions), "caution"),
        common.count(len(kb.evidence), "evidence entry", "evidence entries"),
    )
    typer.echo(f"knowledge base OK: {', '.join(counts)} (version {kb.version}, {kb.content_hash})")
    if windows is not None:
        typer.echo(
            "record windows OK: "
            + ", ".join(f"{name} {common.count(w.weeks, 'week')}" for name, w in windows.rows())
        )


@commands.command(cls=common.PlainHelpCommand)
def trace(
    output_format: Annotated[
        TraceFormat,
        typer.Option(
            "--format",
            "-f",
            metavar="FORMAT",
            parser=common.choice(TraceFormat),
            autocompletion=common.choices(TraceFormat),
            help="markdown, csv or json.",
        ),
    ] = TraceFormat.MARKDOWN,
    rules: RulesDir = None,
    evidence: EvidenceDir = None,
) -> None:
    """Print the traceability matrix: rules (with question, tier, certainty) x evidence.

    An "x" marks each work a rule cites. The JSON form also lists, for each evidence entry,
    the rules that cite it.
    """
    from ivig_cds.cli.render import dumps

    matrix = trace_matrix(common.load(rules, evidence))
    if output_format is TraceFormat.JSON:
        typer.echo(dumps(to_json(matrix)), nl=False)
    elif output_format is TraceFormat.CSV:
        typer.echo(to_csv(matrix), nl=False)
    else:
        typer.echo(to_markdown(matrix), nl=False)


class SchemaOf(StrEnum):
    patient = "patient"
    result = "result"


@commands.command(cls=common.PlainHelpCommand)
def schema(
    of: Annotated[
        SchemaOf,
        typer.Option(
            "--of",
            metavar="WHAT",
            parser=common.choice(SchemaOf, "schema"),
            autocompletion=common.choices(SchemaOf),
            help="patient: the input (a patient file); result: what evaluate returns as JSON "
            "(tiers, findings, cautions, missing data).",
        ),
    ] = SchemaOf.patient,
) -> None:
    """Print the JSON Schema of a patient file (the patient context), or of a result."""
    from ivig_cds.cli.render import dumps

    model = PatientContext if of is SchemaOf.patient else Recommendation
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **model.model_json_schema(),
    }
    typer.echo(dumps(document), nl=False)
