"""The audit: every rule traces to evidence, every citation resolves, every figure is sourced."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ivig_cds import EvidenceEntry, KnowledgeBase, Tier

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _text(entry: EvidenceEntry) -> str:
    return " ".join(str(v) for v in entry.model_dump(mode="json").values())


def test_every_conclusion_cites_evidence_unless_indeterminate(kb: KnowledgeBase) -> None:
    """A conclusion that claims a tier is backed by at least one work; only a missing fact
    (indeterminate) or a statement that the sources do not reach the patient cites none."""
    for rule in kb.conclusions:
        assert rule.evidence or rule.tier in (Tier.INDETERMINATE, Tier.OUTSIDE_EVIDENCE), rule.id


def test_every_citation_resolves(kb: KnowledgeBase) -> None:
    """Every evidence id a rule cites names an entry of the registry."""
    for rule in (*kb.conclusions, *kb.cautions):
        assert set(rule.evidence) <= set(kb.evidence), rule.id


def test_every_evidence_entry_is_used(kb: KnowledgeBase) -> None:
    """No entry sits in the registry unused unless it says it is background."""
    for entry in kb.evidence.values():
        assert kb.cited_by(entry.id) or entry.background, entry.id


def test_registry_holds_the_sixteen_works_of_the_spec(kb: KnowledgeBase) -> None:
    """The registry is exactly the 14 PMIDs of seeds 000, 002, 003 plus seeds 001 and 004."""
    pmids = {
        "18075269", "12453069", "14598048", "12962026", "12910072", "12559498", "14760960",
        "15451222", "15539773", "15949496", "16042226", "15955273", "15902390", "16998754",
    }  # fmt: skip
    assert {e.pmid for e in kb.evidence.values() if e.pmid} == pmids
    assert set(kb.evidence) == {f"pmid-{p}" for p in pmids} | {"seed001-review", "seed004-summary"}


@pytest.mark.parametrize("kind", ["conclusions", "cautions"])
def test_every_number_in_a_rule_appears_in_its_sources(kb: KnowledgeBase, kind: str) -> None:
    """Figures in rationales, summaries and caution texts come from the cited works or quoted
    passages, or are declared clinical judgement (the 12- and 52-week postpartum bounds). The
    first and last years of the registry may date any text ("the 2002-2008 evidence")."""
    years = [e.year for e in kb.evidence.values() if e.year is not None]
    span = {str(min(years)), str(max(years))}
    assert span == {"2002", "2008"}
    for rule in getattr(kb, kind):
        prose = " ".join(getattr(rule, f, "") for f in ("summary", "rationale", "text"))
        prose += " ".join(note.text for note in getattr(rule, "notes", ()))
        sourced = {n for e in rule.evidence for n in NUMBER.findall(_text(kb.evidence[e]))}
        sourced |= span
        p = rule.provenance
        for text in (*(q.quote for q in p.passages), p.clinical_judgement or ""):
            sourced |= set(NUMBER.findall(text))
        unsourced = set(NUMBER.findall(prose)) - sourced
        assert not unsourced, f"{rule.id} writes {sorted(unsourced)} that its sources lack"


def test_a_rule_without_evidence_rests_on_passages_or_declared_judgement(kb: KnowledgeBase) -> None:
    """The audit accepts one kind of unsourced statement: clinical judgement, marked as such.

    A caution that cites no work must either be clinical judgement with its reason, or say only
    what its quoted passages show (K8: the dates of the sources).
    """
    unsourced = {r.id for r in kb.cautions if not r.evidence}
    assert unsourced == {"K8", "K11", "K12b", "K12c", "K13"}
    judged = {r.id for r in (*kb.conclusions, *kb.cautions) if r.provenance.clinical_judgement}
    assert judged == {
        "C03b", "C10a", "C10b", "C10c", "C14", "C15", "K1", "K11", "K12b", "K12c", "K13"
    }  # fmt: skip
    assert all(r.provenance.clinical_judgement for r in kb.cautions if r.id in unsourced - {"K8"})
    assert {e.field for e in kb.manifest.not_asked if e.clinical_judgement} == {"pregnancy_status"}


def test_clinical_judgement_is_worded_as_such_where_it_is_shown(kb: KnowledgeBase) -> None:
    """Every rule whose provenance declares judgement says so in the text a clinician reads
    (a caution may say it in the note that its judgement concerns: K1's pregnancy trigger)."""
    for rule in (*kb.conclusions, *kb.cautions):
        if rule.provenance.clinical_judgement is None:
            continue
        shown = getattr(rule, "rationale", None) or getattr(rule, "text", "")
        shown += " ".join(note.text for note in getattr(rule, "notes", ()))
        assert "not from the sources" in shown, rule.id


@pytest.mark.skipif(not SEEDS.is_dir(), reason="shared/seeds is not beside this checkout")
def test_every_provenance_passage_is_quoted_verbatim_from_its_seed(kb: KnowledgeBase) -> None:
    """Each passage a rule names is found, word for word, in the seed file it names."""
    for rule in (*kb.conclusions, *kb.cautions):
        for passage in rule.provenance.passages:
            seed = " ".join((SEEDS / passage.seed).read_text(encoding="utf-8").split())
            assert " ".join(passage.quote.split()) in seed, (rule.id, passage.quote)


def test_every_passage_names_its_work(kb: KnowledgeBase) -> None:
    """Every quoted passage names the work it is printed in, read from the same document, so
    that it is shown under that work's name and never under a document number."""
    for rule in (*kb.conclusions, *kb.cautions):
        for passage in rule.provenance.passages:
            assert passage.work is not None, (rule.id, passage.quote)
            assert kb.evidence[passage.work].source.seed == passage.seed, (rule.id, passage.quote)


@pytest.mark.skipif(not SEEDS.is_dir(), reason="shared/seeds is not beside this checkout")
def test_every_passage_is_printed_in_the_work_it_names(kb: KnowledgeBase) -> None:
    """A passage from a page of several abstracts lies within its work's own abstract (#N)."""
    for rule in (*kb.conclusions, *kb.cautions):
        for passage in rule.provenance.passages:
            entry = kb.evidence[passage.work or ""]
            text = (SEEDS / passage.seed).read_text(encoding="utf-8")
            section = entry.source.section or ""
            if section.startswith("#"):
                start = re.search(rf"^{re.escape(section)}\s*$", text, re.M)
                assert start is not None, (entry.id, section)
                rest = text[start.end() :]
                following = re.search(r"^#\d+\s*$", rest, re.M)
                text = rest[: following.start()] if following else rest
            assert " ".join(passage.quote.split()) in " ".join(text.split()), (
                rule.id,
                passage.quote,
            )


@pytest.mark.skipif(not SEEDS.is_dir(), reason="shared/seeds is not beside this checkout")
def test_evidence_traces_to_its_seed(kb: KnowledgeBase) -> None:
    """Each entry's seed exists, and its PMID, DOI and every outcome figure are printed there."""
    for entry in kb.evidence.values():
        seed = (SEEDS / entry.source.seed).read_text(encoding="utf-8")
        for identifier in (entry.pmid, entry.doi):
            assert identifier is None or identifier in seed, (entry.id, identifier)
        for outcome in entry.outcomes:
            assert outcome.result in seed, (entry.id, outcome.result)


@pytest.mark.skipif(not SEEDS.is_dir(), reason="shared/seeds is not beside this checkout")
def test_findings_are_paraphrased_not_pasted(kb: KnowledgeBase) -> None:
    """No rule rationale or evidence finding copies ten consecutive words from a seed.

    Figures are copied exactly on purpose, so numbers are left out of the comparison.
    """
    seeds = " ".join(p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt")))
    seed_words = _words(seeds)
    shingles = {" ".join(seed_words[i : i + 10]) for i in range(len(seed_words) - 9)}
    texts = {e.id: e.findings for e in kb.evidence.values()}
    texts |= {r.id: r.rationale for r in kb.conclusions}
    pasted = {}
    for ident, text in texts.items():
        words = _words(text)
        runs = shingles.intersection(" ".join(words[i : i + 10]) for i in range(len(words) - 9))
        if runs:
            pasted[ident] = sorted(runs)[0]
    assert not pasted


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if not w.isdigit() and len(w) > 1]


def test_rule_provenance_names_real_seeds(kb: KnowledgeBase) -> None:
    """Provenance quotes only seed files that evidence entries also come from."""
    seeds = {e.source.seed for e in kb.evidence.values()}
    for rule in (*kb.conclusions, *kb.cautions):
        assert set(rule.provenance.seeds) <= seeds, rule.id
