"""`evaluate --fhir`: a FHIR R4 Bundle (or CDS Hooks prefetch) in, the result and how the record
was read out.

The FHIR adapter says what it made of the record: entries that disagree (each leaves its fact
unknown, as the CDS Hooks service shows them), notes on entries read or set aside, and codes the
tables do not hold. A clinician needs them to see why a fact is unknown, so every format shows
them beside the result. A file that is not FHIR (a patient file, a CDS Hooks request) is named
as what it is, with the command to use.
"""

# ruff: noqa: PLC0415
# (the FHIR adapter loads only when --fhir is given, so `--help` starts fast)

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ivig_cds._evaluate import Evaluator
from ivig_cds._patient import PatientContext
from ivig_cds._recommendation import Recommendation
from ivig_cds._wording import record_sections
from ivig_cds.cli import common
from ivig_cds.cli.patient_files import (
    MAX_FHIR_BYTES,
    STDIN,
    PatientFileError,
    PatientSource,
    Problem,
    read_document,
)

if TYPE_CHECKING:
    from ivig_cds.fhir import SiteMaps


@dataclass(frozen=True, slots=True)
class RecordReading:
    """What the FHIR adapter said about one record (`FhirMapping`'s account, as text)."""

    conflicts: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    unmapped: tuple[str, ...] = ()
    site_codes: dict[str, Any] | None = None  # the site code maps in force (`--codes`)

    def sections(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Under plain headings, for text, Markdown and HTML; empty when there is nothing."""
        notes = self.notes
        if self.site_codes is not None:
            files = ", ".join(self.site_codes["files"])
            notes = (f"Site code maps in force: {files} ({self.site_codes['hash']})", *notes)
        return record_sections(conflicts=self.conflicts, notes=notes, unmapped=self.unmapped)

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "notes": list(self.notes),
            "conflicts": list(self.conflicts),
            "unmapped": list(self.unmapped),
        }
        if self.site_codes is not None:
            document["site_codes"] = self.site_codes
        return document


Evaluated = tuple[Recommendation, RecordReading | None]
Runner = Callable[[PatientSource, Callable[[], bytes]], Evaluated]


def fhir_runner(evaluator: Evaluator, site_maps: SiteMaps | None = None) -> Runner:
    """Read each file as FHIR, map it with the knowledge base's record windows (and the site
    code maps, if any), evaluate it."""
    try:
        from ivig_cds.fhir import FhirDataError, patient_from_fhir
    except ModuleNotFoundError as exc:
        if exc.name not in ("ivig_cds.fhir", "fhir", "fhir.resources"):
            raise
        common.fail(
            "--fhir is not available in this installation "
            f"(module {exc.name} is missing); evaluate patient-context files without --fhir"
        )
    from ivig_cds.cli.knowledge import record_windows

    windows = record_windows(evaluator.knowledge_base)
    codes = common.code_tables(site_maps)
    described = site_maps.describe() if site_maps is not None else None

    def run(source: PatientSource, stdin: Callable[[], bytes]) -> Evaluated:
        document = read_document(source, stdin, max_bytes=MAX_FHIR_BYTES)
        refuse_other_documents(source, document.data)
        try:
            mapping = patient_from_fhir(document.data, windows=windows, codes=codes)
        except FhirDataError as exc:
            raise PatientFileError(
                source.name, "is not a usable FHIR Bundle", [Problem(p) for p in exc.problems]
            ) from None
        reading = RecordReading(
            conflicts=tuple(str(c) for c in mapping.conflicts),
            notes=mapping.notes,
            unmapped=mapping.unmapped,
            site_codes=described,
        )
        return evaluator.evaluate(mapping.patient), reading

    return run


_PATIENT_FIELDS = frozenset(PatientContext.model_fields)


def refuse_other_documents(source: PatientSource, data: object) -> None:
    """A patient file or a CDS Hooks request given to --fhir: say what it is and what to do.

    Raises:
        PatientFileError: `data` is not FHIR JSON (a resource, or a prefetch of resources).
    """
    if not isinstance(data, Mapping):
        raise PatientFileError(
            source.name, "is not a FHIR Bundle", [Problem("expected a JSON object")]
        )
    if "resourceType" in data:
        return
    if "hook" in data and "prefetch" in data:
        hint = "send it to the CDS Hooks service (ivig-cds serve), or give --fhir its prefetch"
        raise PatientFileError(
            source.name, "is a CDS Hooks request, not a FHIR Bundle", [Problem(hint)]
        )
    if _is_patient_file(data):
        shown = source.name if source.path is not None else STDIN
        hint = f"drop --fhir to evaluate it: ivig-cds evaluate {shown}"
        raise PatientFileError(source.name, "is a patient file, not a FHIR record", [Problem(hint)])


def _is_patient_file(data: Mapping[Any, object]) -> bool:
    """Patient-context fields, and no FHIR resource among the values (a prefetch holds some)."""
    resources = any(isinstance(v, Mapping) and "resourceType" in v for v in data.values())
    return not resources and any(key in _PATIENT_FIELDS for key in data)
