"""Strict JSON: what `json.loads` accepts, minus NaN, Infinity and duplicate keys.

Patient files and batch lines share it. Python's reader would take `NaN` (which no rule can
compare) and keep the last of two equal keys (ambiguous input) without a word; both are refused
here. Problems carry a 1-based line and column when the text says where.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class JsonProblem(Exception):  # noqa: N818 (a fault in a user's input, reported, not a bug)
    """Why a text is not strict JSON; no part of the input beyond one key name is quoted."""

    message: str
    line: int | None = None
    column: int | None = None


class _Refused(Exception):  # noqa: N818 (internal: leaves json.loads through its hooks)
    def __init__(self, message: str, *, duplicate_key: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.duplicate_key = duplicate_key


def _no_constant(name: str) -> object:
    raise _Refused(f"{name} is not allowed: JSON has no NaN or infinity", duplicate_key=None)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                shown = repr(key[:60] + "…") if len(key) > 60 else repr(key)
                raise _Refused(f"key {shown} appears more than once", duplicate_key=key)
            seen.add(key)
    return obj


def loads_strict(text: str) -> Any:
    """Parse `text` as strict JSON.

    Raises:
        JsonProblem: a syntax error (with its line and column), NaN or Infinity, a key given
            twice in one object, or nesting too deep for Python's reader.
    """
    try:
        return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise JsonProblem(exc.msg, exc.lineno, exc.colno) from None
    except _Refused as exc:
        raise JsonProblem(
            exc.message, *_refused_at(text, duplicate_key=exc.duplicate_key)
        ) from None
    except RecursionError:
        raise JsonProblem("nesting is too deep") from None


# Strings (with a following colon when they are keys), brackets, and the refused constants; a
# string is consumed whole, so "NaN" inside one is never taken for the constant.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"(?:\s*:)?|[{}\[\]]|-?Infinity|NaN')


def _refused_at(text: str, *, duplicate_key: str | None) -> tuple[int | None, int | None]:
    """Line and column of the first NaN/Infinity, or of the second `duplicate_key` in an object.

    The text is valid JSON up to that point (the reader got there), so a scan of its tokens
    finds it without parsing again.
    """
    keys: list[set[str]] = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in ("{", "["):
            keys.append(set())
        elif token in ("}", "]"):
            if keys:
                keys.pop()
        elif not token.startswith('"'):
            if duplicate_key is None:
                return _position(text, match.start())
        elif duplicate_key is not None and token.endswith(":") and keys:
            key = json.loads(token[:-1])
            if key == duplicate_key and key in keys[-1]:
                return _position(text, match.start())
            keys[-1].add(key)
    return None, None


def _position(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n") + 1, offset - before.rfind("\n")
