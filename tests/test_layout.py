"""Terminal layout (cli/layout.py): tables that give way column by column, and lines that wrap
under their own indentation, checked at 80 columns in a real pseudo-terminal."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text
from typer.testing import CliRunner

from ivig_cds.cli import app
from ivig_cds.cli.layout import Column, Hanging, cut_cell, fit, hanging_indent, unique_width

REPO = Path(__file__).resolve().parents[1]
WIDTH = 80
_ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


def at_a_terminal(*args: str, width: int = WIDTH, code: int = 0) -> list[str]:
    """The lines `ivig-cds ARGS` prints to a terminal `width` columns wide (standard error is a
    pipe, so no progress bar), after checking its exit code."""
    main, child = pty.openpty()
    env = {**os.environ, "COLUMNS": str(width), "LINES": "50", "NO_COLOR": "1", "TERM": "xterm"}
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "ivig_cds", *args],
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=env,
    )
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal closed when the process ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err.decode()
    text = _ANSI.sub("", b"".join(chunks).decode("utf-8")).replace("\r", "")
    return text.splitlines()


@pytest.fixture(scope="module")
def example_table() -> list[str]:
    return at_a_terminal("evaluate", "examples/")


def test_the_example_table_fits_80_columns(example_table: list[str]) -> None:
    """`evaluate examples/` at 80 columns: no line is longer, one line per patient file."""
    files = sorted(p.name for p in (REPO / "examples").glob("*.yaml"))
    assert all(len(line) <= WIDTH for line in example_table), max(example_table, key=len)
    assert example_table[0].split() == ["file", "tier", "question", "rule"]
    assert len(example_table) == 1 + len(files) + 3  # header, rows, footnote (2 lines)


def test_every_file_in_the_example_table_is_told_apart(example_table: list[str]) -> None:
    """Cut file names stay distinct, and each is the start of its own file's name, in order."""
    files = sorted(p.name for p in (REPO / "examples").glob("*.yaml"))
    shown = [line.split("  ")[0] for line in example_table[1 : 1 + len(files)]]
    assert len(set(shown)) == len(files)
    for cell, name in zip(shown, files, strict=True):
        assert cell == name or (cell.endswith("…") and name.startswith(cell[:-1])), cell
    assert min(len(cell) for cell in shown if cell.endswith("…")) >= 24  # cut, still readable


def test_the_example_table_says_what_it_shortened_and_left_out(example_table: list[str]) -> None:
    """The tier labels lose their years for a footnote; the columns left out are named, with
    where to see them, wrapped under their own indentation."""
    rows = "\n".join(example_table)
    assert "  Second-line option*  " in rows and "(2002-2008 evidence)" not in rows
    assert example_table[-3:] == [
        "* based on 2002-2008 evidence",
        "Not shown at this width: key citation, missing data; --format text shows every",
        "  result.",
    ]


def test_files_of_two_folders_and_their_errors_fit_80_columns() -> None:
    """Paths with their folders, and an invalid file's error in place of its question: the
    error is cut to the width of the longest question, the paths only as far as they stay
    apart."""
    lines = at_a_terminal("evaluate", "examples/", "examples/invalid/", code=1)
    assert all(len(line) <= WIDTH for line in lines), max(lines, key=len)
    rows = lines[1:-3]
    invalid = sorted((REPO / "examples" / "invalid").iterdir())
    assert len(rows) == len(list((REPO / "examples").glob("*.yaml"))) + len(invalid)
    assert len({row.split("  ")[0] for row in rows}) == len(rows)
    assert rows[-len(invalid)].split() == [
        "examples/invalid/edss-11.yaml", "error", "is", "not", "a", "valid", "pat…", "-"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "header"),
    [
        (["rules"], ["id", "tier", "certainty", "title"]),
        (["evidence"], ["id", "year", "n", "title"]),
        (["rules", "windows"], ["window", "weeks", "reason"]),
    ],
)
def test_listings_fit_80_columns_and_wrap_titles_under_themselves(
    args: list[str], header: list[str]
) -> None:
    """The listings drop columns rather than squeeze the title into a sliver: each line fits,
    and a wrapped title or reason continues under its own column."""
    lines = at_a_terminal(*args)
    assert all(len(line) <= WIDTH for line in lines), max(lines, key=len)
    assert lines[0].split() == header
    start = lines[0].index(header[-1])
    assert start <= WIDTH - 36
    table = [line for line in lines if not line.startswith(("Not shown", "  column."))]
    continued = [line for line in table[1:] if line.startswith(" ")]
    assert continued
    assert all(line[:start].strip() == "" and line[start] != " " for line in continued)
    if args != ["rules", "windows"]:
        assert lines[-2].startswith("Not shown at this width: ")
        assert lines[-1] == "  column."  # "...; --format json shows every column."


@pytest.mark.parametrize(
    "args",
    [
        ["evaluate", "--format", "text", "examples/c02a-rrms-interferon-intolerant.yaml"],
        ["evaluate", "--format", "text", "examples/k1-spms-immobile-thromboembolic-risk.yaml"],
        ["rules", "show", "C02a"],
        ["evidence", "show", "pmid-15451222"],
    ],
)
def test_full_text_keeps_its_indentation_when_it_wraps(args: list[str]) -> None:
    """At 80 columns each line of the piped output is printed whole or wrapped, every piece
    within the width, each continuation starting under the text of its line (after its
    indentation and any "- " or "! " marker), never at the margin."""
    whole = subprocess.run(
        [sys.executable, "-m", "ivig_cds", *args],
        capture_output=True, text=True, cwd=REPO, check=True,
    ).stdout.splitlines()  # fmt: skip
    shown = at_a_terminal(*args)
    assert all(len(line) <= WIDTH for line in shown), max(shown, key=len)
    at = 0
    wrapped = 0
    for line in whole:
        pieces = [shown[at]]
        at += 1
        while _letters(" ".join(pieces)) != _letters(line):
            assert len(_letters(" ".join(pieces))) < len(_letters(line)), (line, pieces)
            indent, piece = hanging_indent(line), shown[at]
            assert piece.startswith(" " * indent) and piece[indent] != " ", (line, piece)
            pieces.append(piece)
            at += 1
        wrapped += len(pieces) > 1
    assert at == len(shown)
    assert wrapped > 3


def _letters(text: str) -> str:
    return "".join(text.split())


def test_a_line_wraps_under_its_marker() -> None:
    """A list item continues under its text; a field line two spaces in; no trailing spaces."""
    out = io.StringIO()
    console = Console(file=out, width=30, color_system=None)
    console.print(Hanging(Text("  ! K6 Later evidence: trials did not confirm the benefit")))
    console.print(Hanging(Text("Decided by: C02a (MS course: RRMS; first line not tolerated)")))
    console.print(Hanging(Text("    - a question that needs more than one line")))
    assert out.getvalue() == (
        "  ! K6 Later evidence: trials\n"
        "    did not confirm the\n"
        "    benefit\n"
        "Decided by: C02a (MS course:\n"
        "  RRMS; first line not\n"
        "  tolerated)\n"
        "    - a question that needs\n"
        "      more than one line\n"
    )


def test_a_pipe_gets_each_line_whole() -> None:
    """In soft-wrap mode (a pipe) nothing is wrapped, however narrow the console."""
    out = io.StringIO()
    Console(file=out, width=20, soft_wrap=True).print(Hanging(Text("  - " + "word " * 20)))
    assert out.getvalue() == "  - " + "word " * 20 + "\n"


def test_unique_width_keeps_every_cell_apart() -> None:
    """The narrowest cut at which two names sharing a long start still read differently."""
    names = ["c02a-rrms-injections-declined.yaml", "c02a-rrms-interferon-intolerant.yaml", "c05"]
    width = unique_width(names)
    assert width == 14
    assert len({cut_cell(n, width) for n in names}) == 3
    assert len({cut_cell(n, width - 1) for n in names}) == 2
    assert unique_width(["same", "same"]) == 1


def test_fit_gives_way_in_order() -> None:
    """Cut columns first, then dropped columns by rank, then short forms, then unique columns
    below their usual cut."""
    columns = [
        Column("name", cut=10, unique=True),
        Column("label", short=lambda s: "Long*" if s.startswith("Long") else s, footnote="* short"),
        Column("extra", drop=1),
    ]
    rows = [["alpha-one-two-three", "Long label words", "x" * 20], ["beta", "Short", "y"]]
    assert fit(columns, rows, 80).shown == (0, 1, 2)
    narrow = fit(columns, rows, 40, more="see json")
    assert (narrow.shown, narrow.widths) == ((0, 1), (19, 16))
    assert narrow.notes == ("Not shown at this width: extra; see json.",)
    shorter = fit(columns, rows, 22)
    assert shorter.rows == (("alpha-one-two-three", "Long*"), ("beta", "Short"))
    assert shorter.widths == (15, 5)
    assert shorter.notes == ("* short", "Not shown at this width: extra.")
    hard = fit(columns, rows, 9)
    assert hard.widths == (4, 5)  # as narrow as its header, and over the width: no fit


@pytest.mark.parametrize(
    "command",
    [
        ["evaluate"],
        ["batch"],
        ["rules"],
        ["rules", "show"],
        ["evidence"],
        ["validate"],
        ["trace"],
        ["schema"],
        ["report"],
    ],
)
def test_help_fits_80_columns(monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    """Help is wrapped to the terminal, and the blocks printed as written (tiers, examples,
    output records) are written to fit 80 columns."""
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert max(len(line) for line in result.stdout.splitlines()) <= WIDTH
