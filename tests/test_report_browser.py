"""The report in a real browser: headless Chromium driven by Selenium with chromium-driver.

Every page of the site and some patient pages are opened from disk: none logs a console error or
loads any resource, every link inside the site resolves, PMID links go to PubMed, each flow names
every conclusion of its question, and a patient's page highlights exactly the deciding rule's
path. Screenshots of the index and of a patient page are kept in `test-artifacts/`.

Skipped, with the reason, when no Chromium or chromedriver is installed, unless
IVIG_CDS_REQUIRE_BROWSER=1 (CI sets it), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from ivig_cds import Evaluator, KnowledgeBase
from ivig_cds._vocabulary import IntendedUse
from ivig_cds.cli.patient_files import discover, read_patient
from ivig_cds.report import patient_page, write_site
from ivig_cds.report.flow import question_flow

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("IVIG_CDS_ARTIFACTS", REPO / "test-artifacts"))
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
ACCENT = "rgb(11, 87, 208)"  # the stylesheet's highlight colour (--accent)
# One patient per question, and paths of different lengths.
PATIENTS = (
    "c02a-rrms-interferon-intolerant.yaml",
    "c05-spms-progressing.yaml",
    "c09-fixed-visual-deficit.yaml",
    "c13c-relapse-steroids-unknown.yaml",
    "k1-rrms-intolerant-thromboembolic-risk.yaml",
)


def _executables() -> tuple[str, str] | str:
    browser = next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser")) if p is not None), None
    )
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        return (
            "headless Chromium is not installed (Debian: apt-get install chromium "
            "chromium-driver); the browser tests of the HTML report need it"
        )
    return browser, driver


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    found = _executables()
    if isinstance(found, str):
        if os.environ.get("IVIG_CDS_REQUIRE_BROWSER") == "1":
            pytest.fail(found)
        pytest.skip(found)
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415 (after the skip)

    browser, chromedriver = found
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="ivig-cds-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1280,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(options=options, service=Service(chromedriver))
    try:
        yield session
    finally:
        session.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def site(kb: KnowledgeBase, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    write_site(kb, out)
    return out


@pytest.fixture(scope="module")
def patients(
    kb: KnowledgeBase, evaluator: Evaluator, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, str]]:
    """name -> (page, primary rule), for the example patients above."""
    out = tmp_path_factory.mktemp("patients")
    pages = {}
    for source in discover([str(REPO / "examples" / name) for name in PATIENTS]):
        patient = read_patient(source, lambda: b"")
        result = evaluator.evaluate(patient)
        page = out / (Path(source.name).stem + ".html")
        page.write_text(patient_page(kb, patient, result), encoding="utf-8")
        pages[Path(source.name).name] = (page, result.primary_rule)
    return pages


def _open(driver: Any, page: Path) -> list[dict[str, Any]]:
    """Open a page; return what it logged to the console."""
    driver.get(page.as_uri())
    return list(driver.get_log("browser"))


@dataclass(frozen=True)
class Visit:
    """What one page showed in the browser."""

    url: str
    console: list[dict[str, Any]]
    title: str
    headings: int  # <h1> elements
    loads: int  # elements that would load something: scripts, stylesheets, images, frames
    ids: set[str]
    links: list[tuple[str, str]]  # (href as written, absolute URL), SVG links included
    pmid_links: list[tuple[str, str]]  # (label, href) of the links marked as PMIDs


_VISIT = """
const links = Array.from(document.querySelectorAll('a[href]'), a =>
  [a.getAttribute('href'), new URL(a.getAttribute('href'), location.href).href]);
return {
  title: document.title,
  headings: document.querySelectorAll('h1').length,
  loads: document.querySelectorAll('script, link, img, iframe, object, embed, [src]').length,
  ids: Array.from(document.querySelectorAll('[id]'), e => e.id),
  links: links,
  pmids: Array.from(document.querySelectorAll('a.pmid'),
    a => [a.textContent.trim(), a.getAttribute('href')]),
};
"""


@pytest.fixture(scope="module")
def visits(driver: Any, site: Path, patients: dict[str, tuple[Path, str]]) -> dict[Path, Visit]:
    """Every page of the site and every patient page, opened once each."""
    found = {}
    for page in sorted(site.rglob("*.html")) + [page for page, _ in patients.values()]:
        console = _open(driver, page)
        seen = driver.execute_script(_VISIT)
        found[page] = Visit(
            url=driver.current_url,
            console=console,
            title=seen["title"],
            headings=seen["headings"],
            loads=seen["loads"],
            ids=set(seen["ids"]),
            links=[(str(h), str(u)) for h, u in seen["links"]],
            pmid_links=[(str(t), str(h)) for t, h in seen["pmids"]],
        )
    return found


def test_every_page_loads_without_console_errors_or_fetches(visits: dict[Path, Visit]) -> None:
    """Nothing is logged, nothing is loaded besides the page itself, each page has a title."""
    assert len(visits) > 40
    for page, visit in visits.items():
        assert visit.console == [], (page, visit.console)
        assert visit.loads == 0, page
        assert visit.title, page
        assert visit.headings == 1, page


def test_every_internal_link_resolves(visits: dict[Path, Visit], site: Path) -> None:
    """Each internal link opens a written page, and its #fragment names an element there."""
    ids = {urlsplit(v.url)._replace(fragment="").geturl(): v.ids for v in visits.values()}
    checked = 0
    for page, visit in visits.items():
        for href, url in visit.links:
            if not url.startswith("file:"):
                continue
            parts = urlsplit(url)
            path = Path(unquote(parts.path))
            assert path.is_file(), (page, href)
            # Site pages link within the site; a self-contained patient page only to itself.
            if page.is_relative_to(site):
                assert path.resolve().is_relative_to(site.resolve()), (page, href)
            else:
                assert path.resolve() == page.resolve(), (page, href)
            if parts.fragment:
                assert parts.fragment in ids[parts._replace(fragment="").geturl()], (page, href)
            checked += 1
    assert checked > 500


def test_every_pmid_link_points_to_its_pubmed_page(
    visits: dict[Path, Visit], kb: KnowledgeBase
) -> None:
    """The link labelled "PMID n" goes to PubMed's page n; every PMID of the registry is linked;
    the only links leaving the site are PubMed's."""
    linked: set[str] = set()
    for page, visit in visits.items():
        for label, href in visit.pmid_links:
            pmid = label.removeprefix("PMID ")
            assert href == f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/", (page, label, href)
            linked.add(pmid)
        external = [url for _, url in visit.links if not url.startswith("file:")]
        assert all(url.startswith("https://pubmed.ncbi.nlm.nih.gov/") for url in external), page
    assert linked == {e.pmid for e in kb.evidence.values() if e.pmid}


def test_each_flow_names_every_conclusion_of_its_question(
    driver: Any, kb: KnowledgeBase, site: Path
) -> None:
    """Rendered outcome nodes: one per conclusion answering the question, with its rule id."""
    _open(driver, site / "index.html")
    drawn = driver.execute_script(
        "return Array.from(document.querySelectorAll('svg.flow'), svg => [svg.dataset.question,"
        " Array.from(svg.querySelectorAll('g.outcome'), g => [g.dataset.rule, g.textContent])])"
    )
    assert [question for question, _ in drawn] == [
        "disease_modifying",
        "acute_relapse",
        "fixed_deficits",
    ]
    for question, nodes in drawn:
        expected = {r.id for r in kb.conclusions if question in r.questions}
        assert {rule for rule, _ in nodes} == expected, question
        for rule, text in nodes:
            assert f"{rule} · {kb.rule(rule).title}"[:20] in text, (rule, text)
        boxes = driver.execute_script(
            "const svg = document.querySelector(`svg.flow[data-question='${arguments[0]}']`);"
            "return Array.from(svg.querySelectorAll('g.outcome'), g => g.getBBox().width)",
            question,
        )
        assert all(width > 100 for width in boxes)  # drawn, not collapsed


@pytest.mark.parametrize("name", PATIENTS)
def test_patient_page_highlights_exactly_the_primary_rules_path(
    driver: Any, kb: KnowledgeBase, patients: dict[str, tuple[Path, str]], name: str
) -> None:
    """Highlighted: the steps up to the deciding rule, their arrows, and its conclusion only."""
    page, primary = patients[name]
    _open(driver, page)
    question = driver.execute_script("return document.querySelector('svg.flow').dataset.question")
    flow = question_flow(kb, IntendedUse(question))
    expected = list(flow.rule_ids[: flow.rule_ids.index(primary) + 1])

    def on(selector: str) -> list[str]:
        return list(
            driver.execute_script(
                "return Array.from(document.querySelectorAll(arguments[0]), e => e.dataset.rule)",
                f"svg.flow .on-path{selector}",
            )
        )

    assert on(".decision") == expected
    assert on(".outcome") == [primary]
    assert on(".edge.yes") == [primary]
    assert on(".edge.no") == expected[:-1]
    styles = driver.execute_script(
        "const box = s => getComputedStyle(document.querySelector(s));"
        "return [box(`g.outcome.on-path .outcome-box`).stroke,"
        " box(`g.outcome.off-path`).opacity]"
    )
    assert styles[0] == ACCENT  # the highlight is drawn, not only named
    assert float(styles[1]) < 0.5


def _full_page_png(driver: Any, page: Path, target: Path) -> None:
    _open(driver, page)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(int(height), 12000))
    target.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(target))
    driver.set_window_size(1280, 1000)


def test_screenshots_of_the_index_and_a_patient_page(
    driver: Any, site: Path, patients: dict[str, tuple[Path, str]]
) -> None:
    """Saved under test-artifacts/ for people to look at (no pixel comparison)."""
    index = ARTIFACTS / "report-index.png"
    patient = ARTIFACTS / "report-patient-c02a.png"
    _full_page_png(driver, site / "index.html", index)
    _full_page_png(driver, patients[PATIENTS[0]][0], patient)
    for shot in (index, patient):
        data = shot.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(data) > 50_000  # a rendered page, not a blank one


def test_print_layout(driver: Any, site: Path) -> None:
    """Printed, the navigation is hidden, the cards lose their frames, the flow fits the page
    width, and the text alternative of each flow is shown."""
    _open(driver, site / "index.html")
    shown = "return document.querySelector('details.alt ol').checkVisibility()"
    assert driver.execute_script(shown) is False  # on screen, folded away
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        printed = driver.execute_script(
            "const style = s => getComputedStyle(document.querySelector(s));"
            "return [style('header nav').display, style('section.card').borderTopStyle,"
            " document.querySelector('details.alt ol').checkVisibility(),"
            " document.querySelector('svg.flow').getBoundingClientRect().width"
            " <= document.querySelector('main').getBoundingClientRect().width]"
        )
    finally:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    assert printed == ["none", "none", True, True]
