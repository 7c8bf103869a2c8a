"""The CDS Hooks 2.0 service: routes (`app`), JWT checks (`auth`), cards (`cards`), errors.

What the rest of the package may use from here. Names load on first use, so that the command
line can register the service's commands without importing FastAPI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ivig_cds.service.app import MAX_BODY_BYTES, create_app
    from ivig_cds.service.auth import IssuerKeys, JwtVerifier
    from ivig_cds.service.cards import EXTENSION_KEY, OVERRIDE_REASONS, OVERRIDE_SYSTEM, card_for
    from ivig_cds.service.catalog import SERVICES, Service
    from ivig_cds.service.errors import ApiError
    from ivig_cds.service.server import ServeOptions, run

_LAZY = {
    "MAX_BODY_BYTES": "app",
    "create_app": "app",
    "IssuerKeys": "auth",
    "JwtVerifier": "auth",
    "EXTENSION_KEY": "cards",
    "OVERRIDE_REASONS": "cards",
    "OVERRIDE_SYSTEM": "cards",
    "card_for": "cards",
    "SERVICES": "catalog",
    "Service": "catalog",
    "ApiError": "errors",
    "ServeOptions": "server",
    "run": "server",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"ivig_cds.service.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'ivig_cds.service' has no attribute {name!r}")


__all__ = [
    "EXTENSION_KEY",
    "MAX_BODY_BYTES",
    "OVERRIDE_REASONS",
    "OVERRIDE_SYSTEM",
    "SERVICES",
    "ApiError",
    "IssuerKeys",
    "JwtVerifier",
    "ServeOptions",
    "Service",
    "card_for",
    "create_app",
    "run",
]
