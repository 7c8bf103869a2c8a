"""The public surface is deliberate: adding or removing a name is a visible change."""

from __future__ import annotations

from pathlib import Path

import ivig_cds


def test_public_names_are_pinned() -> None:
    """`ivig_cds.__all__` is exactly this sorted list, and every name in it exists."""
    assert ivig_cds.__all__ == sorted(ivig_cds.__all__)
    assert ivig_cds.__all__ == [
        "Caution", "CautionRule", "Certainty", "CertaintyLevel", "Citation", "ConclusionRule",
        "EngineError", "Evaluator", "EvidenceEntry", "Fact", "Finding", "FirstLineStatus",
        "IntendedUse", "InvalidPatientError", "IvigCdsError", "KnowledgeBase",
        "KnowledgeBaseError", "KnowledgeBaseRef", "KnowledgeGapError", "KnowledgeIssue",
        "MSPhenotype", "PatientContext", "PregnancyStatus", "Question", "Recommendation", "Sex",
        "StudyDesign", "Tier", "__version__", "default_evaluator", "evaluate",
        "load_knowledge_base", "parse_patient",
    ]  # fmt: skip
    for name in ivig_cds.__all__:
        assert hasattr(ivig_cds, name), name


def test_only_the_engine_module_imports_durable() -> None:
    """durable_rules is imported by _engine.py and nowhere else in the package."""
    package = Path(ivig_cds.__file__).parent
    importers = sorted(
        p.name
        for p in package.rglob("*.py")
        if "durable" in p.read_text(encoding="utf-8")
        and "import durable" in p.read_text(encoding="utf-8")
    )
    assert importers == ["_engine.py"]
