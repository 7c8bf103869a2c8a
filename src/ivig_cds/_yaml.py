"""Safe YAML reading that remembers where every value came from.

Knowledge files and patient files share it: safe loading only, duplicate keys and aliases
rejected (aliases enable "billion laughs" bombs and nothing here needs them), and a map from each
value's path to its line and column so that validation errors can point into the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, SequenceNode

MAX_BYTES = 1 << 20  # no legitimate rule, evidence or patient file comes near this

Path = tuple[str | int, ...]


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

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
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
                raise YamlProblem(f"duplicate key '{key}'", *_pos(key_node.start_mark))
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


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


def parse_yaml(raw: bytes) -> LocatedDocument:
    """Parse one YAML (or JSON) document.

    Raises:
        YamlProblem: too large, not UTF-8, empty, several documents, or invalid YAML.
    """
    if len(raw) > MAX_BYTES:
        raise YamlProblem(f"file is larger than {MAX_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlProblem(f"file is not UTF-8 text (bad byte at offset {exc.start})") from None
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise YamlProblem("file is empty; expected a mapping")
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = exc.problem or exc.context or "invalid YAML"
        where = _pos(mark) if mark else (None, None)
        raise YamlProblem(f"invalid YAML: {reason}", *where) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"invalid YAML: {exc}") from None
    except RecursionError:
        raise YamlProblem("invalid YAML: nesting is too deep") from None
    finally:
        loader.dispose()
    marks: dict[Path, tuple[int, int]] = {}
    _walk(node, (), marks)
    return LocatedDocument(data, marks)
