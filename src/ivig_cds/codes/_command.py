"""`ivig-cds codes coverage`: the command (`commands`, registered in `cli/app.py` as `codes`).

The reading and the FHIR code tables load only when the command runs, so that `--help` and
`--version` stay fast.
"""

# ruff: noqa: PLC0415  # the code tables and inputs load only when the command runs

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ivig_cds.cli import common

commands: typer.Typer = typer.Typer(
    help="Check how a site's codes meet the FHIR adapter's code tables.", no_args_is_help=True
)

EXIT_READ, EXIT_UNREADABLE = 0, 1

HELP = """List the codes of FHIR data that the code tables map, and the relevant ones they do not.

Reads Conditions, Observations (codes and coded values), medications (MedicationRequest,
MedicationStatement, MedicationAdministration and the Medication each names), allergies and
Procedures, and counts the patients and resources behind every code.

\b
Listed:
  unmapped codes that look relevant: a display or text naming the MS family (multiple
  sclerosis, demyelinating, clinically isolated syndrome, CIS, RRMS, SPMS, PPMS,
  relapsing-remitting, progressive MS, optic neuritis; any ICD-10 G35 or ICD-11 8A40
  code) or, for medications and allergies,
  a first-line or later disease-modifying therapy, methylprednisolone or an immunoglobulin,
  with the word that matched;
  every mapped code, with its group, value and table file.
Nothing is mapped by its words: to map a listed code, fill in the starter ConceptMap
(--concept-map) with the site's terminology team, and give it back with --codes FILE; with
--codes, the site's maps count as tables (a code they map shows its map file as its table).

\b
PATH is any of: a FHIR R4 Bundle (.json), a folder of them, an NDJSON file, a FHIR Bulk
Data export folder.

\b
--format text (default): unmapped relevant codes by kind of resource, then mapped codes;
--format csv: one row per unmapped code and per mapping (status, kind, system, code,
  display, patients, resources, mapped_by_other_code, matched_word, matched_category,
  group, value, table, verified);
--format json: one document (inputs, resources, patients, unmapped, mapped,
  other_unmapped, problems; site_codes with --codes).

Exit codes: 0 the report was written; 1 some input could not be read (the report is still
written, and lists what was not read), or a site code map is invalid (nothing is written);
2 usage error."""


class CoverageFormat(StrEnum):
    TEXT = "text"
    CSV = "csv"
    JSON = "json"


@commands.command(cls=common.PlainHelpCommand, help=HELP, no_args_is_help=True)
def coverage(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH",
            exists=True,
            help="FHIR R4 Bundles (.json) or folders of them, NDJSON files, or FHIR Bulk Data "
            "export folders.",
            show_default=False,
        ),
    ],
    *,
    output_format: Annotated[
        CoverageFormat,
        typer.Option(
            "--format",
            "-f",
            metavar="FORMAT",
            case_sensitive=False,
            help="text (default), csv or json (see above).",
            show_default=False,
        ),
    ] = CoverageFormat.TEXT,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE",
            dir_okay=False,
            help="Write the report here. Default: standard output.",
            show_default=False,
        ),
    ] = None,
    concept_map: Annotated[
        Path | None,
        typer.Option(
            "--concept-map",
            metavar="FILE",
            dir_okay=False,
            help="Also write a starter FHIR R4 ConceptMap (JSON) of the unmapped relevant codes, "
            "with empty targets for the site to fill in.",
            show_default=False,
        ),
    ] = None,
    codes: common.SiteCodeFiles = None,
) -> None:
    from ivig_cds.codes._coverage import code_coverage
    from ivig_cds.codes._formats import render_concept_map, render_csv, render_json, render_text

    if out is not None and concept_map is not None and out.resolve() == concept_map.resolve():
        raise typer.BadParameter("give the report and the ConceptMap different files",
                                 param_hint="'--concept-map'")  # fmt: skip
    for target in (out, concept_map):
        if target is not None and not target.parent.is_dir():
            raise typer.BadParameter(
                f"'{target.parent}' is not a folder", param_hint="'--out' or '--concept-map'"
            )
    tables = common.code_tables(common.site_maps(codes))  # a bad map: every problem, exit 1
    report = code_coverage(paths, tables)
    renderer = {
        CoverageFormat.TEXT: render_text,
        CoverageFormat.CSV: render_csv,
        CoverageFormat.JSON: render_json,
    }[output_format]
    _write(renderer(report), out)
    if concept_map is not None:
        _write(render_concept_map(report), concept_map)
    for problem in report.problems:  # also in the report, which may be going to a file
        common.error(problem)
    written = " and ".join(str(path) for path in (out, concept_map) if path is not None)
    if written:
        typer.echo(
            f"{common.count(len(report.unmapped), 'relevant unmapped code')}, "
            f"{common.count(len(report.mapped), 'mapped code')}; wrote {written}",
            err=True,
        )
    raise typer.Exit(EXIT_UNREADABLE if report.problems else EXIT_READ)


def _write(text: str, target: Path | None) -> None:
    if target is None:
        typer.echo(text, nl=False)
        return
    try:
        target.write_text(text, encoding="utf-8", newline="\n")
    except OSError as exc:
        common.fail(f"cannot write '{target}': {exc.strerror or type(exc).__name__}")
