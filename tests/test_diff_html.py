"""`ivig-cds diff --format html`: one self-contained page a committee can review from."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ivig_cds.cli import app
from tests.bulk_export import generate

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


class _Page(HTMLParser):
    """The ids, links, scripts and external references of a page, and each change's drawings."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.matrix_links: list[str] = []
        self.external: list[str] = []
        self.scripts = 0
        self.articles: list[list[str]] = []  # per changed item, the classes of its <svg>s
        self._in_matrix = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "script":
            self.scripts += 1
        for name in ("src", "href"):
            value = a.get(name) or ""
            if value.startswith(("http:", "https:", "//")):
                self.external.append(value)
        if tag == "table" and "transitions" in (a.get("class") or ""):
            self._in_matrix = True
        if tag == "a" and a.get("href", "").startswith("#"):  # type: ignore[union-attr]
            target = str(a["href"])[1:]
            self.links.append(target)
            if self._in_matrix:
                self.matrix_links.append(target)
        if tag == "article":
            self.articles.append([])
        if tag == "svg" and self.articles:
            self.articles[-1].append(a.get("class") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_matrix = False


def _edited(tmp_path: Path, rule: str, old: str, new: str) -> list[str]:
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    shutil.copytree(REPO / "evidence", tmp_path / "evidence")
    (path,) = (tmp_path / "rules" / "conclusions").glob(f"{rule}-*.yaml")
    path.write_text(path.read_text().replace(f"\ntier: {old}\n", f"\ntier: {new}\n"))
    return ["--rules", str(tmp_path / "rules"), "--evidence", str(tmp_path / "evidence")]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, _Page, dict[str, object]]:
    tmp = tmp_path_factory.mktemp("html")
    kb = _edited(tmp, "C02a", "second_line", "insufficient_evidence")
    out = tmp / "diff.html"
    result = CliRunner().invoke(
        app, ["diff", str(EXAMPLES), *kb, "--format", "html", "-o", str(out)]
    )
    assert result.exit_code == 3, result.stderr
    data = CliRunner().invoke(app, ["diff", str(EXAMPLES), *kb, "--format", "json"]).stdout
    text = out.read_text(encoding="utf-8")
    parsed = _Page()
    parsed.feed(text)
    return text, parsed, json.loads(data)


def test_the_matrix_links_to_each_group_of_changes(
    page: tuple[str, _Page, dict[str, object]],
) -> None:
    """Every cell with changes links to its group's section, and every group is linked."""
    _, parsed, document = page
    groups = document["groups"]
    assert isinstance(groups, list) and groups
    assert parsed.matrix_links
    assert set(parsed.matrix_links) <= parsed.ids
    assert len(set(parsed.matrix_links)) == len(groups)
    assert set(parsed.links) <= parsed.ids  # no internal link dangles


def test_each_changed_patient_shows_both_paths_side_by_side(
    page: tuple[str, _Page, dict[str, object]],
) -> None:
    """One article per changed example, each with two flow drawings with the path marked."""
    text, parsed, _ = page
    assert len(parsed.articles) == 4  # the examples C02a decides
    for drawings in parsed.articles:
        assert drawings == ["flow with-path", "flow with-path"]
    assert text.count('class="side side-old"') == text.count('class="side side-new"') == 4


def test_the_page_is_self_contained_and_in_plain_words(
    page: tuple[str, _Page, dict[str, object]],
) -> None:
    """No script, nothing fetched, the report's stylesheet inline, tiers by their labels."""
    text, parsed, _ = page
    assert parsed.scripts == 0
    assert parsed.external == []
    assert "--brand: #16324f" in text  # the report's own stylesheet
    visible = re.sub(r"<[^>]+>", " ", re.sub(r"<(style|svg)\b.*?</\1>", " ", text, flags=re.S))
    for code in ("second_line", "insufficient_evidence", "thromboembolic_risk_factors"):
        assert code not in visible
    assert "Second-line option (2002-2008 evidence)" in visible


def test_a_bulk_export_is_shown_as_text_on_each_side(tmp_path: Path) -> None:
    """Without a patient context (an export keeps only its judgements), each side is text."""
    export = tmp_path / "export"
    generate(export, 12, malformed_every=0)
    kb = _edited(tmp_path, "C06", "insufficient_evidence", "not_recommended")
    out = tmp_path / "bulk.html"
    result = CliRunner().invoke(
        app, ["diff", "--bulk", str(export), *kb, "--keep-ids", "--format", "html", "-o", str(out)]
    )
    assert result.exit_code == 3, result.stderr
    parsed = _Page()
    parsed.feed(out.read_text(encoding="utf-8"))
    assert parsed.articles and all(drawings == [] for drawings in parsed.articles)
    assert {"matrix-patient", "matrix-dose"} <= parsed.ids
