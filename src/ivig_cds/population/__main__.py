"""The population command on its own, for `python -m ivig_cds.population` and for
`spark-submit .../ivig_cds/population/__main__.py EXPORT_DIR --out OUT_DIR --engine spark`."""

import typer

from ivig_cds.population._command import HELP, population

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
app.command(help=HELP, no_args_is_help=True)(population)

if __name__ == "__main__":
    app()
