"""Exceptions raised by ivig-cds.

    IvigCdsError
    ├── InvalidPatientError (also ValueError)   the patient context is inconsistent or malformed
    ├── FhirDataError (also ValueError)         FHIR input is invalid or contradicts itself
    │                                           (defined in _fhir.py, beside its only user)
    ├── FhirCodeTableError                      a FHIR code table is invalid (fhir/_codes.py)
    │   └── SiteMapError                        a site code map (--codes) is invalid: every
    │                                           problem at file:line (fhir/_site_maps.py)
    ├── KnowledgeBaseError                      rules/ or evidence/ failed to load or validate
    └── EngineError                             the rule engine failed while evaluating
        ├── EngineUnavailableError              durable-rules cannot be loaded on this Python
        └── KnowledgeGapError                   no rule settles the question for this patient

No message carries a patient record: at most the one offending value is quoted.
"""

from __future__ import annotations

from dataclasses import dataclass


class IvigCdsError(Exception):
    """Root of every error ivig-cds raises on purpose."""


class InvalidPatientError(IvigCdsError, ValueError):
    """The patient context failed validation.

    `problems` holds one line per problem; `locations[i]` is the path of the input value that
    `problems[i]` is about (e.g. `("edss",)` or `("thromboembolic_risk_factors", 0)`), or `()`
    when the problem concerns the input as a whole.
    """

    def __init__(
        self,
        problems: list[str],
        *,
        source: str | None = None,
        locations: list[tuple[str | int, ...]] | None = None,
    ) -> None:
        self.problems = problems
        self.locations = locations if locations is not None else [() for _ in problems]
        self.source = source
        where = f"{source}: " if source else ""
        lines = "\n".join(f"  - {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{where}invalid patient context ({len(problems)} {noun}):\n{lines}")


@dataclass(frozen=True, slots=True)
class KnowledgeIssue:
    """One problem found in a knowledge-base file, located as precisely as the YAML allows."""

    path: str
    line: int | None
    column: int | None
    message: str

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


class KnowledgeBaseError(IvigCdsError):
    """The knowledge base is invalid; every issue found is listed, not only the first."""

    def __init__(self, issues: list[KnowledgeIssue]) -> None:
        self.issues = issues
        noun = "error" if len(issues) == 1 else "errors"
        body = "\n".join(str(i) for i in issues)
        super().__init__(f"knowledge base is invalid ({len(issues)} {noun}):\n{body}")


class EngineError(IvigCdsError):
    """The rule engine failed; the message names the stage, never the patient."""


class EngineUnavailableError(EngineError):
    """durable-rules is missing or does not load: the message names the Python and what to do."""


class KnowledgeGapError(EngineError):
    """No rule of the knowledge base settles the question asked: a defect in the rules."""
