"""`ivig-cds serve`: run the CDS Hooks service; FastAPI and uvicorn load only here."""

# ruff: noqa: PLC0415
# (the web service is imported inside the command, so other commands never load it)

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

import typer

from ivig_cds.cli import common
from ivig_cds.cli.common import SiteCodeFiles

commands = typer.Typer()


@commands.command(cls=common.PlainHelpCommand)
def serve(
    *,
    host: Annotated[
        str, typer.Option(metavar="HOST", help="Interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(metavar="PORT", min=1, max=65535, help="TCP port, 1 to 65535.")
    ] = 8080,
    workers: Annotated[
        int,
        typer.Option(
            metavar="N",
            min=1,
            max=64,
            help="Worker processes (one per core: the engine holds the GIL, threads add nothing).",
        ),
    ] = 1,
    fhir_server: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="The one FHIR server the service may query when the EHR sends no prefetch "
            "(only when the request's fhirServer is this URL). Default: fetch nothing and "
            "answer 412.",
        ),
    ] = None,
    jwt_issuer: Annotated[
        list[str] | None,
        typer.Option(
            metavar="ISSUER=KEYFILE",
            help="Require a bearer JWT on every call, signed by this issuer with the public key "
            "in KEYFILE (PEM, or a JWK Set in .json). Repeat for several issuers.",
        ),
    ] = None,
    jwt_jku: Annotated[
        list[str] | None,
        typer.Option(
            metavar="ISSUER=URL",
            help="Allow this issuer's tokens to name URL as their jku (JWK Set, fetched and "
            "cached); a jku not listed is never fetched. Repeatable.",
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="The service's external base URL, checked as the JWT audience behind a proxy.",
        ),
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            metavar="ORIGIN",
            help="A browser origin allowed to call the service (CORS), e.g. "
            "https://sandbox.cds-hooks.org. Repeatable; default any origin.",
        ),
    ] = None,
    report_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Where the knowledge-base report (`ivig-cds report`) is published; cards then "
            "link to their rule's page (URL/rules/<rule>.html).",
        ),
    ] = None,
    log_format: Annotated[
        str, typer.Option(metavar="json|text", help="One line per request, as JSON or text.")
    ] = "text",
    log_level: Annotated[
        str, typer.Option(metavar="LEVEL", help="debug, info, warning or error.")
    ] = "info",
    store: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Where decisions and feedback are recorded: sqlite:///FILE, "
            "postgresql://USER@HOST/DB, or none. Default: ivig-cds.sqlite3 in the data folder.",
            show_default=False,
        ),
    ] = None,
    journal: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Local journal for records while the store is away (replayed when it returns). "
            "Default: ivig-cds-journal in the data folder.",
            show_default=False,
        ),
    ] = None,
    pseudonym_key_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Key for the pseudonymous patient key (created 0600 when absent; "
            "IVIG_CDS_PSEUDONYM_KEY overrides it). Never stored in the store. Default: "
            "ivig-cds-pseudonym.key in the data folder.",
            show_default=False,
        ),
    ] = None,
    allow_key_in_work_tree: Annotated[
        bool,
        typer.Option(
            "--allow-key-in-work-tree",
            help="Create a new pseudonym key inside a git work tree all the same (refused "
            "otherwise: `git add .` would commit it).",
        ),
    ] = False,
    codes: SiteCodeFiles = None,
) -> None:
    """Run the CDS Hooks 2.0 service (HTTP) on HOST:PORT until interrupted.

    Discovery is at GET /cds-services; hooks: patient-view, order-select, order-sign; health
    at GET /health. The store, journal and pseudonym key go to the data folder
    ($IVIG_CDS_DATA_DIR, else ~/.local/share/ivig-cds on Linux) unless their options say
    otherwise. With --codes, records are read with the site code maps too (checked before
    the service starts; /health and every card name them and their hash). Exit codes: 0
    stopped (Ctrl-C or SIGTERM); 1 could not start (port in use, key refused, an invalid site
    code map, a worker failed to start); 2 usage error.
    """
    if log_format not in ("json", "text"):
        raise typer.BadParameter("expected 'json' or 'text'", param_hint="'--log-format'")
    if log_level.lower() not in ("debug", "info", "warning", "error"):
        raise typer.BadParameter(
            "expected debug, info, warning or error", param_hint="'--log-level'"
        )
    fmt: Literal["json", "text"] = "json" if log_format == "json" else "text"
    if store not in (None, "none") and not store.startswith(
        ("sqlite://", "postgresql://", "postgresql+psycopg://")
    ):
        raise typer.BadParameter(
            f"'{store}' is not sqlite:///FILE, postgresql://... or none", param_hint="'--store'"
        )
    issuers = _jwt_issuers(jwt_issuer or [])
    common.site_maps(codes)  # every problem of every map, before anything starts
    jku = _jwt_jku(jwt_jku or [])
    try:
        from ivig_cds.service import ServeOptions, run
        from ivig_cds.service.auth import check_issuer_keys
        from ivig_cds.service.server import ServiceStartError
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith(("ivig_cds.service", "fastapi", "uvicorn")):
            raise
        common.fail(
            f"the CDS Hooks service is not available in this installation "
            f"(module {exc.name} is missing)"
        )
    try:
        check_issuer_keys(issuers, jku)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--jwt-issuer'") from None
    try:
        run(
            ServeOptions(
                host=host,
                port=port,
                workers=workers,
                fhir_server=fhir_server,
                jwt_issuers=issuers,
                jwt_jku=jku,
                public_base_url=public_url,
                cors_origins=list(cors_origin or ["*"]),
                report_url=report_url,
                log_format=fmt,
                log_level=log_level.lower(),
                store=store,
                journal_dir=None if journal is None else str(journal),
                pseudonym_key_file=None if pseudonym_key_file is None else str(pseudonym_key_file),
                allow_key_in_work_tree=allow_key_in_work_tree,
                code_maps=[str(path) for path in codes or ()],
            )
        )
    except ServiceStartError as exc:
        common.fail(str(exc))


def _jwt_issuers(specs: list[str]) -> dict[str, str | dict[str, object]]:
    """Parse repeated ISSUER=KEYFILE options into the service's issuer-to-key mapping."""
    issuers: dict[str, str | dict[str, object]] = {}
    for spec in specs:
        issuer, sep, key_file = spec.rpartition("=")
        if not sep or not issuer or not key_file:
            raise typer.BadParameter(f"'{spec}' is not ISSUER=KEYFILE", param_hint="'--jwt-issuer'")
        path = Path(key_file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(
                f"cannot read key file '{key_file}': {getattr(exc, 'strerror', None) or exc}",
                param_hint="'--jwt-issuer'",
            ) from None
        if path.suffix == ".json":
            try:
                issuers[issuer] = json.loads(text)
            except json.JSONDecodeError as exc:
                raise typer.BadParameter(
                    f"'{key_file}' is not a JSON JWK Set ({exc.msg} at line {exc.lineno})",
                    param_hint="'--jwt-issuer'",
                ) from None
        else:
            issuers[issuer] = text
    return issuers


def _jwt_jku(specs: list[str]) -> dict[str, list[str]]:
    """Parse repeated ISSUER=URL options (the issuer is often a URL too: split before the
    URL's scheme)."""
    allowed: dict[str, list[str]] = {}
    for spec in specs:
        found = re.fullmatch(r"(.+?)=(https?://\S+)", spec)
        if found is None:
            raise typer.BadParameter(
                f"'{spec}' is not ISSUER=URL with an http(s) URL", param_hint="'--jwt-jku'"
            )
        allowed.setdefault(found[1], []).append(found[2])
    return allowed
