"""ivig-cds: does IVIG have a role for this multiple-sclerosis patient, and on what evidence?

>>> from ivig_cds import evaluate
>>> evaluate({"ms_phenotype": "SPMS"}).tier
<Tier.NOT_RECOMMENDED: 'not_recommended'>
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ivig_cds._errors import (
    EngineError,
    EngineUnavailableError,
    InvalidPatientError,
    IvigCdsError,
    KnowledgeBaseError,
    KnowledgeGapError,
    KnowledgeIssue,
)
from ivig_cds._evaluate import Evaluator, default_evaluator, evaluate
from ivig_cds._evidence import EvidenceEntry
from ivig_cds._knowledge_base import KnowledgeBase
from ivig_cds._loader import load_knowledge_base
from ivig_cds._patient import FirstLineByClass, PatientContext
from ivig_cds._patient_input import parse_patient
from ivig_cds._recommendation import (
    Caution,
    Citation,
    Fact,
    Finding,
    KnowledgeBaseRef,
    Question,
    Recommendation,
)
from ivig_cds._rules import CautionRule, Certainty, ConclusionRule
from ivig_cds._vocabulary import (
    CertaintyLevel,
    FirstLineStatus,
    IntendedUse,
    MSPhenotype,
    PregnancyStatus,
    Sex,
    StudyDesign,
    Tier,
)

if TYPE_CHECKING:
    from ivig_cds._records import RecordEvaluator, evaluate_records
    from ivig_cds.fhir import FhirDataError, FhirMapping, evaluate_fhir, patient_from_fhir

__version__ = "0.1.0"

# The FHIR adapter loads fhir.resources (slow to import) and the record evaluators serve batch
# runs only: each is imported on first use only.
_LAZY = {
    "FhirDataError": "fhir",
    "FhirMapping": "fhir",
    "evaluate_fhir": "fhir",
    "patient_from_fhir": "fhir",
    "RecordEvaluator": "_records",
    "evaluate_records": "_records",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"ivig_cds.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'ivig_cds' has no attribute {name!r}")


__all__ = [
    "Caution",
    "CautionRule",
    "Certainty",
    "CertaintyLevel",
    "Citation",
    "ConclusionRule",
    "EngineError",
    "EngineUnavailableError",
    "Evaluator",
    "EvidenceEntry",
    "Fact",
    "FhirDataError",
    "FhirMapping",
    "Finding",
    "FirstLineByClass",
    "FirstLineStatus",
    "IntendedUse",
    "InvalidPatientError",
    "IvigCdsError",
    "KnowledgeBase",
    "KnowledgeBaseError",
    "KnowledgeBaseRef",
    "KnowledgeGapError",
    "KnowledgeIssue",
    "MSPhenotype",
    "PatientContext",
    "PregnancyStatus",
    "Question",
    "Recommendation",
    "RecordEvaluator",
    "Sex",
    "StudyDesign",
    "Tier",
    "__version__",
    "default_evaluator",
    "evaluate",
    "evaluate_fhir",
    "evaluate_records",
    "load_knowledge_base",
    "parse_patient",
    "patient_from_fhir",
]
