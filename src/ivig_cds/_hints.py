"""'Did you mean ...?' for misspelt names, shared by every validator that reports one.

Names are compared by their spelling (difflib's ratio). Numbered identifiers are not: a PMID
is typed, not spelt, and two unrelated PMIDs share the `pmid-` prefix and a few digits, which
difflib takes for closeness (`pmid-99999999` looked like `pmid-15949496`). An identifier with
a number of four digits or more is matched only to one of its own kind (the same text before
its first digit) that differs by at most two typed characters (a digit wrong, missing, extra,
or two neighbours swapped), or to the one whose number it is (`12453069` for `pmid-12453069`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

_NUMBERED = re.compile(r"[0-9]{4,}")
_KIND = re.compile(r"^[^0-9]*")
MAX_TYPOS = 2


def closest(word: str, options: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The option `word` most likely misspells, or None when none is close enough.

    A name: an option it begins (a prefix counts as close), else difflib's closest above
    `cutoff`. A numbered identifier: an option of its kind within `MAX_TYPOS` typed characters.
    """
    choices = sorted(options)
    if _NUMBERED.search(word):
        return _closest_number(word, choices)
    prefixed = [o for o in choices if o.startswith(word) and word]
    match = prefixed[:1] or difflib.get_close_matches(word, choices, n=1, cutoff=cutoff)
    return match[0] if match else None


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """`"; did you mean 'x'?"` for the option `word` most likely misspells (see `closest`),
    else `""`."""
    match = closest(word, options)
    return f"; did you mean '{match}'?" if match is not None else ""


def _closest_number(word: str, choices: list[str]) -> str | None:
    number = _NUMBERED.findall(word)
    same = [option for option in choices if _NUMBERED.findall(option) == number]
    if len(same) == 1:
        return same[0]
    kind = _kind(word)
    scored = [
        (typos(word.casefold(), option.casefold()), option)
        for option in choices
        if _kind(option) == kind
    ]
    near = [(score, option) for score, option in scored if score <= MAX_TYPOS]
    return min(near)[1] if near else None


def _kind(name: str) -> str:
    match = _KIND.match(name.casefold())
    return match.group(0) if match else ""


def typos(a: str, b: str) -> int:
    """How many typed characters turn `a` into `b`: one per character replaced, added or
    left out, and one per two neighbours swapped (the optimal string alignment distance)."""
    previous: list[int] = []
    row = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        before, previous, row = previous, row, [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(
                previous[j] + 1,
                row[j - 1] + 1,
                previous[j - 1] + (a[i - 1] != b[j - 1]),
            )
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], before[j - 2] + 1)
    return row[len(b)]
