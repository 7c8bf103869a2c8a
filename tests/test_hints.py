"""'Did you mean ...?' (_hints.py): names by spelling, numbered identifiers by typed digits."""

from __future__ import annotations

import pytest

from ivig_cds import KnowledgeBase
from ivig_cds._hints import closest, did_you_mean, typos


@pytest.mark.parametrize(
    ("word", "hint"),
    [
        ("pmid-99999999", ""),  # another number: it used to suggest pmid-15949496
        ("pmid-12345678", ""),
        ("pmid-12453096", "; did you mean 'pmid-12453069'?"),  # two digits swapped
        ("pmid-1245306", "; did you mean 'pmid-12453069'?"),  # a digit left out
        ("pmid-124530699", "; did you mean 'pmid-12453069'?"),  # a digit too many
        ("pmid-15451223", "; did you mean 'pmid-15451222'?"),  # a digit wrong
        ("PMID-15451222", "; did you mean 'pmid-15451222'?"),  # case
        ("12453069", "; did you mean 'pmid-12453069'?"),  # the bare PMID
        ("seed-15451222", "; did you mean 'pmid-15451222'?"),  # the same number, another kind
        ("seed-15451221", ""),  # another kind and another number
    ],
)
def test_an_evidence_id_is_suggested_only_for_a_typo(
    kb: KnowledgeBase, word: str, hint: str
) -> None:
    """Against the shipped registry: a mistyped PMID gets its entry, an unknown one nothing."""
    assert did_you_mean(word, kb.evidence) == hint


def test_names_are_still_matched_by_spelling() -> None:
    """Field and value names keep difflib's matching and the prefix rule."""
    fields = ["ms_phenotype", "pregnancy_status", "edss"]
    assert did_you_mean("ms_phenotpye", fields) == "; did you mean 'ms_phenotype'?"
    assert did_you_mean("pregnancy", fields) == "; did you mean 'pregnancy_status'?"
    assert did_you_mean("weight", fields) == ""
    assert closest("C99", ["C09", "K1"], cutoff=0.5) == "C09"


def test_typos_count_each_keystroke() -> None:
    """One per character replaced, added or left out, and one per neighbours swapped."""
    assert typos("12453069", "12453069") == 0
    assert typos("12453096", "12453069") == 1
    assert typos("1245306", "12453069") == 1
    assert typos("99999999", "15949496") == 5
    assert typos("", "abc") == 3
