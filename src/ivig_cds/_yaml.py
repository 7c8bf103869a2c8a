"""Safe YAML reading that remembers where every value came from.

Knowledge files and patient files share it: safe loading only, duplicate keys and aliases
rejected (aliases enable "billion laughs" bombs and nothing here needs them), and a map from each
value's path to its line and column so that validation errors can point into the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from os import PathLike
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, SequenceNode

_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_BYTES = 1 << 20  # no legitimate rule, evidence or patient file comes near this

Path = tuple[str | int, ...]
Path_ = str | PathLike[str]


@dataclass(frozen=True, slots=True)
class YamlProblem(Exception):  # noqa: N818 (a fault in a user's file, reported, not a bug)
    """A file that is not acceptable YAML; `line`/`column` are 1-based when known."""

    message: str
    line: int | None = None
    column: int | None = None


@dataclass(frozen=True, slots=True)
class LocatedDocument:
    data: Any
    marks: dict[Path, tuple[int, int]]

    def locate(self, loc: tuple[int | str, ...]) -> tuple[int, int] | None:
        """Line and column of the deepest node on `loc` (parts unknown to the file are skipped)."""
        path: Path = ()
        best = self.marks.get(path)
        for part in loc:
            candidate = (*path, part)
            if candidate in self.marks:
                path = candidate
                best = self.marks[path]
        return best


class _StrictLoader(yaml.SafeLoader):
    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise YamlProblem(
                "YAML aliases (*name) are not allowed; write the value out", *_pos(mark)
            )
        return super().compose_node(parent, index)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        # PyYAML's scalar constructors raise plain exceptions for values that match a tag's
        # pattern but not its meaning (2024-13-01, an integer of 5,000 digits, `!!bool maybe`).
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise YamlProblem(_unreadable(node, exc), *_pos(node.start_mark)) from None

    def construct_scalar(self, node: Node) -> Any:
        # JSON writes a character beyond U+FFFF as an escaped surrogate pair ("\\ud83d\\ude00"),
        # which PyYAML decodes to two lone surrogates: join them into the character meant.
        value = super().construct_scalar(node)  # type: ignore[arg-type]
        if isinstance(value, str) and _SURROGATE.search(value):
            return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
        return value

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, MappingNode):  # e.g. `!!map [1]`: PyYAML says what is wrong
            return super().construct_mapping(node, deep=deep)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                raise YamlProblem(
                    "mapping keys must be plain scalars", *_pos(key_node.start_mark)
                ) from None
            if duplicate:
                raise YamlProblem(f"duplicate key {_short(key)}", *_pos(key_node.start_mark))
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_TAG_MEANINGS = {
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "true or false",
    "tag:yaml.org,2002:timestamp": "a date (year-month-day)",
}


def _unreadable(node: Node, exc: Exception) -> str:
    """Why a value that looks like an integer, date, ... cannot be one; never the value."""
    meaning = _TAG_MEANINGS.get(node.tag)
    if meaning is None:
        return f"invalid YAML: the value cannot be read as its tag '{shorten(node.tag)}'"
    if node.tag.endswith(":int") and "digits" in str(exc):
        return "invalid YAML: the integer has too many digits (at most 4300)"
    if node.tag.endswith(":timestamp") and isinstance(exc, ValueError):
        return f"invalid YAML: the value is not a valid date ({exc})"
    return f"invalid YAML: the value is not {meaning}"


def _short(value: object) -> str:
    return f"'{shorten(str(value))}'"


def shorten(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters for an error message (a key or value may be as long as
    the file that holds it), with control characters escaped so that it stays on one line."""
    if len(text) > limit:
        text = text[:limit] + "…"
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _pos(mark: Any) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def _walk(node: Node, path: Path, marks: dict[Path, tuple[int, int]]) -> None:
    """Record each value's position; a mapping entry is located at its key."""
    marks.setdefault(path, _pos(node.start_mark))
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            child = (*path, str(key_node.value))
            marks[child] = _pos(key_node.start_mark)
            _walk(value_node, child, marks)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), marks)


def read_limited(path: Path_, limit: int = MAX_BYTES) -> bytes:
    """The file's bytes, reading at most one byte past `limit` (a device or a huge file is
    refused by `parse_yaml`, not read whole into memory).

    Raises:
        OSError: the file cannot be read.
    """
    with open(path, "rb") as file:
        return file.read(limit + 1)


def parse_yaml(raw: bytes, *, max_bytes: int = MAX_BYTES) -> LocatedDocument:
    """Parse one YAML (or JSON) document.

    Args:
        raw: the file's bytes, UTF-8 (a byte-order mark is allowed).
        max_bytes: larger inputs are refused before parsing.

    Raises:
        YamlProblem: too large, not UTF-8, empty, several documents, or invalid YAML.
    """
    if len(raw) > max_bytes:
        raise YamlProblem(f"file is larger than {_size(max_bytes)}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlProblem(f"file is not UTF-8 text (bad byte at offset {exc.start})") from None
    loader: _StrictLoader | None = None
    try:
        loader = _StrictLoader(text)  # its reader refuses control characters right away
        node = loader.get_single_node()
        if node is None:
            raise YamlProblem("file is empty; expected a mapping")
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise _located(exc) from None
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        line, column = before.count("\n") + 1, len(before) - before.rfind("\n")
        raise YamlProblem(
            f"invalid YAML: control character #x{exc.character:04x} is not allowed in YAML text",
            line,
            column,
        ) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"invalid YAML: {exc}") from None
    except RecursionError:
        raise YamlProblem("invalid YAML: nesting is too deep") from None
    finally:
        if loader is not None:
            loader.dispose()
    marks: dict[Path, tuple[int, int]] = {}
    _walk(node, (), marks)
    return LocatedDocument(data, marks)


def node_positions(text: str) -> dict[Path, tuple[int, int]]:
    """Line and column of each value of a document read some other way (strict JSON, which is
    also YAML), for pointing validation errors into it; empty if YAML cannot follow it."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
    except (yaml.YAMLError, YamlProblem, RecursionError):
        return {}
    finally:
        loader.dispose()
    marks: dict[Path, tuple[int, int]] = {}
    if node is not None:
        _walk(node, (), marks)
    return marks


def _located(exc: yaml.MarkedYAMLError) -> YamlProblem:
    mark = exc.problem_mark or exc.context_mark
    where = _pos(mark) if mark else (None, None)
    if exc.problem == "but found another document":
        return YamlProblem(
            "the file holds more than one YAML document (each '---' starts one); "
            "expected exactly one",
            *where,
        )
    reason = exc.problem or exc.context or "invalid YAML"
    return YamlProblem(f"invalid YAML: {reason}", *where)


def _size(limit: int) -> str:
    return f"{limit // 1024} KiB" if limit >= 1024 else f"{limit} bytes"
