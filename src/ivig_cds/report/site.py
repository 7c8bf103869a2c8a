"""Write the static report: index, a page per rule and per work, and the traceability matrix.

Pages are rendered with Jinja2 from the templates shipped in the package; they link only to
one another (by relative URL) and to PubMed, carry their stylesheet inline and run no script,
so the folder opens from disk or from any static host. URLs are stable: `rules/<rule id>.html`
and `evidence/<entry id>.html`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from ivig_cds import __version__, _wording
from ivig_cds._evidence import EvidenceEntry
from ivig_cds._knowledge_base import KnowledgeBase
from ivig_cds._recommendation import NO_PMID
from ivig_cds._rules import CautionNote, ConclusionRule
from ivig_cds._vocabulary import TIER_MEANINGS, Tier
from ivig_cds.report import words
from ivig_cds.report.pages import (
    AnyRule,
    Site,
    attached_when,
    conditions,
    exceptions,
    group_conditions,
    unless_words,
)
from ivig_cds.report.svg import describe, draw_flow

_environment: Environment | None = None


def environment() -> Environment:
    """The template environment (built once): autoescaping, and no silent undefined names."""
    global _environment  # noqa: PLW0603 (built lazily once, then only read)
    if _environment is None:
        env = Environment(
            loader=PackageLoader("ivig_cds.report", "templates"),
            autoescape=select_autoescape(["html", "svg"], default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        env.filters["sentence"] = words.sentence
        env.globals.update(
            tier_word=lambda tier: words.TIER_WORDS[Tier(tier)],
            tier_meaning=lambda tier: TIER_MEANINGS[Tier(tier)],
            tier_colour=lambda tier: words.TIER_COLOURS[Tier(tier)],
            certainty=lambda c: words.certainty_words(c.level),
            question_words=lambda q: words.QUESTION_WORDS[q],
            question_details=lambda q: words.QUESTION_DETAILS[q],
            design=words.design_words,
            pmid_label=words.pmid_label,
            pubmed_url=words.pubmed_url,
            short_work=words.short_work,
            authors=words.authors_words,
            conditions=conditions,
            attached_when=attached_when,
            group_conditions=group_conditions,
            exceptions=exceptions,
            unless_words=unless_words,
            missing_question=_wording.missing_question,
            note_text=note_text,
            field_words=words.field_words,
            value_words=words.value_words,
            tiers=list(Tier),
            package_version=__version__,
            no_pmid=NO_PMID,
        )
        _environment = env
    return _environment


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def note_text(note: CautionNote) -> str:
    """A caution note's text as the rule states it, each `{field}` shown as "[its name]"."""
    return _PLACEHOLDER.sub(lambda m: f"[{_wording.field_label(m.group(1))}]", note.text)


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def rule_url(rule_id: str, root: str = "") -> str:
    return f"{root}rules/{rule_id}.html"


def work_url(evidence_id: str, root: str = "") -> str:
    return f"{root}evidence/{evidence_id}.html"


def write_site(kb: KnowledgeBase, out: Path) -> list[Path]:
    """Write the report for `kb` into `out` (created if needed); returns the files written.

    Files already in `out` that the report does not write are left alone.
    """
    site = Site.of(kb)
    pages: dict[str, str] = {"index.html": _index(site), "matrix.html": _matrix(site)}
    for rule in site.rules:
        pages[rule_url(rule.id)] = _rule(site, rule)
    for entry in site.works:
        pages[work_url(entry.id)] = _work(site, entry)
    written = []
    for name, html in pages.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8", newline="\n")
        written.append(path)
    return written


def _common(site: Site, root: str, page: str = "") -> dict[str, Any]:
    return {
        "page": page,
        "kb": site.kb,
        "site": site,
        "root": root,
        "rule_url": lambda rule_id: rule_url(rule_id, root),
        "work_url": lambda evidence_id: work_url(evidence_id, root),
    }


def _index(site: Site) -> str:
    link: Callable[[str], str] = rule_url
    diagrams = [(flow, Markup(draw_flow(flow, link=link)), describe(flow)) for flow in site.flows]
    return render("index.html", diagrams=diagrams, **_common(site, "", "index"))


def _matrix(site: Site) -> str:
    return render("matrix.html", **_common(site, "", "matrix"))


def _rule(site: Site, rule: AnyRule) -> str:
    context = _common(site, "../")
    if isinstance(rule, ConclusionRule):
        return render(
            "rule.html",
            rule=rule,
            places=site.places(rule),
            cautions=site.cautions_for(rule),
            carried_by=(),
            **context,
        )
    return render(
        "rule.html", rule=rule, places=(), cautions=(), carried_by=site.carried_by(rule), **context
    )


def _work(site: Site, entry: EvidenceEntry) -> str:
    return render(
        "evidence.html",
        entry=entry,
        read_with=site.read_with(entry),
        citing=site.citing(entry),
        **_common(site, "../"),
    )
