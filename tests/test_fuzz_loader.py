"""Fuzzing the knowledge-base loader: a broken file always gives a located KnowledgeBaseError.

A copy of the shipped `rules/` and `evidence/` has one file replaced by random bytes or odd
YAML, or one value of one file replaced by junk, a key deleted or a junk key added. Loading
either succeeds (the result compiles and evaluates, or names the question no rule settles) or
raises `KnowledgeBaseError` whose every issue names a file or folder, with line and column when
the YAML says where; `ivig-cds validate` exits 1 listing them. Never another exception, never
a hang.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from ivig_cds import Evaluator, KnowledgeBaseError, KnowledgeGapError, load_knowledge_base
from ivig_cds._yaml import MAX_BYTES
from ivig_cds.cli import app
from tests.fuzz_strategies import json_junk, mutated_bytes, value_paths, yaml_texts

REPO = Path(__file__).resolve().parents[1]
FILES = sorted(
    p.relative_to(REPO)
    for p in (*(REPO / "rules").rglob("*.yaml"), *(REPO / "evidence").glob("*.yaml"))
)
DOCUMENTS = {f: yaml.safe_load((REPO / f).read_text()) for f in FILES}

FUZZ = settings(
    max_examples=40,  # a load takes about 75 ms
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = settings(FUZZ, max_examples=2_000)


VALUE_PATHS = [(f, p) for f in FILES for p in value_paths(DOCUMENTS[f])[1:]]


@pytest.fixture(scope="module")
def kb_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the shipped knowledge base for the whole module; tests restore what they
    change."""
    root = tmp_path_factory.mktemp("fuzz-kb")
    shutil.copytree(REPO / "rules", root / "rules")
    shutil.copytree(REPO / "evidence", root / "evidence")
    return root


@contextmanager
def replaced(root: Path, relative: Path, raw: bytes) -> Iterator[Path]:
    target = root / relative
    target.write_bytes(raw)
    try:
        yield target
    finally:
        target.write_bytes((REPO / relative).read_bytes())


_ISSUE = re.compile(r"^(?P<path>/[^:]+?)(?::(?P<line>\d+):(?P<column>\d+))?: (?P<message>.+)$")


def load_outcome(root: Path, changed: Path) -> KnowledgeBaseError | None:
    """Load the copy: None if it loaded (and then it must compile and evaluate), else the error
    after checking that every issue is located and the changed file is among them."""
    try:
        kb = load_knowledge_base(root / "rules", root / "evidence")
    except KnowledgeBaseError as exc:
        assert exc.issues
        for issue in exc.issues:
            text = str(issue)
            assert "\n" not in text, text
            match = _ISSUE.match(text)
            assert match, text
            assert Path(match["path"]).is_relative_to(root), text
            assert (issue.line is None) == (issue.column is None)
        # The changed file is named, unless the damage only dropped the last citation of a work
        # (a deleted or replaced evidence id): then the work itself is reported, uncited.
        uncited = all("is cited by no rule" in issue.message for issue in exc.issues)
        assert uncited or any(issue.path == str(changed) for issue in exc.issues), exc
        return exc
    except Exception as exc:
        trace = "".join(traceback.format_exception(exc))
        pytest.fail(f"loading raised {type(exc).__name__}, not KnowledgeBaseError:\n{trace}")
    try:
        Evaluator(kb).evaluate({"ms_phenotype": "RRMS", "first_line_dmt": "not_tolerated"})
    except KnowledgeGapError as exc:
        # The damage left no conclusion for this patient (e.g. a value deleted from C02a's
        # `in` list): the designed, explicit answer of an incomplete knowledge base.
        assert str(exc).startswith("no rule of knowledge base"), exc
    return None


@FUZZ
@given(
    relative=st.sampled_from(FILES),
    raw=st.binary(max_size=300) | yaml_texts().map(lambda t: t.encode("utf-8", "surrogatepass")),
)
def test_a_file_replaced_by_junk_is_reported(kb_copy: Path, relative: Path, raw: bytes) -> None:
    """A rule, evidence or manifest file holding random bytes or odd YAML fails, located."""
    with replaced(kb_copy, relative, raw) as target:
        assert load_outcome(kb_copy, target) is not None


@FUZZ
@given(
    relative=st.sampled_from(FILES).flatmap(
        lambda f: st.tuples(st.just(f), mutated_bytes((REPO / f).read_bytes()))
    )
)
def test_a_file_with_bytes_damaged_is_reported_or_harmless(
    kb_copy: Path, relative: tuple[Path, bytes]
) -> None:
    """A shipped file truncated or with bytes flipped, inserted or deleted."""
    name, raw = relative
    with replaced(kb_copy, name, raw) as target:
        load_outcome(kb_copy, target)


def mutated(document: Any, path: tuple[Any, ...], how: str, junk: Any) -> Any:
    changed = copy.deepcopy(document)
    parent = changed
    for part in path[:-1]:
        parent = parent[part]
    if how == "replace":
        parent[path[-1]] = junk
    elif how == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[json.dumps(junk)[:40]] = junk
    else:
        parent.append(junk)
    return changed


@FUZZ
@given(
    where=st.sampled_from(VALUE_PATHS),
    how=st.sampled_from(["replace", "delete", "add"]),
    junk=json_junk,
)
def test_a_value_of_wrong_type_is_reported_at_its_line(
    kb_copy: Path, where: tuple[Path, tuple[Any, ...]], how: str, junk: Any
) -> None:
    """One value replaced by any JSON value, one key deleted, or a junk key or item added."""
    relative, path = where
    raw = json.dumps(mutated(DOCUMENTS[relative], path, how, junk), indent=1, default=str)
    raw_bytes = raw.encode()
    with replaced(kb_copy, relative, raw_bytes) as target:
        load_outcome(kb_copy, target)


@pytest.mark.slow
@SLOW
@given(
    where=st.sampled_from(VALUE_PATHS),
    damage=st.tuples(st.sampled_from(["replace", "delete", "add"]), json_junk)
    | st.binary(max_size=2000),
)
def test_loader_fuzz_at_length(
    kb_copy: Path, where: tuple[Path, tuple[Any, ...]], damage: tuple[str, Any] | bytes
) -> None:
    """Both kinds of damage at 2,000 examples (run with --slow)."""
    relative, path = where
    if isinstance(damage, bytes):
        raw = damage
    else:
        how, junk = damage
        raw = json.dumps(mutated(DOCUMENTS[relative], path, how, junk), default=str).encode()
    with replaced(kb_copy, relative, raw) as target:
        load_outcome(kb_copy, target)


# --- fixed cases: exact messages --------------------------------------------------------------

C05 = Path("rules/conclusions/C05-spms.yaml")
EVIDENCE = Path("evidence/pmid-15451222.yaml")


def issues_for(root: Path, relative: Path, raw: bytes) -> list[str]:
    with replaced(root, relative, raw) as target:
        error = load_outcome(root, target)
    assert error is not None
    prefix = f"{root / relative}"
    return [str(i).removeprefix(prefix) for i in error.issues if i.path == prefix]


def c05_with(old: str, new: str) -> bytes:
    text = (REPO / C05).read_text()
    assert old in text
    return text.replace(old, new, 1).encode()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", [": file is empty; expected a mapping"]),
        (b"\xef\xbb\xbf", [": file is empty; expected a mapping"]),
        (b"id: C05\xff\n", [": file is not UTF-8 text (bad byte at offset 7)"]),
        (b"- just\n- a list\n", [":1:1: expected a mapping at the top, got a list"]),
        (b"just text\n", [":1:1: expected a mapping at the top, got a str"]),
        (
            b'a: &a ["lol","lol"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b]\n',
            [":2:8: YAML aliases (*name) are not allowed; write the value out"],
        ),
        (
            b"id: C05\n---\nid: C06\n",
            [
                ":2:1: the file holds more than one YAML document (each '---' starts one); "
                "expected exactly one"
            ],
        ),
        (
            b"!!python/object/new:os.system [echo pwned]\n",
            [
                ":1:1: invalid YAML: could not determine a constructor for the tag "
                "'tag:yaml.org,2002:python/object/new:os.system'"
            ],
        ),
        (b"{" * 2_000, [": invalid YAML: nesting is too deep"]),
        (b"#" * (MAX_BYTES + 1), [": file is larger than 1024 KiB"]),
        (
            b"id: C05\ntitle: \x1b[31mred\n",
            [":2:8: invalid YAML: control character #x001b is not allowed in YAML text"],
        ),
        # these escaped the loader as ValueError, AttributeError or KeyError
        (
            c05_with("reviewed: ", "reviewed: 2024-02-30 #"),
            [":", "invalid YAML: the value is not a valid date (day is out of range for month)"],
        ),
        (
            c05_with("precedence: ", "precedence: " + "9" * 5000 + " #"),
            [":", "invalid YAML: the integer has too many digits (at most 4300)"],
        ),
    ],
)
def test_unreadable_files_are_located(kb_copy: Path, raw: bytes, expected: list[str]) -> None:
    """Each unreadable file gives exactly this issue, at its line and column when known."""
    found = issues_for(kb_copy, C05, raw)
    if expected[0] == ":":  # the position depends on the shipped file: check the message
        assert len(found) == 1 and found[0].endswith(f": {expected[1]}"), found
        assert re.match(r"^:\d+:\d+: ", found[0]), found
    else:
        assert found == expected


def test_huge_values_are_shortened_not_crashing(kb_copy: Path) -> None:
    """A 6,000-digit precedence (hex) crashed repr(); a megabyte title was quoted whole."""
    raw = c05_with("precedence: ", "precedence: 0x" + "f" * 5000 + " #")
    raw = raw.replace(b"\ntitle: ", b"\ntitle: " + b"x" * 200_000 + b" ", 1)
    found = issues_for(kb_copy, C05, raw)
    assert len(found) == 2, found
    assert any(
        f.endswith("precedence: Input should be less than or equal to 999; "
                   "got an integer of about 6020 digits")
        for f in found
    ), found  # fmt: skip
    [title] = [f for f in found if "title:" in f]
    assert len(title) < 400
    assert title.endswith("…")


def test_evidence_entry_with_junk_types_lists_every_field(kb_copy: Path) -> None:
    """Wrong types in several fields of one entry: one located issue per field, all reported."""
    document = copy.deepcopy(DOCUMENTS[EVIDENCE])
    document.update(year=float("nan"), n=float("inf"), authors="not a list", background="maybe")
    found = issues_for(kb_copy, EVIDENCE, yaml.safe_dump(document).encode())
    messages = sorted(re.sub(r"^:\d+:\d+: ", "", f) for f in found)
    assert messages == [
        "authors: Input should be a valid tuple; got 'not a list'",
        "background: Input should be a valid boolean, unable to interpret input; got 'maybe'",
        "n: Input should be a finite number; got inf",
        "year: Input should be a finite number; got nan",
    ]


def validate(kb_copy: Path) -> Result:
    args = ["validate", "--rules", str(kb_copy / "rules"), "--evidence", str(kb_copy / "evidence")]
    return CliRunner().invoke(app, args)


def test_validate_command_lists_issues_and_exits_1(kb_copy: Path) -> None:
    """`ivig-cds validate` on a broken copy: exit 1, the issue as path:line:column, and no
    knock-on errors (C05's evidence 'cited by no rule', K7's 'C05 is not a conclusion id')."""
    with replaced(kb_copy, C05, c05_with("reviewed: ", "reviewed: 2024-13-01 #")):
        result = validate(kb_copy)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: the knowledge base is invalid (1 error):\n")
    assert re.search(
        rf"^  {re.escape(str(kb_copy / C05))}:\d+:\d+: invalid YAML: the value is not a valid "
        r"date \(month must be in 1\.\.12\)$",
        result.stderr,
        re.MULTILINE,
    )


@settings(FUZZ, max_examples=15)
@given(relative=st.sampled_from(FILES), raw=st.binary(max_size=200))
def test_validate_command_never_shows_a_traceback(
    kb_copy: Path, relative: Path, raw: bytes
) -> None:
    """`ivig-cds validate` with one file of random bytes exits 1 naming that file."""
    with replaced(kb_copy, relative, raw) as target:
        result = validate(kb_copy)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.exit_code == 1
    assert f"  {target}" in result.stderr


def test_dropping_the_only_citation_of_a_work_names_the_work(kb_copy: Path) -> None:
    """A rule edited so that a work is cited by no rule: the work's file is named, located."""
    with replaced(kb_copy, C05, c05_with("  - pmid-16042226\n", "")) as target:
        error = load_outcome(kb_copy, target)
    assert error is not None
    assert [str(i).removeprefix(str(kb_copy)) for i in error.issues] == [
        "/evidence/pmid-16042226.yaml:1:1: id: evidence 'pmid-16042226' is cited by no rule; "
        "cite it or mark it 'background: true'"
    ]
