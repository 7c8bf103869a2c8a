"""Synthetic FHIR Bulk Data exports with every patient's expected result known by construction.

Each patient follows one scenario (a clinical story told by its resources: a decade of
diagnoses, first-line therapies stopped for intolerance, a pregnancy then a delivery, IVIG
given at dated points) whose tier now and at each IVIG dose is written down beside it, from
the knowledge base's rules (C01, C02a, C05, C06, C10a, C11, C13a, C13b). Around the story sit
the resources a real chart carries and the audit must read past: comorbidities, vital signs,
other medications, encounters, narratives. Half the IVIG doses name their drug by a shared
Medication resource (`medicationReference`), as many EHRs export them. Malformed lines are
sprinkled over the files, each counted by file.

Clinical codes are the ones in `src/ivig_cds/fhir/codes/` (verified there); the noise uses a
clearly synthetic code system (`http://example.org/...`), never invented real codes.

    python -m tests.bulk_export OUT_DIR --patients 10000 [--seed 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fhir_records import LOINC, SCT

EXPORT_DATE = dt.date(2026, 6, 30)
_ATC = "http://www.whocc.no/atc"
_ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_SYNTHETIC = "http://example.org/fhir/synthetic"
_MS = (SCT, "24700007", "Multiple sclerosis")
_RRMS = (SCT, "426373005", "Relapsing remitting multiple sclerosis")
_SPMS = (SCT, "425500002", "Secondary progressive multiple sclerosis")
_PPMS = (SCT, "428700003", "Primary progressive multiple sclerosis")
_CIDP = (_ICD10CM, "G61.81", "Chronic inflammatory demyelinating polyneuritis")
_INTERFERON = (SCT, "386902004", "Interferon beta-1a")
_GLATIRAMER = (SCT, "108755008", "Glatiramer acetate")
_INTOLERANCE = (SCT, "59037007", "Drug intolerance")
_IVIG_SCT = (SCT, "714569001", "Product containing normal immunoglobulin human")
_IVIG_ATC = (_ATC, "J06BA02", "Immunoglobulins, normal human, for intravascular adm.")
_DELIVERY = (SCT, "236973005", "Delivery procedure")
_PREGNANCY = "82810-3"
_PREGNANT, _NOT_PREGNANT = "LA15173-0", "LA26683-5"

BAD_MEDICATIONS = (
    b'{"resourceType": "Medication", "id": "bad-code", "code": {"coding": [{"system": "'
    + SCT.encode()
    + b'", "code": 714569001}]}}',  # a number for a code: invalid FHIR
    b'{"resourceType": "Medication", "code": {"text": "no id"}}',
)

MALFORMED = {
    "blank": b"",
    "truncated": b'{"resourceType": "Observation", "id": "cut", "status": "fin',
    "not_utf8": b'{"resourceType": "Observation", "id": "\xff\xfe"}',
    "array": b"[1, 2, 3]",
    "no_patient": b'{"resourceType": "Observation", "id": "orphan", "status": "final", '
    b'"code": {"text": "x"}}',
    "wrong_type": b'{"resourceType": "Encounter", "id": "misfiled", "status": "finished"}',
}
"""Lines that are errors at triage, put into Observation files."""


@dataclass
class Expected:
    """What the audit must find for one patient (None: no MS on record, no results line)."""

    tier: str | None
    primary_rule: str | None
    doses: list[tuple[str, str, str]] = field(default_factory=list)  # kind, date, tier


@dataclass
class Export:
    """What was written: expectations per FHIR patient id, and lines per file by fate."""

    patients: dict[str, Expected] = field(default_factory=dict)
    lines: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    resources: int = 0


def _code(system_code: tuple[str, str, str]) -> dict[str, Any]:
    system, code, display = system_code
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


SHARED_MEDICATIONS = {
    "ivig-sct": _code(_IVIG_SCT),
    "ivig-atc": _code(_IVIG_ATC),
    "synthetic-drug": _code((_SYNTHETIC, "drug-0", "Synthetic drug")),  # read past: skipped
}
"""Medication.ndjson: id to code."""


def _day(years_before: float, rng: random.Random) -> str:
    days = int(years_before * 365.25) + rng.randint(0, 20)
    return (EXPORT_DATE - dt.timedelta(days=days)).isoformat()


class _Chart:
    """One patient's resources, by type."""

    def __init__(self, pid: str, rng: random.Random) -> None:
        self.pid, self.rng, self.count = pid, rng, 0
        self.by_type: dict[str, list[dict[str, Any]]] = {}
        self.shared: set[str] = set()  # ids of the shared Medications the chart refers to

    def add(self, kind: str, **fields: Any) -> dict[str, Any]:
        self.count += 1
        rid = self.pid if kind == "Patient" else f"{self.pid}-{self.count}"
        resource: dict[str, Any] = {"resourceType": kind, "id": rid}
        resource["meta"] = {"lastUpdated": "2026-06-29T23:00:00Z"}
        resource["text"] = {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/'
            f'xhtml">{kind} recorded in the synthetic chart</div>',
        }
        if kind == "AllergyIntolerance":
            resource["patient"] = {"reference": f"Patient/{self.pid}"}
        elif kind != "Patient":
            resource["subject"] = {"reference": f"Patient/{self.pid}"}
        resource.update(fields)
        self.by_type.setdefault(kind, []).append(resource)
        return resource

    def condition(self, code: tuple[str, str, str], recorded: str, **extra: Any) -> None:
        self.add(
            "Condition",
            clinicalStatus={"coding": [{"system": _CLINICAL, "code": "active"}]},
            verificationStatus={"coding": [{"system": _VERIFICATION, "code": "confirmed"}]},
            category=[{"text": "problem-list-item"}],
            code=_code(code),
            recordedDate=recorded,
            **extra,
        )

    def statement(self, drug: tuple[str, str, str], start: str, *, stopped: bool) -> None:
        extra: dict[str, Any] = {"effectivePeriod": {"start": start}}
        if stopped:
            extra["statusReason"] = [_code(_INTOLERANCE)]
        self.add(
            "MedicationStatement",
            status="stopped" if stopped else "active",
            medicationCodeableConcept=_code(drug),
            dateAsserted=start,
            **extra,
        )

    def ivig(self, when: str, *, order: bool) -> None:
        chosen = self.rng.choice((_IVIG_SCT, _IVIG_ATC))
        drug: dict[str, Any] = {"medicationCodeableConcept": _code(chosen)}
        if (self.count + int(self.pid[2:])) % 2:  # by a shared Medication: joined by the audit
            shared = "ivig-sct" if chosen is _IVIG_SCT else "ivig-atc"
            drug = {"medicationReference": {"reference": f"Medication/{shared}"}}
            self.shared.add(shared)
        if order:
            self.add(
                "MedicationRequest", status="completed", intent="order", authoredOn=when, **drug
            )
        else:
            self.add(
                "MedicationAdministration",
                status="completed",
                effectiveDateTime=f"{when}T09:30:00Z",
                **drug,
            )

    def pregnancy(self, answer: str, weeks_before: int) -> None:
        when = (EXPORT_DATE - dt.timedelta(weeks=weeks_before)).isoformat()
        self.add(
            "Observation",
            status="final",
            code={"coding": [{"system": LOINC, "code": _PREGNANCY}]},
            effectiveDateTime=when,
            valueCodeableConcept={"coding": [{"system": LOINC, "code": answer}]},
        )

    def noise(self) -> None:
        rng = self.rng
        for i in range(rng.randint(3, 8)):
            self.condition(
                (_SYNTHETIC, f"comorbidity-{i}", f"Synthetic comorbidity {i}"),
                _day(rng.uniform(0, 15), rng),
            )
        for _ in range(rng.randint(12, 28)):
            self.add(
                "Observation",
                status="final",
                category=[{"text": "vital-signs"}],
                code=_code((_SYNTHETIC, "vital-sign", "Synthetic vital sign")),
                effectiveDateTime=f"{_day(rng.uniform(0, 10), rng)}T10:00:00Z",
                valueQuantity={"value": rng.randint(60, 140), "unit": "unit"},
            )
        for i in range(rng.randint(2, 6)):
            drug: dict[str, Any] = {
                "medicationCodeableConcept": _code((_SYNTHETIC, f"drug-{i}", "Synthetic drug"))
            }
            if i == 0:
                drug = {"medicationReference": {"reference": "Medication/synthetic-drug"}}
            self.add(
                "MedicationStatement",
                status=rng.choice(("active", "completed")),
                effectivePeriod={"start": _day(rng.uniform(0, 8), rng)},
                **drug,
            )
        for _ in range(rng.randint(2, 5)):
            self.add("Encounter", status="finished", **{"class": {"code": "AMB"}})


def _story(name: str) -> Callable[[_Chart], Expected]:
    return _STORIES[name]


def _first_line_active(c: _Chart) -> Expected:
    c.condition(_MS, _day(12, c.rng))
    c.condition(_RRMS, _day(11, c.rng))
    c.statement(_INTERFERON, _day(6, c.rng), stopped=False)
    c.pregnancy(_NOT_PREGNANT, 1)
    return Expected("not_first_line", "C01")


def _both_intolerant(c: _Chart) -> Expected:
    c.condition(_RRMS, _day(10, c.rng))
    c.statement(_INTERFERON, _day(9, c.rng), stopped=True)
    c.statement(_GLATIRAMER, _day(7, c.rng), stopped=True)
    c.ivig("2024-03-04", order=True)
    c.ivig("2024-03-05", order=False)
    return Expected(
        "second_line",
        "C02a",
        [("administration", "2024-03-05", "second_line"), ("order", "2024-03-04", "second_line")],
    )


def _spms_decade(c: _Chart) -> Expected:
    c.condition(_MS, "2012-02-01")
    c.condition(_RRMS, "2013-05-01")
    c.condition(_SPMS, "2019-09-01")
    c.ivig("2015-06-01", order=False)  # RRMS then, first-line therapy unknown
    c.ivig("2022-01-10", order=False)  # SPMS by then
    return Expected(
        "not_recommended",
        "C05",
        [
            ("administration", "2015-06-01", "indeterminate"),
            ("administration", "2022-01-10", "not_recommended"),
        ],
    )


def _ppms(c: _Chart) -> Expected:
    c.condition(_PPMS, _day(5, c.rng))
    c.ivig("2025-11-20", order=False)
    return Expected(
        "insufficient_evidence", "C06", [("administration", "2025-11-20", "insufficient_evidence")]
    )


def _pregnant(c: _Chart) -> Expected:
    c.condition(_RRMS, _day(4, c.rng))
    c.pregnancy(_PREGNANT, 3)
    return Expected("insufficient_evidence", "C11")


def _postpartum(c: _Chart) -> Expected:
    c.condition(_RRMS, _day(6, c.rng))
    c.pregnancy(_PREGNANT, 30)
    when = (EXPORT_DATE - dt.timedelta(weeks=10)).isoformat()
    c.add("Procedure", status="completed", code=_code(_DELIVERY), performedDateTime=when)
    return Expected("second_line", "C10a")


def _no_course(c: _Chart) -> Expected:
    c.condition(_MS, _day(3, c.rng))
    return Expected("indeterminate", "C13a")


def _rrms_untreated(c: _Chart) -> Expected:
    c.condition(_RRMS, _day(2, c.rng))
    return Expected("indeterminate", "C13b")


def _cidp(c: _Chart) -> Expected:
    c.condition(_CIDP, _day(4, c.rng))
    c.ivig("2025-02-02", order=False)
    return Expected(None, None)


_STORIES: dict[str, Callable[[_Chart], Expected]] = {
    "first_line_active": _first_line_active,
    "both_intolerant": _both_intolerant,
    "spms_decade": _spms_decade,
    "ppms": _ppms,
    "pregnant": _pregnant,
    "postpartum": _postpartum,
    "no_course": _no_course,
    "rrms_untreated": _rrms_untreated,
    "cidp": _cidp,
}
_FEMALE = ("first_line_active", "pregnant", "postpartum")


def generate(folder: Path, patients: int, *, seed: int = 1, malformed_every: int = 50) -> Export:
    """Write an export of `patients` patients to `folder`; return what it must give."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(
        json.dumps(
            {
                "transactionTime": f"{EXPORT_DATE.isoformat()}T12:00:00Z",
                "requiresAccessToken": False,
                "output": [],
                "error": [],
            }
        )
    )
    export = Export()
    handles: dict[str, Any] = {}

    def write(name: str, line: bytes) -> None:
        if name not in handles:
            handles[name] = (folder / name).open("wb")
        handles[name].write(line + b"\n")
        export.lines[name] += 1

    for rid, code in SHARED_MEDICATIONS.items():
        write(
            "Medication.ndjson",
            json.dumps({"resourceType": "Medication", "id": rid, "code": code}).encode(),
        )
    if malformed_every:
        for line in BAD_MEDICATIONS:
            write("Medication.ndjson", line)
            export.errors["Medication.ndjson"] += 1
    referenced: set[str] = set()
    names = sorted(_STORIES)
    try:
        for index in range(patients):
            pid = f"pt{index:07d}"
            story = names[index % len(names)]
            chart = _Chart(pid, rng)
            female = story in _FEMALE or (
                story not in ("spms_decade", "both_intolerant") and rng.random() < 0.5
            )
            born = f"{rng.randint(1972, 1995)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
            chart.add(
                "Patient",
                gender="female" if female else "male",
                birthDate=born,
                name=[{"family": "Synthetic", "given": ["Patient"]}],
            )
            expected = _story(story)(chart)
            chart.noise()
            referenced |= chart.shared
            export.patients[pid] = expected
            for kind, resources in chart.by_type.items():
                for resource in resources:
                    name = _file_for(kind, index)
                    write(name, json.dumps(resource).encode())
                    export.resources += 1
                    if kind == "Encounter":
                        export.skipped[name] += 1
            if malformed_every and index % malformed_every == malformed_every - 1:
                what = names_of_malformed[(index // malformed_every) % len(names_of_malformed)]
                name = _file_for("Observation", index)
                write(name, MALFORMED[what])
                export.errors[name] += 1
                bad = {
                    "resourceType": "Condition",
                    "id": f"{pid}-bad",
                    "code": {"coding": [{"system": SCT, "code": 24700007}]},  # numeric: invalid
                    "subject": {"reference": f"Patient/{pid}"},
                }
                write(_file_for("Condition", index), json.dumps(bad).encode())
                export.errors[_file_for("Condition", index)] += 1
    finally:
        for handle in handles.values():
            handle.close()
    export.skipped["Medication.ndjson"] = len(SHARED_MEDICATIONS) - len(referenced)
    return export


names_of_malformed = sorted(MALFORMED)


def _file_for(kind: str, patient: int) -> str:
    if kind in ("Observation", "Condition"):  # split types, two numbering styles
        return (
            f"{kind}.{patient % 3 + 1}.ndjson"
            if kind == "Observation"
            else (f"{patient % 2 + 1}.{kind}.ndjson")
        )
    return f"{kind}.ndjson"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--patients", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--malformed-every",
        type=int,
        default=0,
        help="make every Nth resource line malformed, to see the errors file (default: none)",
    )
    args = parser.parse_args()
    export = generate(
        args.folder, args.patients, seed=args.seed, malformed_every=args.malformed_every
    )
    print(
        json.dumps(
            {
                "patients": len(export.patients),
                "resources": export.resources,
                "lines": sum(export.lines.values()),
                "errors": sum(export.errors.values()),
            }
        )
    )


if __name__ == "__main__":
    main()
