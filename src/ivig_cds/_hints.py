"""'Did you mean ...?' for misspelt names, shared by every validator that reports one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """`"; did you mean 'x'?"` for the closest option (a prefix counts as close), else `""`."""
    choices = sorted(options)
    prefixed = [o for o in choices if o.startswith(word) and word]
    match = prefixed[:1] or difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean '{match[0]}'?" if match else ""
