"""The population audit's shortcuts change nothing: with each one on, the output files are
byte-identical to those of the plain path (every shortcut off) on a generated export."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from fhir.resources.R4B.condition import Condition

from ivig_cds.fhir import CONCEPT_SYSTEM, _projection, default_code_tables, load_site_maps
from ivig_cds.population import _audit, run_population
from tests.bulk_export import generate

OUTPUTS = ("results.ndjson", "errors.ndjson", "summary.json")


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bulk") / "export"
    generate(folder, 400, malformed_every=7)
    return folder


def _audit_files(export: Path, out: Path) -> dict[str, bytes]:
    _audit._judged.clear()
    run_population(export, out)
    return {name: (out / name).read_bytes() for name in OUTPUTS}


@pytest.fixture(scope="module")
def plain(export: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_audit, "JUDGED_CACHE", 0)
        patch.setattr(_projection, "STAND_IN_TEMPLATE", False)
        patch.setattr(_projection, "CODING_MEMO", 0)
        return _audit_files(export, tmp_path_factory.mktemp("plain"))


def test_judging_each_context_once_writes_the_same_files(
    export: Path, plain: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_audit, "JUDGED_CACHE", 16)  # small: evictions happen too
    assert _audit_files(export, tmp_path) == plain
    assert 0 < len(_audit._judged) <= 16


def test_the_judgement_cache_hits_and_copies(
    export: Path, plain: dict[str, bytes], tmp_path: Path
) -> None:
    """The default cache: many patients and doses share a context; a judgement handed out
    is a copy, so nothing that changes one result line can change another."""
    assert _audit_files(export, tmp_path) == plain
    results = plain["results.ndjson"].count(b"\n")
    assert len(_audit._judged) < results  # fewer distinct contexts than patients judged


def test_stand_ins_copied_from_a_template_write_the_same_files(
    export: Path, plain: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_audit, "JUDGED_CACHE", 0)
    assert _projection.STAND_IN_TEMPLATE
    assert _audit_files(export, tmp_path) == plain


def test_a_stand_in_equals_one_built_afresh() -> None:
    for rid in ("c-1", None):
        copied = _projection.stand_in(rid)
        built = Condition.model_construct(id=rid)  # type: ignore[call-arg]
        assert copied == built
        assert copied.model_fields_set == built.model_fields_set == {"id"}
        assert copied is not _projection.stand_in(rid)


def test_remembering_which_codings_are_read_writes_the_same_files(
    export: Path, plain: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_audit, "JUDGED_CACHE", 0)
    monkeypatch.setattr(_projection, "STAND_IN_TEMPLATE", False)
    monkeypatch.setattr(_projection, "CODING_MEMO", 50)  # small: forgotten and relearnt
    _projection._MEMOS.clear()
    assert _audit_files(export, tmp_path) == plain
    memos = [memo for _, memo in _projection._MEMOS.values()]
    assert memos and all(0 < len(memo) <= 50 for memo in memos)


def test_coding_answers_are_remembered_per_code_tables(tmp_path: Path) -> None:
    """Tables with a site map read a code the shipped ones do not: each has its own memo."""
    formulary = "http://hospital.example/codes/formulary"
    concept_map = {
        "resourceType": "ConceptMap",
        "status": "active",
        "group": [
            {
                "source": formulary,
                "target": CONCEPT_SYSTEM,
                "element": [
                    {
                        "code": "IVIG-10",
                        "target": [{"code": "medication/ivig", "equivalence": "equivalent"}],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "site-map.json"
    path.write_text(json.dumps(concept_map), encoding="utf-8")
    shipped = default_code_tables()
    site = shipped.with_site_maps(load_site_maps([path]))
    order = {
        "resourceType": "MedicationRequest",
        "medicationCodeableConcept": {"coding": [{"system": formulary, "code": "IVIG-10"}]},
    }
    for _ in range(2):  # the second time from the memos
        assert not _projection._readable(order, shipped)
        assert _projection._readable(order, site)


def _codings_walking_every_value(value: object) -> Iterator[Mapping[str, Any]]:
    """`_projection._codings` as it was before it skipped scalars: the reference."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, child in item.items():
                if key == "coding" and isinstance(child, list):
                    yield from (c for c in child if isinstance(c, Mapping))
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)


def test_the_coding_walk_finds_what_walking_every_value_finds(export: Path) -> None:
    """The same codings in the same order, for every line of the export and for odd shapes
    (codings in lists of lists, non-dict mappings, a `coding` that is not a list)."""
    odd: list[object] = [
        {"a": [[{"coding": [{"code": "1"}, 3, None]}], "x"], "coding": {"code": "2"}},
        MappingProxyType({"code": MappingProxyType({"coding": [MappingProxyType({"c": 1})]})}),
        {"coding": [{"system": 1, "code": True}], "b": [1.5, None, {"coding": []}]},
        [{"coding": [{"code": "3"}]}, "coding"],
    ]
    lines = []
    for path in sorted(export.glob("*.ndjson")):
        for line in path.read_bytes().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:  # the malformed lines
                continue
    found = 0
    for value in [*odd, *lines]:
        want = list(_codings_walking_every_value(value))
        assert list(_projection._codings(value)) == want
        found += len(want)
    assert found > len(lines)
