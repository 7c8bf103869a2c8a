"""The public surface is deliberate: adding or removing a name is a visible change."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import ivig_cds


def test_public_names_are_pinned() -> None:
    """`ivig_cds.__all__` is exactly this sorted list, and every name in it exists."""
    assert ivig_cds.__all__ == sorted(ivig_cds.__all__)
    assert ivig_cds.__all__ == [
        "Caution", "CautionRule", "Certainty", "CertaintyLevel", "Citation", "ConclusionRule",
        "EngineError", "EngineUnavailableError", "Evaluator", "EvidenceEntry", "Fact",
        "FhirDataError", "FhirMapping",
        "Finding", "FirstLineByClass", "FirstLineStatus",
        "IntendedUse", "InvalidPatientError", "IvigCdsError", "KnowledgeBase",
        "KnowledgeBaseError", "KnowledgeBaseRef", "KnowledgeGapError", "KnowledgeIssue",
        "MSPhenotype", "PatientContext", "PregnancyStatus", "Question", "Recommendation",
        "RecordEvaluator",
        "Sex", "StudyDesign", "Tier", "__version__", "default_evaluator", "evaluate",
        "evaluate_fhir", "evaluate_records", "load_knowledge_base", "parse_patient",
        "patient_from_fhir",
    ]  # fmt: skip
    for name in ivig_cds.__all__:
        assert hasattr(ivig_cds, name), name


def test_only_the_engine_module_imports_durable() -> None:
    """durable_rules is imported by _engine.py and nowhere else in the package."""
    package = Path(ivig_cds.__file__).parent
    statement = re.compile(r"^\s*(?:import durable|from durable)", re.MULTILINE)
    importers = sorted(
        p.name for p in package.rglob("*.py") if statement.search(p.read_text(encoding="utf-8"))
    )
    assert importers == ["_engine.py"]


@pytest.mark.parametrize(
    ("name", "module"),
    [("evaluate_fhir", "fhir.resources"), ("RecordEvaluator", "ivig_cds._records")],
)
def test_heavy_parts_are_loaded_only_on_use(name: str, module: str) -> None:
    """Importing ivig_cds loads neither the FHIR adapter nor the record evaluators; using does."""
    code = (
        f"import sys, ivig_cds; before = {module!r} in sys.modules;"
        f"ivig_cds.{name}; print(before, {module!r} in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_the_record_evaluator_needs_no_process_pool() -> None:
    """A Spark or Dask worker using RecordEvaluator loads neither the batch runner nor a pool."""
    code = (
        "import sys, ivig_cds; ivig_cds.RecordEvaluator;"
        "print('ivig_cds._batch' in sys.modules, 'concurrent.futures' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
