"""The coverage report as text, CSV and JSON, and the starter ConceptMap of its unmapped codes."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from ivig_cds.codes._coverage import CodeUse, Coverage, kinds_of
from ivig_cds.fhir import CONCEPT_SYSTEM

"""The target system of a site ConceptMap; its codes are `<group>/<value>` of the tables."""

_KIND_TITLES = {
    "condition": "Conditions",
    "medication": "Medications (orders, statements, administrations, Medication resources)",
    "observation": "Observations (codes and coded values)",
    "allergy": "Allergies and intolerances (codes and reaction substances)",
    "procedure": "Procedures",
}

CSV_COLUMNS = (
    "status",
    "kind",
    "system",
    "code",
    "display",
    "patients",
    "resources",
    "mapped_by_other_code",
    "matched_word",
    "matched_category",
    "group",
    "value",
    "table",
    "verified",
)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _coding(use: CodeUse) -> str:
    shown = f"{use.system or '(no system)'}|{use.code}"
    return f'{shown}  "{use.display}"' if use.display else shown


def render_text(coverage: Coverage) -> str:
    """Unmapped relevant codes first, by kind, then mapped codes with their tables."""
    lines = [
        f"Code coverage of {_count(len(coverage.inputs), 'input')}: "
        f"{_count(coverage.resources, 'resource')} of the types read, "
        f"{_count(coverage.patients, 'patient')} referred to.",
        *_site_codes(coverage),
        "",
        f"Relevant codes the tables do not map ({len(coverage.unmapped)}):",
    ]
    if not coverage.unmapped:
        lines.append("  none")
    for kind, uses in kinds_of(coverage.unmapped).items():
        lines.append(f"  {_KIND_TITLES[kind]}")
        for use in uses:
            assert use.matched is not None  # every listed unmapped code matched a word
            also = (
                f"; {use.mapped_by_other_code} map through another code"
                if use.mapped_by_other_code
                else ""
            )
            lines.append(f"    {_coding(use)}")
            lines.append(
                f"      {_count(use.patients, 'patient')}, {_count(use.resources, 'resource')}"
                f"{also}; matched '{use.matched.word}' ({use.matched.category})"
            )
    lines += ["", f"Mapped codes ({len(coverage.mapped)}):"]
    if not coverage.mapped:
        lines.append("  none")
    for kind, uses in kinds_of(coverage.mapped).items():
        lines.append(f"  {_KIND_TITLES[kind]}")
        for use in uses:
            targets = ", ".join(
                f"{m.group}/{m.value} ({m.table or 'not a shipped table'})" for m in use.mappings
            )
            lines.append(f"    {_coding(use)}")
            lines.append(
                f"      {_count(use.patients, 'patient')}, {_count(use.resources, 'resource')}"
                f" -> {targets}"
            )
    lines += [
        "",
        f"Other unmapped codes: {coverage.other_unmapped:,} (no relevant word in their display "
        "or text; not listed).",
    ]
    if coverage.problems:
        lines += ["", f"Not read ({len(coverage.problems)}):"]
        lines += [f"  {problem}" for problem in coverage.problems]
    return "\n".join(lines) + "\n"


def _site_codes(coverage: Coverage) -> list[str]:
    if coverage.site_codes is None:
        return []
    files = ", ".join(coverage.site_codes["files"])
    return [f"Site code maps in force: {files} ({coverage.site_codes['hash']})."]


def render_csv(coverage: Coverage) -> str:
    """One row per unmapped relevant code, then one per mapping of each mapped code."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for use in coverage.unmapped:
        assert use.matched is not None
        writer.writerow(
            [*_csv_head("unmapped", use), use.matched.word, use.matched.category, "", "", "", ""]
        )
    for use in coverage.mapped:
        for m in use.mappings:
            writer.writerow([*_csv_head("mapped", use), "", "", m.group, m.value, m.table or "",
                             m.verified])  # fmt: skip
    return out.getvalue()


def _csv_head(status: str, use: CodeUse) -> list[object]:
    return [status, use.kind, use.system, use.code, use.display or "", use.patients,
            use.resources, use.mapped_by_other_code]  # fmt: skip


def render_json(coverage: Coverage) -> str:
    """One JSON document: inputs, counts, `unmapped`, `mapped`, `other_unmapped`, `problems`,
    and `site_codes` with site code maps."""
    document: dict[str, Any] = {
        "inputs": list(coverage.inputs),
        "resources": coverage.resources,
        "patients": coverage.patients,
        "unmapped": [_json_use(use) for use in coverage.unmapped],
        "mapped": [_json_use(use) for use in coverage.mapped],
        "other_unmapped": coverage.other_unmapped,
        "problems": list(coverage.problems),
    }
    if coverage.site_codes is not None:
        document["site_codes"] = dict(coverage.site_codes)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _json_use(use: CodeUse) -> dict[str, Any]:
    found: dict[str, Any] = {
        "kind": use.kind,
        "system": use.system,
        "code": use.code,
        "display": use.display,
        "patients": use.patients,
        "resources": use.resources,
        "mapped_by_other_code": use.mapped_by_other_code,
    }
    if use.matched is not None:
        found["matched"] = {"word": use.matched.word, "category": str(use.matched.category)}
    if use.mappings:
        found["mappings"] = [
            {"group": m.group, "value": m.value, "table": m.table, "verified": m.verified}
            for m in use.mappings
        ]
    return found


_HOW_TO_FILL = (
    "A starter ConceptMap written by `ivig-cds codes coverage`: the site's codes that look "
    "relevant to IVIG in multiple sclerosis (an MS-family diagnosis, a first-line or later "
    "disease-modifying therapy, methylprednisolone, immunoglobulin) but that the code "
    "tables in use do not map. Every target is empty: nothing is mapped until the site's "
    "terminology team fills one in. To map a code, give its `target` one entry whose code is "
    f"a concept `<group>/<value>` of the group's target system {CONCEPT_SYSTEM} (for example "
    "`ms_diagnosis/RRMS`, `ms_diagnosis/unspecified`, `medication/ivig`, "
    "`medication/interferon_beta`, `medication/other_dmt`, `medication/methylprednisolone`) "
    "and equivalence `equivalent`; the groups and their values are those of "
    "src/ivig_cds/fhir/codes/*.yaml. Remove every element left without a target before the "
    "map is used (`--codes FILE` refuses an element with no target, and FHIR JSON does not "
    "allow empty arrays)."
)


def concept_map(coverage: Coverage) -> dict[str, Any]:
    """A FHIR R4 ConceptMap (draft) with one group per source system of the unmapped relevant
    codes, each element with an empty `target` for the site to fill in."""
    systems: dict[str, dict[str, dict[str, Any]]] = {}
    for use in coverage.unmapped:
        elements = systems.setdefault(use.system, {})
        if use.code not in elements:  # a code seen in two kinds of resource appears once
            element: dict[str, Any] = {"code": use.code}
            if use.display:
                element["display"] = use.display
            element["target"] = []
            elements[use.code] = element
    groups = []
    for system, elements in sorted(systems.items()):
        group: dict[str, Any] = {"source": system} if system else {}
        group["target"] = CONCEPT_SYSTEM
        group["element"] = [elements[code] for code in sorted(elements)]
        groups.append(group)
    return {
        "resourceType": "ConceptMap",
        "status": "draft",
        "name": "IvigCdsSiteCodes",
        "title": "Site codes for ivig-cds (to be filled in)",
        "experimental": True,
        "description": _HOW_TO_FILL,
        "group": groups,
    }


def render_concept_map(coverage: Coverage) -> str:
    return json.dumps(concept_map(coverage), indent=2, ensure_ascii=False) + "\n"
