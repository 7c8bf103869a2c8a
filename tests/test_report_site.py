"""The static site (report/site.py, pages.py, words.py): pages, URLs, wording, content."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ivig_cds import KnowledgeBase
from ivig_cds._rules import ConditionSpec
from ivig_cds._vocabulary import IntendedUse, Tier
from ivig_cds.report import write_site
from ivig_cds.report.flow import question_flow
from ivig_cds.report.pages import Site, can_carry
from ivig_cds.report.words import (
    NO_PMID,
    TIER_COLOURS,
    condition_words,
    short_work,
    value_words,
)

SEED_FILE = re.compile(r"[0-9]{3}_[0-9a-f]{16}")
ENTRY_ID = re.compile(r"\b(pmid-[0-9]+|seed[0-9]{3}-[a-z0-9-]+)\b")
# What the report may not name: files outside the package, seed numbers, numbered documents.
OUTSIDE = re.compile(
    r"shared/|knowledge-spec|source document|\bseeds?\s*(?:#|no\.?\s*)?[0-9]{3}\b|seeds/",
    re.IGNORECASE,
)


_BLOCKS = frozenset(
    [
        "p",
        "li",
        "dt",
        "dd",
        "td",
        "th",
        "tr",
        "div",
        "section",
        "h1",
        "h2",
        "h3",
        "h4",
        "br",
        "text",
        "title",
        "desc",
        "caption",
        "figcaption",
    ]
)


class _Page(HTMLParser):
    """The visible text of a page (no tags, attributes, style or head), and its links."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in ("style", "head"):
            self._hidden += 1
        if tag in _BLOCKS:
            self.text.append(" ")
        if tag == "a" and attributes.get("href"):
            self.links.append(str(attributes["href"]))
        if attributes.get("id"):
            self.ids.add(str(attributes["id"]))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "head"):
            self._hidden -= 1
        if tag in _BLOCKS:
            self.text.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def visible(path: Path) -> str:
    return " ".join("".join(parse(path).text).split())


@pytest.fixture(scope="module")
def site(kb: KnowledgeBase, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    write_site(kb, out)
    return out


def test_site_has_a_page_per_rule_and_per_work_at_stable_urls(
    kb: KnowledgeBase, site: Path
) -> None:
    """index, matrix, rules/<ID>.html for every rule and evidence/<id>.html for every work."""
    expected = {"index.html", "matrix.html"}
    expected |= {f"rules/{r.id}.html" for r in (*kb.conclusions, *kb.cautions)}
    expected |= {f"evidence/{e}.html" for e in kb.evidence}
    written = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert written == expected
    assert "rules/C05.html" in written and "evidence/pmid-15451222.html" in written


def test_every_page_shows_the_version_and_hash(kb: KnowledgeBase, site: Path) -> None:
    """A reader can tell from any page which exact knowledge base it describes."""
    for page in site.rglob("*.html"):
        text = visible(page)
        assert f"Version {kb.version}" in text, page
        assert kb.content_hash in text, page


def test_visible_text_has_no_seed_file_names_or_entry_ids(site: Path) -> None:
    """Ids may appear in URLs only; readers see titles, PMIDs and plain words."""
    for page in site.rglob("*.html"):
        text = visible(page)
        assert not SEED_FILE.search(text), (page, SEED_FILE.search(text))
        assert not ENTRY_ID.search(text), (page, ENTRY_ID.search(text))
        assert "no PubMed record" not in text


def test_pages_name_no_file_outside_the_package(site: Path) -> None:
    """No shared/ path, no spec file, no seed number, no "source document N" on any page."""
    for page in site.rglob("*.html"):
        html = re.sub(r'href="[^"]*"', "", page.read_text(encoding="utf-8"))  # ids in URLs
        found = OUTSIDE.search(html)
        assert found is None, (page.relative_to(site), found)


def test_every_internal_link_resolves(site: Path) -> None:
    """Relative links name a written page, and a fragment names an element on it."""
    ids = {page.resolve(): parse(page).ids for page in site.rglob("*.html")}
    for page in site.rglob("*.html"):
        for href in parse(page).links:
            if href.startswith("https://"):
                continue
            target, _, fragment = href.partition("#")
            resolved = (page.parent / target).resolve() if target else page
            assert resolved.is_file(), (page, href)
            if fragment:
                assert fragment in ids[resolved], (page, href)


def test_pmid_links_point_to_pubmed(kb: KnowledgeBase, site: Path) -> None:
    """Each work with a PMID links to its PubMed page; the others say the PMID is not shown."""
    for entry in kb.evidence.values():
        page = site / "evidence" / f"{entry.id}.html"
        links = [link for link in parse(page).links if link.startswith("https://")]
        if entry.pmid:
            assert links == [f"https://pubmed.ncbi.nlm.nih.gov/{entry.pmid}/"]
            assert f"PMID {entry.pmid}" in visible(page)
        else:
            assert links == []
            assert NO_PMID in visible(page)


def test_index_lets_a_committee_review_the_knowledge_base(kb: KnowledgeBase, site: Path) -> None:
    """The index names the knowledge base, draws three flows, lists every rule with its tier."""
    index = site / "index.html"
    text = visible(index)
    html = index.read_text(encoding="utf-8")
    assert kb.manifest.title in text
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="flow"') == 3
    for rule in (*kb.conclusions, *kb.cautions):
        assert f'href="rules/{rule.id}.html"' in html
        assert rule.title in text
    assert "Every question" in text  # C05 answers all three
    assert f"{len(kb.evidence)} published works, 2002-2008" in text  # not the manifest's paths
    assert "A 'not pregnant' answer counts this long. 4 " in text  # the record windows
    assert 'href="matrix.html"' in html
    assert "@media print" in html
    assert "<script" not in html


def test_rule_page_says_everything_a_reviewer_needs(kb: KnowledgeBase, site: Path) -> None:
    """C02a: conditions, tier and meaning, certainty and reason, cautions, figures, provenance."""
    text = visible(site / "rules" / "C02a.html")
    step = question_flow(kb, IntendedUse.DISEASE_MODIFYING).rule_ids.index("C02a") + 1
    for expected in (
        "MS course is relapsing-remitting MS (RRMS)",
        "first-line therapy (interferon-beta, glatiramer acetate) is not tolerated, "
        "contraindicated or declined by the patient",
        "Second-line option (2002-2008 evidence) IVIG may be considered",
        "low: Trials were small with design weaknesses",
        f"step {step} of the long-term disease-modifying treatment flow",
        "K6 Conflicting later evidence",
        "effect size -0.5; P = 0.00003",  # a figure of the meta-analysis, as printed
        "Knowledge specification item C2",
        f"Reviewed {kb.rule('C02a').provenance.reviewed}",
    ):
        assert expected in text, expected
    assert "K7" not in text  # attached only when C05 or C06 decides


def test_rule_page_quotes_its_passages_and_its_clinical_judgement(
    kb: KnowledgeBase, site: Path
) -> None:
    """C10a: every passage quoted and attributed to its work(s) by name, and the judgement."""
    rule = kb.rule("C10a")
    text = visible(site / "rules" / "C10a.html")
    for passage in rule.provenance.passages:
        assert re.search(f"“{re.escape(passage.quote)}” From ", text), passage.quote
    assert "Clinical judgement, not from the sources" in text
    assert " ".join((rule.provenance.clinical_judgement or "").split()) in text
    assert "Source document" not in text


def test_a_passage_is_attributed_to_its_work(kb: KnowledgeBase, site: Path) -> None:
    """A quote from a document that gives one work names that work: authors, year, title, PMID;
    a quote from a document of several works the rule cites names each candidate."""
    text = visible(site / "rules" / "C01.html")
    assert (
        "“can presently not be considered as a first-line treatment” From Sorensen et al. 2002, "
        "Intravenous immunoglobulin G for the treatment of relapsing-remitting multiple "
        "sclerosis: a meta-analysis (PMID 12453069)"
    ) in text
    site_index = Site.of(kb)
    rule = kb.rule("C07")
    candidates = [site_index.attribution(rule, p) for p in rule.provenance.passages]
    assert all(a.works for a in candidates)
    assert all(
        set(e.id for e in a.works) <= set(rule.evidence) for a in candidates if not a.settled
    )


def test_unless_groups_read_as_plain_clauses(site: Path) -> None:
    """C01 (v3): the situations it does not apply in are listed after its conditions."""
    text = visible(site / "rules" / "C01.html")
    assert (
        "Unless one of these holds (then it does not apply): pregnant postpartum, and weeks "
        "since delivery is at most 12"
    ) in text
    index = visible(site / "index.html")
    assert (
        "first-line therapy (interferon-beta, glatiramer acetate) is suitable, unless pregnant; "
        "or postpartum" in index
    )


def test_an_outside_evidence_rule_says_why_it_cites_nothing(kb: KnowledgeBase, site: Path) -> None:
    """C14/C15 cite no work: their pages say that the sources do not address the patient."""
    for rule in kb.conclusions:
        if rule.tier is Tier.OUTSIDE_EVIDENCE and not rule.evidence:
            text = visible(site / "rules" / f"{rule.id}.html")
            assert "None: the sources do not address this patient" in text, rule.id


def test_outside_evidence_has_a_colour_and_a_legend_entry(site: Path) -> None:
    """The new tier is explained in the legend with its own colour, like every other tier."""
    html = (site / "index.html").read_text(encoding="utf-8")
    assert (
        f'style="--tier: {TIER_COLOURS[Tier.OUTSIDE_EVIDENCE]}">Outside the evidence</span>' in html
    )
    assert len(set(TIER_COLOURS.values())) == len(Tier)


def test_caution_with_alternative_situations(site: Path) -> None:
    """K1 (any_of): each situation listed; a conclusion page names them in one phrase."""
    text = visible(site / "rules" / "K1.html")
    assert "At least one of these situations:" in text
    assert "postpartum, and weeks since delivery is at most 12" in text
    assert "Shown because of the recorded risk factors: [thromboembolic risk factors]." in text
    assert "Always" not in text
    c02a = visible(site / "rules" / "C02a.html")
    assert "K1 Thromboembolic risk (any of: thromboembolic risk factors: at least one" in c02a


def test_caution_page_lists_the_conclusions_it_can_be_attached_to(site: Path) -> None:
    """K7 names C05 and C06 only."""
    text = visible(site / "rules" / "K7.html")
    assert "C05 Secondary progressive MS" in text
    assert "C06 Primary progressive MS" in text
    assert "C02a" not in text


def test_work_page_shows_figures_and_citing_rules(site: Path) -> None:
    """ESIMS: design, n, exact figures, quality notes and the rules that cite it."""
    text = visible(site / "evidence" / "pmid-15451222.html")
    assert "Randomised placebo-controlled trial" in text
    assert "hazard ratio 1.11 [95% CI 0.80-1.53] for IVIG versus placebo" in text
    assert "Participants 318" in text
    assert "C05" in text and "K1" in text


def test_matrix_marks_each_citation(kb: KnowledgeBase, site: Path) -> None:
    """One mark per (rule, work) citation, and none elsewhere."""
    html = (site / "matrix.html").read_text(encoding="utf-8")
    citations = sum(len(r.evidence) for r in (*kb.conclusions, *kb.cautions))
    assert html.count('class="cell cited"') == citations


def test_caution_compatibility(kb: KnowledgeBase) -> None:
    """Tier, deciding rule and shared fields decide whether a conclusion can carry a caution."""
    site = Site.of(kb)
    by_id = {r.id: r for r in kb.conclusions}
    k2 = next(c for c in kb.cautions if c.id == "K2")  # tier second_line
    assert can_carry(by_id["C02a"], k2)
    assert not can_carry(by_id["C05"], k2)
    carried = [c.id for c in site.cautions_for(by_id["C05"])]
    assert {"K1", "K5", "K7", "K8"} <= set(carried)
    assert not {"K2", "K3", "K4", "K6"} & set(carried)  # second_line or C02/C03 only
    k8 = next(c for c in kb.cautions if c.id == "K8")  # every tier but not_applicable
    assert not can_carry(by_id["C12"], k8)


def test_condition_and_value_words() -> None:
    """Each operator of the condition language reads as a clause."""
    spec = ConditionSpec.model_validate
    assert condition_words("ms_phenotype", spec({"in": ["CIS", "RRMS", "PPMS"]})) == (
        "MS course is clinically isolated syndrome (CIS), relapsing-remitting MS (RRMS) "
        "or primary progressive MS (PPMS)"
    )
    assert condition_words("on_iv_methylprednisolone", spec({"equals": False})) == (
        "not on IV methylprednisolone"
    )
    assert condition_words("first_line_dmt", spec({"unknown": True})).endswith("is not known")
    assert condition_words("on_iv_methylprednisolone", spec({"unknown": True})) == (
        "IV methylprednisolone for the relapse is not known"
    )
    assert condition_words("pregnancy_status", spec({"equals": "not_pregnant"})) == "not pregnant"
    assert condition_words("age_years", spec({"at_most": 17})) == "age is at most 17 years"
    assert condition_words("new_lab_value", spec({"equals": "very_high"})) == (
        "new lab value is very high"
    )
    assert condition_words("thromboembolic_risk_factors", spec({"not_empty": True})) == (
        "thromboembolic risk factors: at least one recorded"
    )
    assert condition_words("tier", spec({"equals": "second_line"})) == (
        "the result's tier is second-line option (2002-2008 evidence)"
    )
    assert condition_words("tier", spec({"equals": "outside_evidence"})) == (
        "the result's tier is outside the evidence"
    )
    assert value_words("breastfeeding", True) == "breastfeeding"
    assert value_words("thromboembolic_risk_factors", ()) == "none recorded"
    assert value_words("edss", None) == "not known"


def test_works_with_the_same_short_name_get_letters(kb: KnowledgeBase) -> None:
    """Two works by Sorensen alone in 2003 read 2003a and 2003b, in PubMed-year order."""
    site = Site.of(kb)
    assert site.label(kb.evidence["pmid-12559498"]) == "Sorensen 2003a"
    assert site.label(kb.evidence["pmid-14598048"]) == "Sorensen 2003b"
    assert len(set(site.labels.values())) == len(site.labels)


def test_short_names_of_works(kb: KnowledgeBase) -> None:
    """First author and year; the title's start for a work without authors."""
    assert short_work(kb.evidence["pmid-15451222"]) == "Hommes et al. 2004"
    assert short_work(kb.evidence["seed001-review"]) == "Intravenous Immunoglobulin in MS:…"
