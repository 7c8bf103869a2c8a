"""One row per patient file: the overview `ivig-cds evaluate` prints for several files.

A person at a terminal evaluating a folder wants to see every patient at once, not a page of
text each: file, tier, question, the rule that set the tier, the key work behind it and what
is missing. `--format text` still gives everything, for one file or for all. Cells are in
words (the tier's label, the question, the missing facts' names), never codes: JSON has those.

On a narrow terminal (80 columns) the row stays one line: the missing data, then the key
citation, are left out (the table says so), the tier labels lose their "(2002-2008 evidence)"
for a footnote, and file names are cut last, never so far that two read the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ivig_cds._recommendation import Citation, Recommendation
from ivig_cds._vocabulary import TIER_LABELS, IntendedUse
from ivig_cds._wording import field_label, question_phrase
from ivig_cds.cli.layout import Column
from ivig_cds.cli.patient_files import PatientFileError


def _short_tier(label: str) -> str:
    """ "Second-line option (2002-2008 evidence)" as "Second-line option*"."""
    head, bracket, _ = label.partition(" (")
    return f"{head}*" if bracket else label


_QUALIFIERS = sorted(
    {label.partition(" (")[2].rstrip(")") for label in TIER_LABELS.values() if " (" in label}
)
COLUMNS = (
    Column("file", cut=24, unique=True),
    Column(
        "tier",
        short=_short_tier,
        footnote=f"* based on {'; '.join(_QUALIFIERS)}" if _QUALIFIERS else "",
    ),
    # Questions stay whole; an error's summary in their place may be cut to the same width.
    Column("question", cut=max(len(question_phrase(use, short=True)) for use in IntendedUse)),
    Column("rule"),
    Column("key citation", drop=2),
    Column("missing data", cut=16, drop=1),
)
HEADERS = tuple(column.header for column in COLUMNS)


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
