"""The validated knowledge base: rules, evidence and the identity that results cite."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ivig_cds._evidence import EvidenceEntry
from ivig_cds._rules import CautionRule, ConclusionRule, Manifest


@dataclass(frozen=True)
class KnowledgeBase:
    """Everything `rules/` and `evidence/` say, already cross-checked: if it exists, it is valid."""

    manifest: Manifest
    conclusions: tuple[ConclusionRule, ...]
    cautions: tuple[CautionRule, ...]
    evidence: Mapping[str, EvidenceEntry]
    content_hash: str
    rules_dir: Path
    evidence_dir: Path
    sources: Mapping[str, Path] = field(default_factory=dict)  # rule or evidence id -> its file

    @property
    def version(self) -> str:
        return self.manifest.version

    def rule(self, rule_id: str) -> ConclusionRule | CautionRule:
        for conclusion in self.conclusions:
            if conclusion.id == rule_id:
                return conclusion
        for caution in self.cautions:
            if caution.id == rule_id:
                return caution
        raise KeyError(rule_id)

    def cited_by(self, evidence_id: str) -> tuple[str, ...]:
        """Ids of the rules that cite an evidence entry, in knowledge-base order."""
        return tuple(r.id for r in (*self.conclusions, *self.cautions) if evidence_id in r.evidence)
