"""How the service refuses a request: one exception, answered as a small JSON object.

    ApiError(status, message, problems)  ->  {"error": message, "problems": [...]}

Every error leaves as JSON with its 4xx/5xx status; no stack trace and no patient data leave
the service. The JWT verifier raises it too, so it lives below both the app and auth.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["ApiError", "install_error_handlers", "read_json", "validated"]


class ApiError(Exception):
    """An error answered as JSON with `status`; `problems` never quote patient data."""

    def __init__(
        self,
        status: int,
        message: str,
        problems: Sequence[str] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = list(problems)
        self.headers = headers


def install_error_handlers(app: FastAPI) -> None:
    """Answer every failure, expected or not, as `{"error": ...}` JSON."""

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        content: dict[str, Any] = {"error": exc.message}
        if exc.problems:
            content["problems"] = exc.problems
        return JSONResponse(content, status_code=exc.status, headers=exc.headers)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        message = {404: "no such endpoint", 405: "method not allowed"}.get(exc.status_code)
        return JSONResponse(
            {"error": message or str(exc.detail)},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "invalid request"}, status_code=400)

    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "internal error; the request was not evaluated"}, 500)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, internal_error)


async def read_json(request: Request) -> Any:
    """The request body as JSON, or a 415/400 ApiError saying what is wrong with it."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, "send the request as application/json")
    raw = await request.body()
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        where = f" (line {exc.lineno}, column {exc.colno})"
        raise ApiError(400, f"the request body is not valid JSON{where}") from None
    except UnicodeDecodeError:
        raise ApiError(400, "the request body is not UTF-8 JSON") from None


_M = TypeVar("_M", bound=BaseModel)


def validated(model: type[_M], data: object) -> _M:
    """`data` parsed as `model`, or a 400 naming each bad field (never its value)."""
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)[:10]
        ]
        raise ApiError(
            400, "the request does not follow the CDS Hooks 2.0 shape", problems
        ) from None
