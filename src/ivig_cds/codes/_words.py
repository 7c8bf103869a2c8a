"""Which unmapped codes look relevant: the words of their display or text.

A match only selects a code to *report*; nothing is ever mapped by its words. As in the
adapter, an ICD-10 code of the G35 family or an ICD-11 code of the 8A40 family is MS-family by
its code alone, display or not. The MS-family
words apply to every kind of resource; drug names only to medications and allergies, because
in a Condition or an Observation "immunoglobulin" names a deficiency or a laboratory test, not
a product. Matching is case-insensitive and on word boundaries, except the abbreviation "CIS",
which matches in capitals only (lower-case "cis" is a chemical prefix and carcinoma in situ is
"CIS" too rarely for it to matter).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum

from ivig_cds.fhir._codes import ICD10_SYSTEMS


class Category(StrEnum):
    """Why a word makes a code relevant."""

    MS_FAMILY = "MS family"
    FIRST_LINE = "first-line DMT"
    LATER_DMT = "later DMT"
    STEROID = "steroid"
    IVIG = "IVIG"


@dataclass(frozen=True, slots=True)
class Match:
    """The word that matched (as written in the display or text) and its category."""

    word: str
    category: Category


_ICD11 = "http://id.who.int/icd/release/11/mms"
_DRUG_KINDS = frozenset({"medication", "allergy"})

# (category, patterns, case-sensitive); patterns are regular expressions matched between word
# boundaries.
_WORDS: tuple[tuple[Category, tuple[str, ...], bool], ...] = (
    (
        Category.MS_FAMILY,
        (
            r"multiple\s+sclerosis",
            r"demyelinat\w*",
            r"clinically\s+isolated\s+syndrome",
            r"RRMS",
            r"SPMS",
            r"PPMS",
            r"relapsing[\s-]+remitting",
            r"(?:primary|secondary)?\s*progressive\s+MS",
            r"optic\s+neuritis",
        ),
        False,
    ),
    (Category.MS_FAMILY, (r"CIS",), True),
    (
        Category.FIRST_LINE,
        (
            r"(?:peg)?interferon[\s-]*(?:beta|β)",
            r"IFN[\s-]*(?:beta|β)",
            r"Avonex",
            r"Rebif",
            r"Plegridy",
            r"Betaseron",
            r"Betaferon",
            r"Extavia",
            r"glatiramer",
            r"Copaxone",
            r"Glatopa",
        ),
        False,
    ),
    (
        Category.LATER_DMT,
        (
            r"natalizumab",
            r"Tysabri",
            r"ocrelizumab",
            r"Ocrevus",
            r"ofatumumab",
            r"Kesimpta",
            r"fingolimod",
            r"Gilenya",
            r"siponimod",
            r"ozanimod",
            r"ponesimod",
            r"dimethyl\s+fumarate",
            r"Tecfidera",
            r"diroximel\s+fumarate",
            r"teriflunomide",
            r"Aubagio",
            r"cladribine",
            r"Mavenclad",
            r"alemtuzumab",
            r"Lemtrada",
            r"rituximab",
            r"ublituximab",
        ),
        False,
    ),
    (Category.STEROID, (r"methylprednisolone", r"Solu[\s-]?Medrol"), False),
    (
        Category.IVIG,
        (
            r"immune\s+globulin",
            r"immunoglobulins?",
            r"IVIG",
            r"Gamunex(?:-C)?",
            r"Privigen",
            r"Octagam",
            r"Gammagard",
            r"Flebogamma",
            r"Bivigam",
            r"Panzyga",
            r"Gammaplex",
            r"Asceniv",
            r"Gammaked",
        ),
        False,
    ),
)

_PATTERNS: tuple[tuple[Category, re.Pattern[str]], ...] = tuple(
    (category, re.compile(rf"\b(?:{'|'.join(words)})\b", 0 if exact else re.IGNORECASE))
    for category, words, exact in _WORDS
)


def relevant_code(system: str, code: str) -> Match | None:
    """An MS-family match by the code alone: ICD-10 G35*, ICD-11 8A40*."""
    normal = code.strip().upper()
    if system in ICD10_SYSTEMS and normal.startswith("G35"):
        return Match("ICD-10 G35", Category.MS_FAMILY)
    if system == _ICD11 and normal.startswith("8A40"):
        return Match("ICD-11 8A40", Category.MS_FAMILY)
    return None


@functools.lru_cache(maxsize=8192)  # the same few displays recur over a whole export
def relevant(kind: str, *texts: str | None) -> Match | None:
    """The first relevant word (leftmost) in the first of `texts` that has one (a coding's
    display, then its concept's text) for a code seen in a resource of `kind`, or None."""
    for text in texts:
        if not text:
            continue
        found = [
            (hit.start(), category, hit.group(0))
            for category, pattern in _PATTERNS
            if category is Category.MS_FAMILY or kind in _DRUG_KINDS
            for hit in [pattern.search(text)]
            if hit is not None
        ]
        if found:
            _, category, word = min(found, key=lambda hit: hit[0])
            return Match(" ".join(word.split()), category)
    return None
