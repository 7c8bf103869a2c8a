"""`ivig-cds serve`: run the CDS Hooks service; FastAPI and uvicorn load only here."""

# ruff: noqa: PLC0415
# (the web service is imported inside the command, so other commands never load it)

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ivig_cds.cli import common

commands = typer.Typer()


@commands.command(cls=common.PlainHelpCommand)
def serve(
    host: Annotated[
        str, typer.Option(metavar="HOST", help="Interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(metavar="PORT", min=1, max=65535, help="TCP port, 1 to 65535.")
    ] = 8080,
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
    public_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="The service's external base URL, checked as the JWT audience behind a proxy.",
        ),
    ] = None,
) -> None:
    """Run the CDS Hooks 2.0 service (HTTP) on HOST:PORT until interrupted.

    Discovery is at GET /cds-services; hooks: patient-view, order-select, order-sign.
    """
    issuers = _jwt_issuers(jwt_issuer or [])
    try:
        from ivig_cds._service import run
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith(("ivig_cds._service", "fastapi", "uvicorn")):
            raise
        common.fail(
            f"the CDS Hooks service is not available in this installation "
            f"(module {exc.name} is missing)"
        )
    run(
        host=host,
        port=port,
        fhir_server=fhir_server,
        jwt_issuers=issuers or None,
        public_base_url=public_url,
    )


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
