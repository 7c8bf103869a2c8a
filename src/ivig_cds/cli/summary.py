"""One row per patient file: the overview `ivig-cds evaluate` prints for several files.

A person at a terminal evaluating a folder wants to see every patient at once, not a page of
text each: file, tier, question, the rule that set the tier, the key work behind it and what
is missing. `--format text` still gives everything, for one file or for all. Cells are in
words (the tier's label, the question, the missing facts' names), never codes: JSON has those.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ivig_cds._recommendation import Citation, Recommendation
from ivig_cds._vocabulary import TIER_LABELS
from ivig_cds._wording import field_label, question_phrase
from ivig_cds.cli.patient_files import PatientFileError

HEADERS = ("file", "tier", "question", "rule", "key citation", "missing data")


def short_citation(citation: Citation) -> str:
    """`Hommes 2004, PMID 15451222`: first author's surname, year and PMID, never an entry id."""
    surname = citation.authors[0].split()[0] if citation.authors else None
    who = " ".join(str(p) for p in (surname, citation.year) if p is not None)
    pmid = f"PMID {citation.pmid}" if citation.pmid else "PMID not shown in the source"
    return f"{who}, {pmid}" if who else pmid


def summary_rows(
    results: Sequence[tuple[str, Recommendation | PatientFileError]],
) -> list[list[str]]:
    """The rows under `HEADERS`; files of one folder are named without it."""
    parents = {str(Path(source).parent) for source, _ in results}
    shared = len(parents) == 1
    rows = []
    for source, outcome in results:
        name = Path(source).name if shared else source
        if isinstance(outcome, PatientFileError):
            rows.append([name, "error", outcome.summary, "-", "-", "-"])
            continue
        key = short_citation(outcome.citations[0]) if outcome.citations else "-"
        rows.append(
            [
                name,
                TIER_LABELS[outcome.tier],
                question_phrase(outcome.question.intended_use, short=True),
                outcome.primary_rule,
                key,
                ", ".join(map(field_label, outcome.missing_data)) or "-",
            ]
        )
    return rows
