"""One structured log line per request, and nothing clinical in it.

The handler puts what it may tell into `scope["state"]["log"]` (endpoint, service, hook,
hookInstance, card tiers); this middleware adds method, status and latency and writes the line.
Patient ids, prefetch contents, request bodies and error details never reach the log.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any, Literal

from ivig_cds.service.middleware import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "LOGGER_NAME",
    "RequestLog",
    "configure_logging",
    "log_event",
    "log_fields",
    "log_warning",
]

LOGGER_NAME = "ivig_cds.service"
LogFormat = Literal["json", "text"]
_logger = logging.getLogger(LOGGER_NAME)


class RequestLog:
    """Write one line per HTTP request to the `ivig_cds.service` logger at INFO."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        fields: dict[str, Any] = {}
        scope.setdefault("state", {})["log"] = fields

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            line = {
                "event": "request",
                "method": scope.get("method"),
                "endpoint": fields.pop(
                    "endpoint", "preflight" if scope.get("method") == "OPTIONS" else "other"
                ),
                **({"target": preflight_target(scope)} if scope.get("method") == "OPTIONS" else {}),
                **fields,
                "status": status,
                "latencyMs": round((time.perf_counter() - started) * 1000, 2),
            }
            _logger.info("request", extra={"fields": line})


def preflight_target(scope: Scope) -> str:
    """What a CORS preflight asked about (discovery, a service id, or its feedback), so that a
    refused browser call can be traced; the path names no patient."""
    parts = str(scope.get("path", "")).strip("/").split("/")
    if parts[:1] != ["cds-services"]:
        return "other"
    if len(parts) == 1:
        return "discovery"
    if len(parts) == 3 and parts[2] == "feedback":
        return f"{parts[1][:64]}/feedback"
    return parts[1][:64] if len(parts) == 2 else "other"


def log_fields(state: MutableMapping[str, Any]) -> dict[str, Any]:
    """The mutable dict a handler fills for the request's log line (a throwaway when off)."""
    fields = state.get("log")
    return fields if isinstance(fields, dict) else {}


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
        }
        fields = getattr(record, "fields", None)
        payload.update(fields if isinstance(fields, dict) else {"message": record.getMessage()})
        return json.dumps(payload, separators=(",", ":"))


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        when = self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z")
        if not isinstance(fields, dict):
            return f"{when} {record.levelname.lower()} {record.getMessage()}"
        text = " ".join(f"{k}={_text(v)}" for k, v in fields.items())
        return f"{when} {record.levelname.lower()} {text}"


def _text(value: object) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)


def configure_logging(log_format: LogFormat = "text", level: str = "info") -> None:
    """Send the service's log lines to stderr in `log_format` at `level` (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if log_format == "json" else _TextFormatter())
    _logger.handlers[:] = [handler]
    _logger.setLevel(level.upper())
    _logger.propagate = False


def log_event(event: str, **fields: Any) -> None:
    """A non-request line (start-up, store state changes), in the same format."""
    _logger.info(event, extra={"fields": {"event": event, **fields}})


def log_warning(event: str, **fields: Any) -> None:
    _logger.warning(event, extra={"fields": {"event": event, **fields}})
