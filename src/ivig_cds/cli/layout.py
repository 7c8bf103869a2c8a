"""Text that fits the terminal: lines that wrap under their own indentation, and tables that
give way column by column instead of spilling over.

At a terminal every line stays within the console's width (80 columns included). A pipe gets
each line whole: `Hanging` prints one line in rich's soft-wrap mode, and tables are printed
tab-separated by `common.table` before they get here.
"""

# ruff: noqa: PLC0415
# (rich loads only when something is printed: `common` imports `Column` at start-up)

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.text import Text

_MARKERS = ("- ", "! ")
SEPARATOR = 2  # spaces between table columns


class Hanging:
    """One line of text that wraps with its continuation lines indented.

    By default the continuation lines start under the text after the line's leading spaces and
    its list marker (`- ` or `! `), or two spaces in for a line that starts at the margin.
    """

    def __init__(self, text: Text, hang: int | None = None) -> None:
        self.text = text
        self.hang = hanging_indent(text.plain) if hang is None else hang

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.text import Text

        if options.no_wrap:  # soft wrap: a pipe, or a caller who wants the line whole
            yield self.text
            return
        width = options.max_width
        plain = self.text.plain
        first = len(plain) - len(plain.lstrip(" "))
        body = self.text[first:]
        lines = body.wrap(console, max(width - first, 1), overflow="fold")
        rest = body[len(lines[0].plain) :]
        head = lines[0]
        head.rstrip()
        yield Text.assemble(" " * first, head)
        rest = rest[len(rest.plain) - len(rest.plain.lstrip()) :]
        if not rest.plain:
            return
        hang = min(self.hang, max(width // 2, 1))
        for line in rest.wrap(console, max(width - hang, 1), overflow="fold"):
            line.rstrip()
            yield Text.assemble(" " * hang, line)


def hanging_indent(line: str) -> int:
    """Where a wrapped line continues: after its indentation and list marker, at least 2."""
    indent = len(line) - len(line.lstrip(" "))
    if line[indent : indent + 2] in _MARKERS:
        indent += 2
    return max(indent, 2)


# --- tables ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    """How a table column gives way on a narrow terminal (by default it never does).

    Attributes:
        header: its heading.
        cut: cells may be cut with an ellipsis down to this width (the right-most such column
            gives way first).
        unique: never cut so far that two different cells read the same (file names), even
            below `cut` when nothing else helps.
        drop: may be left out when the rest does not fit, the lowest number first; the table
            says which columns it left out.
        wrap: the last column: cells wrap within it, at least this wide, their continuation
            lines starting under the column.
        short: a shorter form of a cell, used when the table does not fit otherwise.
        footnote: printed under the table when `short` changed a cell.
    """

    header: str
    cut: int | None = None
    unique: bool = False
    drop: int | None = None
    wrap: int | None = None
    short: Callable[[str], str] | None = None
    footnote: str = ""


@dataclass(frozen=True, slots=True)
class Layout:
    """The columns a table shows at a width, how wide each is, and what it says below."""

    shown: tuple[int, ...]
    widths: tuple[int, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...]


def fit(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int, *, more: str = ""
) -> Layout:
    """The layout of `rows` under `columns` within `width`, giving way step by step: cut
    columns down to their `cut` width, leave out droppable columns (lowest `drop` first), use
    the short forms, then cut unique columns to the narrowest width that keeps their cells
    apart. If even that does not fit, the last layout is used, with lines longer than `width`.

    Args:
        columns: the columns, in order; only the last may `wrap`.
        rows: one sequence of cells per row, one cell per column.
        width: the console's width.
        more: what to do to see the columns left out ("--format json shows them").
    """
    original = [tuple(row) for row in rows]
    shorter = [
        tuple(c.short(cell) if c.short else cell for c, cell in zip(columns, row, strict=True))
        for row in original
    ]
    droppable = [i for _, i in sorted((c.drop, i) for i, c in enumerate(columns) if c.drop)]
    attempts = [(droppable[:n], False, False) for n in range(len(droppable) + 1)]
    if shorter != original:
        attempts.append((droppable, True, False))
    attempts.append((droppable, shorter != original, True))
    for dropped, short, hard in attempts:
        cells = shorter if short else original
        shown = [i for i in range(len(columns)) if i not in dropped]
        widths = _widths(columns, cells, shown, width, hard=hard)
        if widths is not None:
            break
    else:
        widths = _widths(columns, cells, shown, width, hard=True, force=True)
    assert widths is not None
    return _layout(columns, original, cells, shown=shown, widths=widths, dropped=dropped, more=more)


def _layout(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    cells: Sequence[Sequence[str]],
    *,
    shown: list[int],
    widths: list[int],
    dropped: list[int],
    more: str,
) -> Layout:
    changed = {
        i
        for row, short in zip(rows, cells, strict=True)
        for i, (a, b) in enumerate(zip(row, short, strict=True))
        if a != b and i in shown
    }
    notes = [columns[i].footnote for i in sorted(changed) if columns[i].footnote]
    if dropped:
        names = ", ".join(columns[i].header for i in sorted(dropped))
        notes.append(f"Not shown at this width: {names}{f'; {more}' if more else ''}.")
    return Layout(
        shown=tuple(shown),
        widths=tuple(widths[i] for i in shown),
        rows=tuple(tuple(row[i] for i in shown) for row in cells),
        notes=tuple(notes),
    )


def _widths(
    columns: Sequence[Column],
    cells: Sequence[Sequence[str]],
    shown: list[int],
    total: int,
    *,
    hard: bool,
    force: bool = False,
) -> list[int] | None:
    """Column widths (all columns, shown or not) within `total`, or None if they cannot fit."""
    natural = [max([len(c.header)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    floors = [
        _floor(c, [row[i] for row in cells], natural[i], hard=hard) for i, c in enumerate(columns)
    ]
    widths = list(natural)
    wrap = [i for i in shown if columns[i].wrap is not None]
    for i in wrap:
        widths[i] = min(natural[i], columns[i].wrap or natural[i])
    excess = sum(widths[i] for i in shown) + SEPARATOR * (len(shown) - 1) - total
    for i in reversed(shown):  # the right-most column gives way first
        if excess <= 0:
            break
        if columns[i].wrap is None:
            give = min(excess, widths[i] - floors[i])
            widths[i] -= give
            excess -= give
    if excess > 0 and not force:
        return None
    for i in wrap:  # what is left goes to the wrapping column
        widths[i] = min(natural[i], widths[i] - excess) if excess < 0 else widths[i]
    return widths


def _floor(column: Column, cells: Sequence[str], natural: int, *, hard: bool) -> int:
    """How narrow a column may get: its `cut` (or never narrower than its cells), and for a
    unique column, at a last resort, the narrowest width that keeps its cells apart."""
    if column.cut is None and not (hard and column.unique):
        return natural
    floor = min(column.cut or natural, natural)
    if column.unique:
        apart = unique_width(cells)
        floor = apart if hard else max(floor, apart)
    return max(floor, len(column.header), 1)


def unique_width(cells: Iterable[str]) -> int:
    """The narrowest width at which cut cells (`cut_cell`) still tell the cells apart."""
    distinct = sorted(set(cells))
    if len(distinct) < 2:
        return 1  # nothing to tell apart
    low, high = 2, max(len(c) for c in distinct)
    while low < high:
        mid = (low + high) // 2
        if len({cut_cell(c, mid) for c in distinct}) == len(distinct):
            high = mid
        else:
            low = mid + 1
    return high


def cut_cell(cell: str, width: int) -> str:
    """The cell within `width` characters: whole, or cut with an ellipsis."""
    return cell if len(cell) <= width else cell[: max(width - 1, 0)] + "…"


def render_rows(columns: Sequence[Column], layout: Layout) -> list[Text]:
    """The header and the rows as lines; a wrapping last column continues under itself."""
    from rich.text import Text

    lines = []
    headers = tuple(columns[i].header for i in layout.shown)
    for n, row in enumerate((headers, *layout.rows)):
        pieces = []
        wrapped: list[str] = []
        for k, (cell, width) in enumerate(zip(row, layout.widths, strict=True)):
            last = k == len(row) - 1
            shown = cell
            if columns[layout.shown[k]].wrap is not None and n > 0:
                wrapped = textwrap.wrap(cell, width, break_on_hyphens=False) or [""]
                shown = wrapped[0]
            text = cut_cell(shown, width)
            pieces.append(text if last else text.ljust(width))
        style = "bold" if n == 0 else ""
        lines.append(Text((" " * SEPARATOR).join(pieces).rstrip(), style=style))
        start = sum(layout.widths[:-1]) + SEPARATOR * (len(layout.widths) - 1)
        lines += [Text(" " * start + more) for more in wrapped[1:]]
    return lines
