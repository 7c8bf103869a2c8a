"""The comparison for programs: one JSON document, or NDJSON with one changed item per line.

Both keep the codes (tiers, field names, rule ids) for auditors and scripts; the text and HTML
forms say them in words. Items are written group by group, each group in input order, read
back from the tally's files, so neither form holds a population in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ivig_cds.diff._sides import Side
from ivig_cds.diff._tally import Tally


def side_json(side: Side) -> dict[str, Any]:
    """Which knowledge base a side is: name, version, content hash and its folders."""
    shipped = side.dirs == (None, None)
    return {
        "name": side.kb.manifest.name,
        "version": side.kb.version,
        "content_hash": side.kb.content_hash,
        "rules": None if shipped else str(side.kb.rules_dir),
        "evidence": None if shipped else str(side.kb.evidence_dir),
    }


def head_json(
    tally: Tally, old: Side, new: Side, *, same: bool, as_of: str | None
) -> dict[str, Any]:
    """Everything but the items: the sides, the date, the counts and matrices, the errors."""
    return {
        "old": side_json(old),
        "new": side_json(new),
        "same_knowledge_base": same,
        "as_of": as_of,
        "units": tally.summary(),
        "error_count": tally.error_count,
        "errors": [e.to_json() for e in tally.errors],
    }


def render_json(
    tally: Tally, old: Side, new: Side, *, same: bool, as_of: str | None = None
) -> Iterator[str]:
    """One JSON document, in pieces: the head, then `groups`, each with its `items`."""
    head = json.dumps(head_json(tally, old, new, same=same, as_of=as_of), indent=2)
    yield head[:-2] + ',\n  "groups": ['
    for i, group in enumerate(tally.ordered_groups()):
        body = json.dumps(group.to_json(), separators=(",", ":"))
        yield ("," if i else "") + f'\n    {body[:-1]},"items":['
        for j, record in enumerate(tally.records(group)):
            yield ("," if j else "") + "\n      " + json.dumps(record, separators=(",", ":"))
        yield "]}"
    yield "\n  ]\n}\n"


def render_ndjson(tally: Tally) -> Iterator[str]:
    """One changed patient or dose per line, grouped by transition."""
    for group in tally.ordered_groups():
        for record in tally.records(group):
            yield json.dumps(record, separators=(",", ":")) + "\n"
