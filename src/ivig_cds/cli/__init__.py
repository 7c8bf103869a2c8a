"""The `ivig-cds` command line, an edge of the package: nothing in the core imports it.

`app.py` holds the root command and the list of command groups; each command (or group) has
its own module; `render.py` presents one result as text, Markdown or JSON and
`patient_files.py` reads the files the commands are given.
"""

from ivig_cds.cli.app import app, main

__all__ = ["app", "main"]
