"""Medication resources shared by many patients' orders: indexed while the export is staged,
then joined to each patient whose MedicationRequest, MedicationStatement or
MedicationAdministration names one (`medicationReference: Medication/<id>`).

Many EHRs export the drug of an order as a separate Medication, not as a code on the order;
without the join, an IVIG dose recorded that way would not be seen at all. Only Medications
naming a drug of the code tables are kept (the mapping reads nothing else), so the index
grows with the number of such Medications, not with the export. Medication files come before
the orders' files (`export_files` sorts by type: `Medication` < `MedicationAdministration`),
so every Medication is indexed before the first order that could refer to it.

A Medication is read once here and counted once: used when at least one order refers to it,
skipped when none does or when it names no drug the audit reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ivig_cds.fhir import CodeTables, FhirDataError, for_mapping


@dataclass
class _Entry:
    file_index: int
    line: int
    offset: int
    size: int
    text: str | None
    referenced: bool = False


class MedicationIndex:
    """`Medication/<id>` to where its line is, for the Medications the mapping can read."""

    def __init__(self, *, with_text: bool, codes: CodeTables | None = None) -> None:
        self._codes = codes
        self._entries: dict[str, _Entry] = {}
        self._with_text = with_text
        self._unread: Counter[int] = Counter()  # per file: Medications naming no drug read

    def add(
        self, rid: str, data: dict[str, Any], text: str, where: tuple[int, int, int, int]
    ) -> str | None:
        """Index one Medication line (`where`: file index, line, byte offset and size); the
        reason it is an error, if it is one."""
        try:
            readable = for_mapping(data, self._codes) is not None
        except FhirDataError as exc:
            problems = "; ".join(p.removeprefix("input: ") for p in exc.problems)
            return f"invalid FHIR: {problems}"
        if rid in self._entries:
            return f"Medication/{rid} appears twice in the export"
        if not readable:
            self._unread[where[0]] += 1
            return None
        self._entries[rid] = _Entry(*where, text if self._with_text else None)
        return None

    def referred(self, rid: str) -> tuple[int, int, int, int, str | None] | None:
        """Where the Medication an order refers to is (file index, line, offset, size, text),
        if it is one the mapping reads."""
        entry = self._entries.get(rid)
        if entry is None:
            return None
        entry.referenced = True
        return entry.file_index, entry.line, entry.offset, entry.size, entry.text

    def counts(self) -> Iterator[tuple[int, int, int]]:
        """`(file index, used, skipped)` per Medication file, for every line indexed or read
        past."""
        used: Counter[int] = Counter(e.file_index for e in self._entries.values() if e.referenced)
        unused = Counter(e.file_index for e in self._entries.values() if not e.referenced)
        for index in sorted(set(used) | set(unused) | set(self._unread)):
            yield index, used[index], unused[index] + self._unread[index]
