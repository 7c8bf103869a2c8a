"""Every patient the project ships, read the way a clinician reads it, in plain language.

Each example and scenario patient is evaluated and rendered as text, Markdown, an HTML page
and a CDS Hooks card; the visible output is scanned for internal names: field names, tier
codes, design slugs, vocabulary codes, "source document", seed numbers and files outside the
package. Rule ids (C07), PMIDs and "IVIG" are fine: they are reference labels.
"""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from ivig_cds import Evaluator, KnowledgeBase, Recommendation
from ivig_cds._evaluate import DERIVED_FROM
from ivig_cds._patient import FirstLineByClass, PatientContext
from ivig_cds._patient_input import parse_patient
from ivig_cds._vocabulary import (
    FirstLineStatus,
    IntendedUse,
    MSPhenotype,
    PregnancyStatus,
    StudyDesign,
    Tier,
)
from ivig_cds.cli.render import render_markdown, render_text
from ivig_cds.report import patient_page
from ivig_cds.service.cards import card_for

REPO = Path(__file__).resolve().parents[1]
FILES = sorted((REPO / "examples").glob("*.yaml")) + sorted(
    (REPO / "tests" / "scenarios").glob("*.yaml")
)
FORMS = ("text", "markdown", "html", "card")


def patient_files() -> list[tuple[str, dict[str, Any], bool]]:
    """(name, patient, IVIG order being signed) for every evaluable patient file: an example is
    the patient itself; a scenario holds it under `patient:` and is skipped when it expects an
    error."""
    found = []
    for path in FILES:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if "patient" in data and "expect" in data:
            if "error" in data["expect"]:
                continue
            found.append((path.stem, data["patient"], bool(data.get("ivig_ordered", False))))
        else:
            found.append((path.stem, data, False))
    return found


def _codes() -> set[str]:
    """Every internal name that reads as code: names and values with an underscore."""
    names = set(PatientContext.model_fields) | set(FirstLineByClass.model_fields)
    names |= set(DERIVED_FROM) | {"primary_rule", "intended_use"}
    for vocabulary in (Tier, StudyDesign, IntendedUse, FirstLineStatus, PregnancyStatus):
        names |= {member.value for member in vocabulary}
    names.add(MSPhenotype.NOT_MS.value)
    return {name for name in names if "_" in name}


CODES = sorted(_codes(), key=len, reverse=True)
FORBIDDEN = re.compile(
    "|".join(
        [
            *(rf"\b{re.escape(code)}\b" for code in CODES),
            r"source document",
            r"\bseeds?\b",
            r"shared/",
            r"knowledge-spec",
            r"[0-9]{3}_[0-9a-f]{16}",  # a seed file's name
        ]
    ),
    re.IGNORECASE,
)


class _Visible(HTMLParser):
    """The text a reader sees on a page: no tags, attributes, styles or head."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._hidden += tag in ("style", "head")
        self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("style", "head")
        self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def shown(kb: KnowledgeBase, patient: dict[str, Any], rec: Recommendation, form: str) -> str:
    """What a clinician reads of `rec` in one form."""
    if form == "text":
        out = io.StringIO()
        Console(file=out, color_system=None, soft_wrap=True, markup=False).print(render_text(rec))
        return out.getvalue()
    if form == "markdown":
        return render_markdown(rec)
    if form == "html":
        page = _Visible()
        page.feed(patient_page(kb, parse_patient(patient), rec))
        return " ".join("".join(page.parts).split())
    card = card_for(rec, service_id="s", hook_instance="h")
    if card is None:  # not_applicable: no card to read
        return ""
    reasons = " ".join(r["display"] for r in card.get("overrideReasons", ()))
    return " ".join((card["summary"], card["detail"], card["source"]["label"], reasons))


PATIENTS = patient_files()


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(
    ("name", "patient", "ordered"), PATIENTS, ids=[name for name, _, _ in PATIENTS]
)
def test_what_a_clinician_reads_names_no_internals(
    kb: KnowledgeBase,
    evaluator: Evaluator,
    name: str,
    patient: dict[str, Any],
    *,
    ordered: bool,
    form: str,
) -> None:
    """No field name, tier code, design slug, vocabulary code, seed or outside file is shown."""
    rec = evaluator.evaluate(patient, ivig_ordered=ordered)
    text = shown(kb, patient, rec, form)
    leaks = sorted({m.group(0) for m in FORBIDDEN.finditer(text)})
    assert not leaks, f"{name} ({form}): {leaks}"


def test_the_scan_would_catch_each_kind_of_leak() -> None:
    """The pattern itself: each kind of internal name is caught, and rule ids and PMIDs pass."""
    for leak in (
        "rule C07 on relapse_ongoing = yes",
        "Second-line option (`second_line`)",
        "single_blind_randomized",
        "first_line_dmt: not_tolerated",
        "weeks_postpartum",
        "as in source document 4",
        "from seed 004",
        "see shared/seeds/",
        "per knowledge-spec.md",
        "003_5d29f6aac877c103.txt",
        "interferon_beta",
        "ivig_ordered",
    ):
        assert FORBIDDEN.search(leak), leak
    for fine in (
        "Decided by: C07 (the relapse is ongoing)",
        "PMID 15451222",
        "IVIG may be considered",
        "single-blind randomised trial",
    ):
        assert not FORBIDDEN.search(fine), fine


def test_every_kind_of_patient_file_is_read() -> None:
    """The examples and the scenarios both reach the scan, invalid scenarios excepted."""
    names = {name for name, _, _ in PATIENTS}
    assert any(name.startswith("c07") for name in names)
    assert len(PATIENTS) > 60
    assert not any(name.startswith("invalid") for name in names)
