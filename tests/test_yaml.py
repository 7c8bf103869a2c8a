"""Safe YAML reading: positions kept, dangerous or ambiguous documents refused."""

from __future__ import annotations

import pytest

from ivig_cds._yaml import MAX_BYTES, YamlProblem, parse_yaml


def test_positions_are_kept_for_keys_and_items() -> None:
    """Each mapping entry is located at its key, each list item at itself (1-based)."""
    doc = parse_yaml(b"a: 1\nb:\n  c: [1, 2]\n")
    assert doc.data == {"a": 1, "b": {"c": [1, 2]}}
    assert doc.locate(("b", "c", 1)) == (3, 10)
    assert doc.locate(("b", "nope")) == (2, 1)


@pytest.mark.parametrize(
    ("raw", "message", "line"),
    [
        (b"a: 1\na: 2\n", "duplicate key 'a'", 2),
        (b"a: &x [1]\nb: *x\n", "YAML aliases (*name) are not allowed; write the value out", 2),
        (b"", "file is empty; expected a mapping", None),
        (b"\xff\xfe", "file is not UTF-8 text (bad byte at offset 0)", None),
        (
            b"- 1\n---\n- 2\n",
            "the file holds more than one YAML document (each '---' starts one); "
            "expected exactly one",
            2,
        ),
        (
            b"!!python/object:os.system {}\n",
            "invalid YAML: could not determine a constructor "
            "for the tag 'tag:yaml.org,2002:python/object:os.system'",
            1,
        ),
    ],
)
def test_bad_documents_are_refused(raw: bytes, message: str, line: int | None) -> None:
    """Duplicates, aliases, empty, non-UTF-8, multi-document and unsafe tags are refused."""
    with pytest.raises(YamlProblem) as caught:
        parse_yaml(raw)
    assert (caught.value.message, caught.value.line) == (message, line)


def test_billion_laughs_is_refused_quickly() -> None:
    """An alias bomb fails at its first alias instead of expanding."""
    bomb = b'a: &a ["lol","lol"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b]\n'
    with pytest.raises(YamlProblem, match="aliases"):
        parse_yaml(bomb)


def test_oversized_file_is_refused() -> None:
    """Files over the size limit are not parsed at all."""
    with pytest.raises(YamlProblem, match="larger than 1024 KiB"):
        parse_yaml(b"#" * (MAX_BYTES + 1))


def test_deep_nesting_is_refused_not_crashing() -> None:
    """Pathologically deep nesting gives a clear error, not a RecursionError."""
    with pytest.raises(YamlProblem, match="invalid YAML"):
        parse_yaml(b"[" * 100_000 + b"]" * 100_000)


def test_json_is_read_too() -> None:
    """JSON patient files go through the same reader."""
    assert parse_yaml(b'{"ms_phenotype": "RRMS", "edss": 2.5}').data == {
        "ms_phenotype": "RRMS",
        "edss": 2.5,
    }
