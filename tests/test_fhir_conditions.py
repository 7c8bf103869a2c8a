"""Conditions: the MS course from a whole record (natural history, conflicts, no silent drop,
not MS) and thrombotic risk factors from active and historical diagnoses."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from ivig_cds import Evaluator, Tier
from ivig_cds.fhir import evaluate_fhir, patient_from_fhir
from tests.fhir_records import (
    ICD10CM,
    ICD10GM,
    MS_SCT,
    PPMS_SCT,
    RRMS_SCT,
    SCT,
    SPMS_SCT,
    bundle,
    condition,
)

AS_OF = dt.date(2026, 11, 22)
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "fhir"
CIS_ICD11 = ("http://id.who.int/icd/release/11/mms", "8A41", "Isolated demyelinating syndromes")


def test_a_decade_of_active_course_diagnoses_reads_as_its_most_advanced_course(
    evaluator: Evaluator,
) -> None:
    """MS, CIS, RRMS, SPMS (dotless ICD-10-CM G35C1) all still active, RRMS re-entered after
    the SPMS diagnosis: the patient is SPMS, never RRMS, and the choice is explained."""
    data = json.loads((EXAMPLES / "spms-decade-history.json").read_text())
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.ms_phenotype == "SPMS"
    assert mapping.sources["ms_phenotype"] == ("Condition/spms-2023",)
    assert mapping.conflicts == () and mapping.unmapped == ()
    assert (
        "MS course SPMS, from Condition/spms-2023: the most advanced course on record "
        "(CIS → RRMS → SPMS), whatever the dates; earlier courses still active: "
        "Condition/cis-2014 (CIS); Condition/rrms-2015, Condition/rrms-2025 (RRMS)"
    ) in mapping.notes
    result = evaluator.evaluate(mapping.patient)
    assert (result.tier, result.primary_rule) == (Tier.NOT_RECOMMENDED, "C05")


@pytest.mark.parametrize(
    ("code", "course"),
    [("G35A", "RRMS"), ("G35C1", "SPMS"), ("g35b0", "PPMS"), ("G35.C2", "SPMS"), ("G35D", None)],
)
def test_icd10cm_codes_map_with_or_without_the_dot(code: str, course: str | None) -> None:
    """ICD-10-CM as EHRs send it (dotless, any case) maps to the same course as the dotted code."""
    data = bundle(condition("c", ICD10CM, code, "multiple sclerosis"))
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.ms_phenotype == course and mapping.ms_on_record


def test_icd10gm_five_character_code_belongs_to_its_parent_course() -> None:
    """ICD-10-GM G35.11 is a G35.1 (predominantly relapsing course): RRMS."""
    data = bundle(condition("c", ICD10GM, "G35.11", "Multiple Sklerose, schubförmig"))
    assert patient_from_fhir(data, as_of=AS_OF).patient.ms_phenotype == "RRMS"


def test_a_national_course_code_not_in_the_tables_is_reported_and_blocks_the_earlier_course(
    evaluator: Evaluator,
) -> None:
    """RRMS plus an ICD-10-GM secondary-chronic code (G35.30) the tables cannot verify: the
    code is listed as unmapped and the course is unknown (indeterminate), never RRMS."""
    data = bundle(
        condition("rrms", *RRMS_SCT, recorded="2016-03-01"),
        condition("gm", ICD10GM, "G35.30", "MS sekundär-chronisch", recorded="2024-05-01"),
    )
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.ms_phenotype is None and mapping.ms_on_record
    assert mapping.unmapped == (
        "Condition/gm: MS-family code http://fhir.de/CodeSystem/bfarm/icd-10-gm|G35.30 is not in "
        "the code tables",
    )
    assert (
        "MS course left unknown: Condition/gm carries an MS code that is not in the code "
        "tables and may name a later course"
    ) in mapping.notes
    assert evaluator.evaluate(mapping.patient).tier is Tier.INDETERMINATE


def test_a_snomed_code_naming_ms_is_never_dropped_silently() -> None:
    """SNOMED 230373008 (chronic progressive MS, course ambiguous) is reported by its display."""
    data = bundle(
        condition("rrms", *RRMS_SCT),
        condition("cp", SCT, "230373008", "Chronic progressive multiple sclerosis"),
    )
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.ms_phenotype is None
    assert mapping.unmapped == (
        "Condition/cp: MS-family code http://snomed.info/sct|230373008 is not in the code tables",
    )


@pytest.mark.parametrize(
    "display", ["Family history of multiple sclerosis", "Suspected multiple sclerosis"]
)
def test_family_history_and_suspicion_are_not_ms(display: str) -> None:
    """Concepts that mention MS without diagnosing it are not MS: not_ms, nothing unmapped.
    (Matched by display only, so the coding carries no code rather than an invented one.)"""
    entry = condition("x", SCT, "", display)
    del entry["code"]["coding"][0]["code"]
    mapping = patient_from_fhir(bundle(entry), as_of=AS_OF)
    assert mapping.patient.ms_phenotype == "not_ms" and mapping.unmapped == ()


def test_progressive_relapsing_ms_is_ppms() -> None:
    """PRMS (SNOMED 230374002) is PPMS under the 2013 course definitions."""
    data = bundle(condition("prms", SCT, "230374002", "Progressive relapsing multiple sclerosis"))
    assert patient_from_fhir(data, as_of=AS_OF).patient.ms_phenotype == "PPMS"


def test_ppms_with_a_relapsing_course_is_a_listed_conflict() -> None:
    """PPMS beside SPMS is a conflict naming both resources; the course stays unknown."""
    data = bundle(condition("pp", *PPMS_SCT), condition("sp", *SPMS_SCT))
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.ms_phenotype is None
    assert [str(c) for c in mapping.conflicts] == [
        "MS course conflict: Condition/sp (SPMS) and Condition/pp (PPMS) name different courses "
        "(primary progressive MS does not follow a relapsing course)"
    ]


def test_confirmed_ms_beside_cis_means_past_cis_course_unknown() -> None:
    """A confirmed MS diagnosis next to CIS: no longer CIS, course unknown, explained."""
    data = bundle(condition("cis", *CIS_ICD11), condition("ms", *MS_SCT))
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.ms_phenotype is None
    assert any("so the patient is past CIS" in n for n in mapping.notes)


def test_cis_alone_stays_cis() -> None:
    """CIS with no other MS diagnosis is CIS."""
    data = bundle(condition("cis", *CIS_ICD11))
    assert patient_from_fhir(data, as_of=AS_OF).patient.ms_phenotype == "CIS"


def test_other_demyelinating_diseases_are_not_ms(evaluator: Evaluator) -> None:
    """CIDP and NMOSD on record, no MS code: not_ms, C12 not_applicable, explained."""
    data = bundle(
        condition("cidp", ICD10CM, "G61.81", "Chronic inflammatory demyelinating polyneuritis"),
        condition("nmo", ICD10CM, "G36.0", "Neuromyelitis optica [Devic]"),
    )
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.ms_phenotype == "not_ms" and not mapping.ms_on_record
    assert (
        "no MS diagnosis on record (2 Condition resources read): the patient is taken not to "
        "have MS"
    ) in mapping.notes
    result = evaluate_fhir(data, evaluator=evaluator, as_of=AS_OF)
    assert (result.tier, result.primary_rule) == (Tier.NOT_APPLICABLE, "C12")


def test_a_provisional_ms_diagnosis_is_not_no_ms() -> None:
    """Suspected (provisional) MS is not used, but it is not 'no MS' either: course unknown."""
    data = bundle(condition("ms", *RRMS_SCT, verification="provisional"))
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.ms_phenotype is None and not mapping.ms_on_record


def test_ms_without_a_course_stays_indeterminate(evaluator: Evaluator) -> None:
    """MS on record with no course named is indeterminate (C13a), not not_applicable."""
    result = evaluate_fhir(bundle(condition("ms", *MS_SCT)), evaluator=evaluator, as_of=AS_OF)
    assert (result.tier, result.primary_rule) == (Tier.INDETERMINATE, "C13a")


# Thrombotic risk factors (`thromboembolic_risk_factors`, knowledge spec v3).
DVT_SCT = (SCT, "128053003", "Deep venous thrombosis")
PE_SCT = (SCT, "59282003", "Pulmonary embolism")
FVL_CM = (ICD10CM, "D68.51", "Activated protein C resistance")


def test_a_resolved_dvt_is_a_risk_factor() -> None:
    """A deep vein thrombosis resolved years ago sets the list, its status shown, its source
    kept; the MS course is read as before."""
    data = bundle(
        condition("rrms", *RRMS_SCT),
        condition("dvt", *DVT_SCT, recorded="2015-03-01", clinical="resolved"),
    )
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.thromboembolic_risk_factors == ("Deep venous thrombosis (resolved)",)
    assert mapping.sources["thromboembolic_risk_factors"] == ("Condition/dvt",)
    assert mapping.patient.ms_phenotype == "RRMS"


def test_a_refuted_pulmonary_embolism_is_not_a_risk_factor() -> None:
    """A refuted PE (or one entered in error) leaves the list unknown, never empty."""
    data = bundle(
        condition("rrms", *RRMS_SCT),
        condition("pe", *PE_SCT, verification="refuted"),
        condition("pe-2", *PE_SCT, verification="entered-in-error"),
    )
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.thromboembolic_risk_factors is None
    assert "thromboembolic_risk_factors" not in mapping.sources


def test_no_thrombotic_condition_leaves_the_list_unknown() -> None:
    """Absence of a thrombosis on record is not 'none recorded': the field stays unknown."""
    mapping = patient_from_fhir(bundle(condition("rrms", *RRMS_SCT)), as_of=AS_OF)
    assert mapping.patient.thromboembolic_risk_factors is None


def test_risk_factors_are_listed_once_in_a_fixed_order() -> None:
    """Two active DVT records, a PE in remission and factor V Leiden (ICD-10-CM): one readable
    name each, alphabetical, duplicates merged; every source kept."""
    data = bundle(
        condition("rrms", *RRMS_SCT),
        condition("pe", *PE_SCT, clinical="remission"),
        condition("dvt-2", ICD10CM, "I82.402", "Acute DVT left leg"),
        condition("fvl", *FVL_CM),
        condition("dvt-1", *DVT_SCT),
        condition("dvt-3", *DVT_SCT, clinical="recurrence"),
    )
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.thromboembolic_risk_factors == (
        "Activated protein C resistance",
        "Acute embolism and thrombosis of unspecified deep veins of left lower extremity",
        "Deep venous thrombosis",
        "Pulmonary embolism (in remission)",
    )
    assert mapping.sources["thromboembolic_risk_factors"] == (
        "Condition/dvt-1",
        "Condition/dvt-2",
        "Condition/dvt-3",
        "Condition/fvl",
        "Condition/pe",
    )


def test_a_provisional_thrombosis_is_noted_not_used() -> None:
    """A suspected (provisional) DVT is not a recorded risk factor: noted, the list unknown."""
    data = bundle(
        condition("rrms", *RRMS_SCT), condition("dvt", *DVT_SCT, verification="provisional")
    )
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.thromboembolic_risk_factors is None
    assert (
        "Condition/dvt: thrombotic risk factor not confirmed (provisional); not used"
        in mapping.notes
    )


@pytest.mark.parametrize(
    ("system", "code", "display"),
    [
        (ICD10GM, "I80.28", "Thrombose, Phlebitis und Thrombophlebitis sonstiger tiefer Gefaesse"),
        (
            ICD10CM,
            "I82.4Z2",
            "Acute embolism and thrombosis of unspecified deep veins of left distal",
        ),
        (SCT, "1234567", "Deep vein thrombosis of calf (disorder)"),
        (SCT, "7654321", "Hereditary thrombophilia due to factor V Leiden"),
    ],
)
def test_a_thrombotic_code_not_in_the_tables_is_reported(
    system: str, code: str, display: str
) -> None:
    """A code that looks thrombotic but is not in the tables is reported as unmapped and not
    used: the list stays unknown."""
    data = bundle(condition("rrms", *RRMS_SCT), condition("vt", system, code, display))
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.thromboembolic_risk_factors is None
    assert [u for u in mapping.unmapped if u.startswith("Condition/vt:")] == [
        f"Condition/vt: {system}|{code} looks like venous thromboembolism or a thrombophilia "
        "but is not in the code tables; not used as a risk factor"
    ]


@pytest.mark.parametrize(
    "display", ["Family history of deep vein thrombosis", "Suspected pulmonary embolism"]
)
def test_a_family_history_or_suspicion_is_not_reported(display: str) -> None:
    """SNOMED CT concepts about relatives or suspicions are neither used nor reported."""
    data = bundle(condition("rrms", *RRMS_SCT), condition("fh", SCT, "1111111", display))
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.thromboembolic_risk_factors is None
    assert not any(u.startswith("Condition/fh:") for u in mapping.unmapped)


def test_a_mapped_code_beside_an_unmapped_one_is_used() -> None:
    """A Condition coded in SNOMED CT (in the tables) and ICD-10-GM (not): the SNOMED CT code
    counts and nothing is reported."""
    dvt = condition("dvt", *DVT_SCT)
    dvt["code"]["coding"].append({"system": ICD10GM, "code": "I80.28"})
    mapping = patient_from_fhir(bundle(condition("rrms", *RRMS_SCT), dvt), as_of=AS_OF)
    assert mapping.patient.thromboembolic_risk_factors == ("Deep venous thrombosis",)
    assert mapping.unmapped == ()
