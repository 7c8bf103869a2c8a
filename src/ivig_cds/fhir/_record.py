"""What the mapping has learned so far about one patient, shared by the readers of each part
of the record (conditions, medications, observations): facts with the resources behind them,
conflicts, notes and unmapped resources."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.medication import Medication
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.resource import Resource

from ivig_cds._loader import default_dirs
from ivig_cds._record_windows import RECORD_WINDOWS_NAME, RecordWindows, load_record_windows
from ivig_cds.fhir._codes import CodeEntry, CodeTables, SiteCodeEntry


@functools.cache
def default_record_windows() -> RecordWindows:
    """The shipped knowledge base's `record-windows.yaml`, read once."""
    return load_record_windows(default_dirs()[0] / RECORD_WINDOWS_NAME)


@dataclass(frozen=True, slots=True)
class FhirConflict:
    """Resources that give one patient field incompatible values; the field stays unknown."""

    field: str
    resources: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class Dated:
    """A value read from a resource, with the date it holds for."""

    value: object
    when: dt.date | None
    source: str


class Record:
    """The resources of one patient and the facts read from them so far."""

    def __init__(
        self,
        resources: list[Resource],
        as_of: dt.date,
        codes: CodeTables,
        windows: RecordWindows | None = None,
    ) -> None:
        self.resources = resources
        self.as_of = as_of
        self.codes = codes
        self.windows = windows or default_record_windows()
        self.facts: dict[str, object] = {}
        self.sources: dict[str, tuple[str, ...]] = {}
        self.conflicts: list[FhirConflict] = []
        self.notes: list[str] = []
        self.unmapped: list[str] = []
        self.ms_refs: list[str] = []
        self.site_codes: set[str] = set()  # how site-mapped codes were read, for the notes
        self.medications = {
            f"#{m.id}" if m.id else "": m
            for r in resources
            for m in (getattr(r, "contained", None) or ())
            if isinstance(m, Medication)
        }
        self.medications.update(
            {f"Medication/{r.id}": r for r in resources if isinstance(r, Medication) and r.id}
        )

    def of(self, kind: type[Resource]) -> Iterator[Any]:
        return (r for r in self.resources if isinstance(r, kind))

    def set(self, name: str, value: object, sources: Iterable[str]) -> None:
        self.facts[name] = value
        self.sources[name] = tuple(sorted(set(sources)))

    def conflict(self, name: str, sources: Iterable[str], message: str) -> None:
        refs = tuple(sorted(set(sources)))
        self.conflicts.append(FhirConflict(field=name, resources=refs, message=message))

    def match(self, group: str, concepts: Iterable[CodeableConcept | None]) -> list[CodeEntry]:
        """The table entries of `group` that the codings of `concepts` name."""
        found = []
        for concept in concepts:
            for coding in (concept.coding or ()) if concept is not None else ():
                entry = self.codes.lookup(group, coding.system, coding.code)
                if entry is not None:
                    found.append(entry)
                    if isinstance(entry, SiteCodeEntry):
                        self.site_codes.add(
                            f"{entry.system}|{entry.code} read as "
                            f"{_words(entry.group)}: {_words(entry.value)} ({entry.verified})"
                        )
        return found

    def drug_concepts(self, resource: Any) -> list[CodeableConcept | None]:
        """The medication codes of a MedicationRequest or MedicationStatement, including those
        of a referenced or contained Medication and its ingredients."""
        concepts: list[CodeableConcept | None] = [resource.medicationCodeableConcept]
        reference: Reference | None = resource.medicationReference
        medication = self.medications.get(reference.reference or "") if reference else None
        if medication is not None:
            concepts.append(medication.code)
            concepts.extend(i.itemCodeableConcept for i in medication.ingredient or ())
        return concepts


def code_in(concept: CodeableConcept | None, system: str) -> str | None:
    """The first code of `system` in `concept`, if any."""
    for coding in (concept.coding or ()) if concept is not None else ():
        if coding.system == system and coding.code:
            return str(coding.code)
    return None


def date_of(*candidates: object) -> dt.date | None:
    """The first of `candidates` that is a date or datetime, as a date."""
    for value in candidates:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
    return None


def _words(name: str) -> str:
    """A table's group or value in words ("ms diagnosis", "ivig") for a clinician's note."""
    return name.replace("_", " ")
