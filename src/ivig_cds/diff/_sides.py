"""The two knowledge bases compared: each loaded, compiled once, and named for a reader.

`Side.dirs` (the rules and evidence folders, None for the shipped ones) is all a worker process
needs to build its own evaluator through `ivig_cds._records.evaluator_for`, the cache `batch`
and the population audit use, so every engine evaluates as they do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ivig_cds._errors import KnowledgeBaseError
from ivig_cds._evaluate import Evaluator
from ivig_cds._knowledge_base import KnowledgeBase
from ivig_cds._loader import load_knowledge_base
from ivig_cds._record_windows import RECORD_WINDOWS_NAME, RecordWindows, load_record_windows
from ivig_cds._records import evaluator_for

Dirs = tuple[Path | None, Path | None]
"""A knowledge base's rules and evidence folders; (None, None) for the shipped one."""


class SideError(KnowledgeBaseError):
    """One side's knowledge base is invalid; the message names the side and every issue."""

    def __init__(self, role: str, error: KnowledgeBaseError) -> None:
        self.role = role
        super().__init__(error.issues)

    def __str__(self) -> str:
        issues = [str(issue) for issue in self.issues]
        if len(issues) == 1:
            return f"the {self.role} knowledge base is invalid: {issues[0]}"
        listed = "".join(f"\n  {issue}" for issue in issues)
        return f"the {self.role} knowledge base is invalid ({len(issues)} errors):{listed}"


@dataclass(frozen=True)
class Side:
    """One knowledge base of the comparison.

    Attributes:
        role: "old" (the one answers are compared from) or "new".
        dirs: its folders, for worker processes.
        kb: the loaded knowledge base.
        evaluator: compiled once for this process (forked workers inherit it).
        windows: its record windows, which the FHIR adapter reads.
    """

    role: str
    dirs: Dirs
    kb: KnowledgeBase
    evaluator: Evaluator
    windows: RecordWindows

    @property
    def label(self) -> str:
        """How a reader tells the sides apart: the version, and the hash's start."""
        return f"{self.kb.version} ({self.kb.content_hash.removeprefix('sha256:')[:12]})"


def load_side(role: str, rules: Path | None, evidence: Path | None) -> Side:
    """Load and compile one side's knowledge base.

    Raises:
        SideError: the knowledge base is invalid (every issue at path:line:column).
        EngineError: durable_rules rejected the compiled rules.
    """
    dirs: Dirs = (rules, evidence)
    try:
        kb = load_knowledge_base(rules, evidence)
        windows = load_record_windows(kb.rules_dir / RECORD_WINDOWS_NAME)
    except KnowledgeBaseError as exc:
        raise SideError(role, exc) from None
    return Side(role, dirs, kb, evaluator_for(rules, evidence, kb), windows)


def same_knowledge_base(old: Side, new: Side) -> bool:
    """Both sides hold the same content (their hashes cover rules, windows and evidence)."""
    return old.kb.content_hash == new.kb.content_hash
