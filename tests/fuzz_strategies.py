"""Hypothesis strategies for bad input: junk values, junk keys, junk files, mutated patients.

The fuzz tests of the API, the command line and the knowledge-base loader share them, so that
"junk" means the same everywhere: wrong types, huge and NaN/infinite numbers, text with
surrogates and control characters, bytes, deep nesting, non-string and very long keys.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from ivig_cds import PatientContext
from tests.strategies import patients

FIELDS = tuple(PatientContext.model_fields)

# An integer too long for str() (Python refuses over 4,300 digits) and one merely very long.
HUGE_INT = 10**5000
BIG_INT = 2**200

_numbers = (
    st.integers()
    # built by map: hypothesis repr()s sampled values, and repr(HUGE_INT) raises
    | st.sampled_from([5000, -5000, 200, 63, -63]).map(
        lambda e: (10 if abs(e) > 4300 else 2) ** abs(e) * (1 if e > 0 else -1)
    )
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0, 1e308, 5e-324])
)
_texts = (
    st.text(max_size=40)
    # surrogates, control characters and the like: what a broken EHR export may send
    | st.text(
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])
        | st.characters(max_codepoint=0x1F)
        | st.characters(),
        max_size=20,
    )
    | st.sampled_from(["", " ", "\x00", "\ufeff", "RRMS\x00", "nan", "Infinity", ".inf", "true"])
    | st.integers(1, 5).map(lambda k: "x" * 10**k)  # up to 100,000 characters
)
_scalars = st.none() | st.booleans() | _numbers | _texts | st.binary(max_size=20)
_keys = (
    st.text(max_size=30)
    | st.sampled_from(FIELDS)
    | st.integers(1, 4).map(lambda k: "k" * 10**k)
    | st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.binary(max_size=8)
    | st.tuples(st.integers(), st.text(max_size=3))
    | st.frozensets(st.integers(), max_size=3)
)

junk: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.tuples(inner, inner)
        | st.dictionaries(_keys, inner, max_size=6)
    ),
    max_leaves=25,
)
"""Any Python value a caller might pass, valid or not, nested a few levels."""


def deeply_nested(depth: int, *, as_dict: bool) -> Any:
    """`[[[...]]]` or `{"a": {"a": ...}}`, `depth` levels deep, built without recursion."""
    value: Any = "bottom"
    for _ in range(depth):
        value = {"a": value} if as_dict else [value]
    return value


@st.composite
def mutated_patients(draw: st.DrawFn) -> dict[Any, Any]:
    """A valid patient with one field replaced by junk, one junk key added, or both."""
    patient: dict[Any, Any] = draw(patients())
    how = draw(st.sampled_from(["replace", "add", "both"]))
    if how in ("replace", "both"):
        patient[draw(st.sampled_from(FIELDS))] = draw(junk)
    if how in ("add", "both"):
        patient[draw(_keys)] = draw(junk)
    return patient


def _json_junk() -> st.SearchStrategy[Any]:
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(-(10**30), 10**30)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=30)
    )
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=5)
            | st.dictionaries(st.text(max_size=20) | st.sampled_from(FIELDS), inner, max_size=5)
        ),
        max_leaves=20,
    )


json_junk = _json_junk()
"""Any JSON-representable value (NaN and infinity included, as Python's json writes them)."""

# Lines of YAML that are valid on their own but wrong for a patient or a rule: constants
# (.nan, .inf), tags (safe, unsafe and mis-used), dates that do not exist, huge integers,
# anchors and aliases, merge keys, complex keys, flow collections, document markers.
YAML_SNIPPETS = (
    "edss: .nan",
    "edss: .inf",
    "edss: -.Inf",
    "edss: NaN",
    "edss: Infinity",
    "age_years: 0x" + "f" * 40,
    "age_years: " + "9" * 5000,
    "age_years: !!int 12x",
    "edss: !!float abc",
    "acute_relapse: !!bool maybe",
    "sex: !!timestamp yesterday",
    "sex: 2024-13-45",
    "sex: 2024-02-30",
    "patient_id: !!binary aGVsbG8=",
    "patient_id: !!python/object:os.system {}",
    "patient_id: !!python/name:os.system",
    "sex: !!set {a, b}",
    "sex: !!omap [a: 1]",
    "x: !!map [1]",
    "a: &anchor [lol, lol]",
    "b: *anchor",
    "<<: {sex: male}",
    "? [complex, key]\n: 1",
    "? {a: 1}\n: 2",
    "1: one",
    "null: nothing",
    "~: tilde",
    ".nan: key",
    "sex: female\nsex: male",
    "---",
    "...",
    "%YAML 1.1\n---",
    "%TAG ! tag:example.com,2000:\n---",
    "sex: 'unterminated",
    'sex: "\\ud800"',
    "sex: \t tab",
    "- a list item",
    "[flow, seq]",
    "{flow: map}",
    "key: |\n  literal\n  block",
    "\ufeffms_phenotype: RRMS",
)


@st.composite
def yaml_texts(draw: st.DrawFn) -> str:
    """A few YAML lines: pieces of a valid patient mixed with `YAML_SNIPPETS` and noise."""
    valid = draw(patients())
    lines = [f"{k}: {json.dumps(v)}" for k, v in valid.items()]
    extras = draw(
        st.lists(
            st.sampled_from(YAML_SNIPPETS) | st.text(st.characters(codec="utf-8"), max_size=30),
            min_size=1,
            max_size=4,
        )
    )
    for extra in extras:
        lines.insert(draw(st.integers(0, len(lines))), extra)
    return "\n".join(lines) + draw(st.sampled_from(["", "\n"]))


@st.composite
def mutated_bytes(draw: st.DrawFn, original: bytes) -> bytes:
    """`original` truncated, with bytes flipped, inserted or deleted."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
        at = draw(st.integers(0, len(data)))
        if op == "truncate":
            del data[at:]
        elif op == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif at < len(data):
            del data[at : at + draw(st.integers(1, 8))]
    return bytes(data)


def value_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a parsed JSON/YAML document, the root `()` first, for mutating one value."""
    found = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            found += value_paths(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found += value_paths(child, (*path, i))
    return found
