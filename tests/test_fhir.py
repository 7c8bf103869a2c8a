"""The FHIR R4 adapter: bundles and prefetch in, PatientContext out, nothing guessed."""

from __future__ import annotations

import ast
import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ivig_cds import Evaluator, FirstLineByClass, IvigCdsError, Tier
from ivig_cds._patient import first_line_as_a_whole
from ivig_cds.cli import app
from ivig_cds.fhir import (
    GROUP_VALUES,
    FhirCodeTableError,
    FhirDataError,
    default_code_tables,
    evaluate_fhir,
    ivig_given,
    ivig_orders,
    load_code_tables,
    patient_from_fhir,
    resources_of,
)
from tests import fhir_records
from tests.test_plain_language import FORBIDDEN

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "fhir"
HOOKS = REPO / "tests" / "fixtures" / "cds-hooks"
AHRQ = REPO.parent / "shared" / "fixtures" / "ahrq-cds-hooks-r4"
AS_OF = dt.date(2026, 11, 22)
SCT = "http://snomed.info/sct"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def resource(bundle: dict[str, Any], rid: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["id"] == rid
    )
    return found


def test_rrms_interferon_intolerant_maps_every_fact_it_states() -> None:
    """RRMS with interferon stopped for intolerance and glatiramer acetate for an adverse
    reaction: first-line therapy as a whole is not tolerated; age and sex map too."""
    mapping = patient_from_fhir(load("rrms-interferon-intolerant"), as_of=AS_OF)
    p = mapping.patient
    assert (p.ms_phenotype, p.sex, p.age_years) == ("RRMS", "female", 38)
    assert p.first_line_by_class == FirstLineByClass(
        interferon_beta="not_tolerated", glatiramer_acetate="not_tolerated"
    )
    assert p.first_line_dmt is None and first_line_as_a_whole(p) == "not_tolerated"
    assert p.pregnancy_status is None and p.acute_relapse is None and p.edss is None
    assert mapping.sources["ms_phenotype"] == ("Condition/rrms-1",)
    assert mapping.sources["first_line_by_class"] == (
        "MedicationStatement/ga-1",
        "MedicationStatement/ifn-1",
    )
    assert mapping.conflicts == () and mapping.ms_on_record


def test_evaluate_fhir_gives_second_line_citing_the_meta_analysis(evaluator: Evaluator) -> None:
    """evaluate_fhir answers second_line for RRMS intolerant of interferon, citing PMID 12453069."""
    rec = evaluate_fhir(load("rrms-interferon-intolerant"), evaluator=evaluator, as_of=AS_OF)
    assert rec.tier is Tier.SECOND_LINE and rec.primary_rule == "C02a"
    assert rec.citations[0].pmid == "12453069"
    assert "pregnancy_status" in rec.missing_data


@pytest.mark.parametrize(
    ("name", "tier", "rule"),
    [
        ("rrms-on-glatiramer", Tier.NOT_FIRST_LINE, "C01"),
        ("spms", Tier.NOT_RECOMMENDED, "C05"),
        ("rrms-postpartum-breastfeeding", Tier.SECOND_LINE, "C10a"),
        ("rrms-relapse-on-iv-steroids", Tier.NOT_RECOMMENDED, "C07"),
        ("cis-like-unspecified-ms-allergy", Tier.INDETERMINATE, "C13a"),
    ],
)
def test_fixture_bundles_reach_their_expected_conclusion(
    evaluator: Evaluator, name: str, tier: Tier, rule: str
) -> None:
    """Each realistic bundle evaluates to the conclusion its clinical story calls for."""
    rec = evaluate_fhir(load(name), evaluator=evaluator, as_of=AS_OF)
    assert (rec.tier, rec.primary_rule) == (tier, rule)


def test_vte_history_and_ivig_course_map_to_the_v3_fields() -> None:
    """A record with a resolved DVT (ICD-10-CM), factor V Leiden, a refuted PE, interferon
    stopped for intolerance and IVIG given 3 and 10 weeks ago maps exactly: the two risk
    factors, IVIG in use from the recent dose, interferon not tolerated and glatiramer open."""
    mapping = patient_from_fhir(load("rrms-vte-history-on-ivig"), as_of=AS_OF)
    p = mapping.patient
    assert p.thromboembolic_risk_factors == (
        "Activated protein C resistance",
        "Acute embolism and thrombosis of unspecified deep veins of left lower extremity "
        "(resolved)",
    )
    assert p.ivig_in_use is True
    assert p.first_line_by_class == FirstLineByClass(interferon_beta="not_tolerated")
    assert p.first_line_dmt is None and first_line_as_a_whole(p) is None
    assert {k: v for k, v in mapping.sources.items() if k not in ("sex", "age_years")} == {
        "ms_phenotype": ("Condition/rrms-1",),
        "thromboembolic_risk_factors": ("Condition/dvt-2019", "Condition/fvl"),
        "first_line_by_class": ("MedicationStatement/ifn-1",),
        "first_line_by_class.interferon_beta": ("MedicationStatement/ifn-1",),
        "ivig_in_use": ("MedicationAdministration/ivig-2026-11-01",),
    }
    assert mapping.unmapped == () and mapping.conflicts == ()


def test_ivig_last_given_ten_weeks_before_leaves_in_use_unknown() -> None:
    """The same record judged 12 weeks after its last dose: ivig_in_use unknown, the note names
    the last dose and its date; the risk factors do not age."""
    mapping = patient_from_fhir(load("rrms-vte-history-on-ivig"), as_of=dt.date(2027, 1, 24))
    assert mapping.patient.ivig_in_use is None
    assert mapping.patient.thromboembolic_risk_factors is not None
    assert (
        "MedicationAdministration/ivig-2026-11-01: IVIG last given on 2026-11-01 (over 8 weeks "
        "before 2027-01-24); not counted as in use"
    ) in mapping.notes


def test_an_active_ivig_order_in_the_record_is_in_use() -> None:
    """Without the administrations, the record's IVIG order made active (no end) sets
    ivig_in_use from that order."""
    bundle = load("rrms-vte-history-on-ivig")
    bundle["entry"] = [
        e for e in bundle["entry"] if e["resource"]["resourceType"] != "MedicationAdministration"
    ]
    order = resource(bundle, "ivig-order-2025")
    order["status"] = "active"
    del order["dispenseRequest"]
    mapping = patient_from_fhir(bundle, as_of=AS_OF)
    assert mapping.patient.ivig_in_use is True
    assert mapping.sources["ivig_in_use"] == ("MedicationRequest/ivig-order-2025",)


def test_postpartum_weeks_come_from_the_delivery_date() -> None:
    """A delivery 6 weeks before the evaluation date supersedes an earlier 'pregnant' answer."""
    p = patient_from_fhir(load("rrms-postpartum-breastfeeding"), as_of=AS_OF).patient
    assert (p.pregnancy_status, p.weeks_postpartum, p.breastfeeding) == ("postpartum", 6, True)


def test_old_delivery_and_stale_pregnancy_answer_leave_status_unknown() -> None:
    """Over two years later, neither the delivery nor the old 'pregnant' answer says anything."""
    mapping = patient_from_fhir(load("rrms-postpartum-breastfeeding"), as_of=dt.date(2029, 1, 1))
    assert mapping.patient.pregnancy_status is None and mapping.patient.breastfeeding is None
    assert any("a 'pregnant' answer older than 42 weeks; not used" in n for n in mapping.notes)


def test_weeks_postpartum_are_reported_past_a_year_for_the_rules_to_bound() -> None:
    """64 weeks after delivery the adapter still reports postpartum week 64 (the rules, not
    the adapter, bound C10), while the 26-week-old breastfeeding answer has aged out."""
    mapping = patient_from_fhir(load("rrms-postpartum-breastfeeding"), as_of=dt.date(2028, 1, 1))
    p = mapping.patient
    assert (p.pregnancy_status, p.weeks_postpartum, p.breastfeeding) == ("postpartum", 64, None)


def test_resolved_diagnosis_is_ignored_and_noted() -> None:
    """A resolved RRMS Condition does not conflict with the active SPMS one."""
    mapping = patient_from_fhir(load("spms"), as_of=AS_OF)
    assert mapping.patient.ms_phenotype == "SPMS" and mapping.conflicts == ()
    assert "Condition/rrms-old: MS diagnosis is resolved; not used" in mapping.notes


def test_two_phenotypes_conflict_naming_both_conditions() -> None:
    """RRMS and PPMS Conditions leave the phenotype unknown and name both resources."""
    mapping = patient_from_fhir(load("phenotype-conflict"), as_of=AS_OF)
    assert mapping.patient.ms_phenotype is None
    (conflict,) = mapping.conflicts
    assert conflict.field == "ms_phenotype"
    assert conflict.resources == ("Condition/abc", "Condition/def")
    assert str(conflict) == (
        "MS course conflict: Condition/abc (RRMS) and Condition/def (PPMS) name different courses"
        " (primary progressive MS does not follow a relapsing course)"
    )


def test_evaluate_fhir_refuses_conflicting_data() -> None:
    """evaluate_fhir raises FhirDataError, a ValueError and IvigCdsError, naming the resources."""
    with pytest.raises(FhirDataError) as caught:
        evaluate_fhir(load("phenotype-conflict"), as_of=AS_OF)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, IvigCdsError)
    assert "Condition/abc (RRMS) and Condition/def (PPMS)" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "system"),
    [
        ("refuted", "http://terminology.hl7.org/CodeSystem/condition-ver-status"),
        ("entered-in-error", "http://terminology.hl7.org/CodeSystem/condition-ver-status"),
        ("differential", "http://terminology.hl7.org/CodeSystem/condition-ver-status"),
    ],
)
def test_unconfirmed_diagnoses_do_not_set_the_phenotype(status: str, system: str) -> None:
    """A refuted, erroneous or differential MS diagnosis maps to nothing."""
    bundle = load("spms")
    resource(bundle, "spms-1")["verificationStatus"] = {
        "coding": [{"system": system, "code": status}]
    }
    assert patient_from_fhir(bundle, as_of=AS_OF).patient.ms_phenotype is None


def test_icd10cm_codes_match_case_insensitively() -> None:
    """'g35.c1' written in lower case still maps to SPMS."""
    bundle = load("spms")
    resource(bundle, "spms-1")["code"]["coding"][0]["code"] = "g35.c1"
    assert patient_from_fhir(bundle, as_of=AS_OF).patient.ms_phenotype == "SPMS"


def test_icd11_isolated_demyelinating_syndrome_maps_to_cis(evaluator: Evaluator) -> None:
    """ICD-11 8A41 (clinically isolated syndrome) gives CIS; with therapy status unknown, C13b."""
    bundle = load("spms")
    resource(bundle, "spms-1")["code"] = {
        "coding": [{"system": "http://id.who.int/icd/release/11/mms", "code": "8A41"}]
    }
    mapping = patient_from_fhir(bundle, as_of=AS_OF)
    assert mapping.patient.ms_phenotype == "CIS"
    result = evaluator.evaluate(mapping.patient)
    assert result.primary_rule == "C13b"
    # The record's patient is a woman of 60: pregnancy status is not asked (not_asked, v2).
    assert "first_line_dmt" in result.missing_data
    assert "pregnancy_status" not in result.missing_data


def test_unspecified_ms_marks_ms_on_record_without_a_phenotype() -> None:
    """SNOMED 24700007 says MS is on record but leaves the course unknown; an interferon
    allergy alone leaves first-line therapy unknown, naming glatiramer acetate as open."""
    mapping = patient_from_fhir(load("cis-like-unspecified-ms-allergy"), as_of=AS_OF)
    assert mapping.ms_on_record and mapping.patient.ms_phenotype is None
    assert mapping.patient.first_line_by_class == FirstLineByClass(interferon_beta="not_tolerated")
    assert first_line_as_a_whole(mapping.patient) is None
    assert (
        "first-line therapy as a whole left unknown: interferon-beta not tolerated "
        "(AllergyIntolerance/ai-ifn), but glatiramer acetate is unaccounted for (never "
        "recorded, or stopped without a reason); the whole is judged over both classes"
    ) in mapping.notes


def test_active_interferon_with_no_intolerance_is_suitable() -> None:
    """An active first-line DMT without a recorded intolerance makes first-line suitable."""
    bundle = load("rrms-interferon-intolerant")
    statement = resource(bundle, "ifn-1")
    statement["status"] = "active"
    del statement["statusReason"]
    p = patient_from_fhir(bundle, as_of=AS_OF).patient
    assert p.first_line_by_class == FirstLineByClass(
        interferon_beta="suitable", glatiramer_acetate="not_tolerated"
    )
    assert first_line_as_a_whole(p) == "suitable"


def test_stopped_without_a_reason_says_nothing_about_tolerance() -> None:
    """Interferon stopped for no recorded reason leaves its class, and so the whole, unknown."""
    bundle = load("rrms-interferon-intolerant")
    del resource(bundle, "ifn-1")["statusReason"]
    p = patient_from_fhir(bundle, as_of=AS_OF).patient
    assert p.first_line_by_class == FirstLineByClass(glatiramer_acetate="not_tolerated")
    assert first_line_as_a_whole(p) is None


def test_contained_medication_is_matched_by_ingredient() -> None:
    """A MedicationStatement referencing a contained Medication is read through its ingredient."""
    bundle = load("rrms-interferon-intolerant")
    statement = resource(bundle, "ifn-1")
    del statement["medicationCodeableConcept"]
    statement["contained"] = [
        {
            "resourceType": "Medication",
            "id": "med1",
            "code": {"text": "Rebif 44 micrograms"},
            "ingredient": [
                {"itemCodeableConcept": {"coding": [{"system": SCT, "code": "386902004"}]}}
            ],
        }
    ]
    statement["medicationReference"] = {"reference": "#med1"}
    mapping = patient_from_fhir(bundle, as_of=AS_OF)
    assert mapping.patient.first_line_by_class == FirstLineByClass(
        interferon_beta="not_tolerated", glatiramer_acetate="not_tolerated"
    )
    assert mapping.sources["first_line_by_class.interferon_beta"] == ("MedicationStatement/ifn-1",)


def test_iv_steroids_without_relapse_are_noted_not_used() -> None:
    """IV methylprednisolone with no recorded relapse does not set on_iv_methylprednisolone."""
    bundle = load("rrms-relapse-on-iv-steroids")
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["id"] != "relapse-1"]
    mapping = patient_from_fhir(bundle, as_of=AS_OF)
    assert mapping.patient.on_iv_methylprednisolone is None
    assert any("without a recorded MS relapse" in n for n in mapping.notes)


def test_resolved_relapse_is_not_an_ongoing_relapse() -> None:
    """A resolved exacerbation leaves acute_relapse unknown rather than false or true."""
    bundle = load("rrms-relapse-on-iv-steroids")
    resource(bundle, "relapse-1")["clinicalStatus"]["coding"][0]["code"] = "resolved"
    assert patient_from_fhir(bundle, as_of=AS_OF).patient.acute_relapse is None


def test_male_with_delivery_is_a_conflict_not_an_error() -> None:
    """A delivery recorded for a male patient is reported and leaves pregnancy unknown."""
    bundle = load("rrms-postpartum-breastfeeding")
    resource(bundle, "pp")["gender"] = "male"
    mapping = patient_from_fhir(bundle, as_of=AS_OF)
    assert mapping.patient.pregnancy_status is None
    assert {c.field for c in mapping.conflicts} == {"pregnancy_status", "breastfeeding"}
    assert "Patient/pp is male but Procedure/delivery-1 records a delivery" in [
        str(c) for c in mapping.conflicts
    ]


@pytest.mark.parametrize(
    ("birth", "age"),
    [("1988-11-23", 37), ("1988-11-22", 38), ("1988", None), ("1988-03", 38)],
)
def test_age_is_computed_as_of_the_pinned_date(birth: str, age: int | None) -> None:
    """Age counts whole years to the evaluation date; an ambiguous partial date gives none."""
    bundle = load("rrms-interferon-intolerant")
    resource(bundle, "rrms-ifn")["birthDate"] = birth
    assert patient_from_fhir(bundle, as_of=AS_OF).patient.age_years == age


def test_prefetch_dictionary_with_nulls_and_operation_outcome_is_read() -> None:
    """Prefetch values may be resources, searchset Bundles, null or an OperationOutcome."""
    request = json.loads((HOOKS / "patient-view-rrms-interferon-intolerant.json").read_text())
    prefetch = request["prefetch"]
    prefetch["observations"] = None
    prefetch["allergies"] = {"resourceType": "OperationOutcome", "issue": []}
    p = patient_from_fhir(prefetch, as_of=AS_OF).patient
    assert (p.ms_phenotype, first_line_as_a_whole(p)) == ("RRMS", "not_tolerated")


def test_single_resource_input_is_accepted() -> None:
    """A lone Patient resource maps to sex and age; with no Condition at all the course is
    unknown (diagnoses may not have been sent), not 'not MS'."""
    mapping = patient_from_fhir(resource(load("spms"), "spms"), as_of=AS_OF)
    p = mapping.patient
    assert p.sex == "female" and p.age_years == 60 and p.ms_phenotype is None
    assert "no Condition resources in the data: the MS course is unknown" in mapping.notes


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected a JSON object, got list"),
        ({"resourceType": "Nonsense"}, "'Nonsense' is not a FHIR R4 resource type"),
        ({"foo": {"bar": 1}}, "prefetch 'foo': no resourceType; is this FHIR JSON?"),
        ({"resourceType": "Bundle", "type": "transaction"}, "Bundle type 'transaction' is not"),
        (
            {"resourceType": "Patient", "id": "p1", "birthDate": "22/11/1990"},
            "input: Patient/p1: birthDate:",
        ),
    ],
)
def test_invalid_fhir_raises_a_located_error(data: Any, message: str) -> None:
    """Malformed input raises FhirDataError whose message locates the problem."""
    with pytest.raises(FhirDataError) as caught:
        patient_from_fhir(data, as_of=AS_OF)
    assert message in str(caught.value)


def test_error_messages_never_quote_values() -> None:
    """A validation error names the field but not the offending (possibly identifying) value."""
    bundle = load("spms")
    resource(bundle, "spms")["birthDate"] = "Jane Doe 1966"
    with pytest.raises(FhirDataError) as caught:
        patient_from_fhir(bundle, as_of=AS_OF)
    assert "Jane Doe" not in str(caught.value)
    assert "Bundle/spms entry 0 (Patient/spms): birthDate: " in str(caught.value)


def test_an_empty_string_is_one_problem_on_one_line() -> None:
    """pydantic's message for an empty FHIR string holds the pattern's line breaks; each
    problem stays on one line, saying what is wrong (found by the CLI fuzz test)."""
    bundle = load("spms")
    resource(bundle, "spms")["name"] = [{"given": [""]}]
    with pytest.raises(FhirDataError) as caught:
        patient_from_fhir(bundle, as_of=AS_OF)
    [problem] = caught.value.problems
    assert problem.endswith(
        "(Patient/spms): name.0.given.0: an empty string; a FHIR string holds at least one "
        "character (omit the element)"
    )
    assert "\n" not in problem and "\r" not in problem


def test_two_patients_are_refused() -> None:
    """A bundle describing two different patients is refused rather than merged."""
    bundle = load("spms")
    other = copy.deepcopy(resource(bundle, "spms"))
    other["id"] = "someone-else"
    bundle["entry"].append({"resource": other})
    with pytest.raises(FhirDataError, match="2 different Patient resources"):
        patient_from_fhir(bundle, as_of=AS_OF)


def test_resource_count_is_bounded() -> None:
    """More resources than one chart could hold are refused with a clear message."""
    many = [
        {"resource": {"resourceType": "Basic", "id": str(i), "code": {"text": "x"}}}
        for i in range(20_001)
    ]
    with pytest.raises(FhirDataError, match="more than 20000 resources"):
        resources_of({"resourceType": "Bundle", "type": "collection", "entry": many})


def test_ivig_orders_finds_snomed_and_atc_coded_requests() -> None:
    """ivig_orders picks IVIG MedicationRequests by SNOMED CT product or ATC J06BA02 code."""
    request = json.loads((HOOKS / "order-select-spms-ivig-selected.json").read_text())
    found = ivig_orders(resources_of(request["context"]["draftOrders"]))
    assert [r.id for r in found] == ["ivig-draft-1"]


def test_ivig_given_reads_the_drug_of_a_referenced_medication() -> None:
    """Administrations and orders count by their Medication's code (a resource beside them,
    or contained); other drugs and a reference to an absent Medication do not."""
    atc = {"coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}]}
    admin = {
        "resourceType": "MedicationAdministration",
        "status": "completed",
        "subject": {"reference": "Patient/p"},
        "effectiveDateTime": "2025-01-02",
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": r}
            for r in [
                {"resourceType": "Medication", "id": "ivig", "code": atc},
                {"resourceType": "Medication", "id": "saline", "code": {"text": "saline"}},
                admin | {"id": "a1", "medicationReference": {"reference": "Medication/ivig"}},
                admin | {"id": "a2", "medicationReference": {"reference": "Medication/saline"}},
                admin | {"id": "a3", "medicationReference": {"reference": "Medication/absent"}},
                admin
                | {
                    "id": "a4",
                    "contained": [
                        {
                            "resourceType": "Medication",
                            "id": "m",
                            "ingredient": [{"itemCodeableConcept": atc}],
                        }
                    ],
                    "medicationReference": {"reference": "#m"},
                },
                {
                    "resourceType": "MedicationRequest",
                    "id": "o1",
                    "status": "cancelled",
                    "intent": "order",
                    "subject": {"reference": "Patient/p"},
                    "medicationReference": {"reference": "Medication/ivig"},
                },
            ]
        ],
    }
    found = ivig_given(resources_of(bundle))
    assert [r.id for r in found] == ["a1", "a4", "o1"]  # status is the caller's to judge
    assert ivig_orders(resources_of(bundle))[0].id == "o1"


def test_shipped_code_tables_load_and_every_code_records_its_verification() -> None:
    """Every shipped code has a display and a non-empty verification note, values in range."""
    tables = default_code_tables()
    entries = [e for group in GROUP_VALUES for e in tables.entries(group)]
    assert len(entries) >= 25
    assert all(e.display and len(e.verified) > 20 for e in entries)
    assert tables.lookup("ms_diagnosis", "http://snomed.info/sct", "426373005").value == "RRMS"  # type: ignore[union-attr]


def test_a_mistyped_value_in_a_code_table_fails_at_load(tmp_path: Path) -> None:
    """A code mapped to an unknown value is rejected with the file and group named."""
    (tmp_path / "bad.yaml").write_text(
        "groups:\n  ms_diagnosis:\n    description: d\n    codes:\n"
        "      - {system: 'http://snomed.info/sct', code: '1', display: x, value: RMS,"
        " verified: somewhere}\n"
    )
    with pytest.raises(FhirCodeTableError, match=r"bad.yaml: .*maps to 'RMS'"):
        load_code_tables(tmp_path)


def test_a_duplicate_code_in_the_tables_fails_at_load(tmp_path: Path) -> None:
    """The same system and code listed twice in a group is rejected."""
    entry = (
        "      - {system: 'http://loinc.org', code: '1-1', display: x, value: edss, verified: v}\n"
    )
    text = "groups:\n  observation_kind:\n    description: d\n    codes:\n" + entry
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text)
    with pytest.raises(FhirCodeTableError, match="listed twice"):
        load_code_tables(tmp_path)


def _ahrq_files() -> list[Path]:
    return sorted(AHRQ.glob("*.json")) if AHRQ.is_dir() else []


@pytest.mark.skipif(not AHRQ.is_dir(), reason=f"shared AHRQ fixtures not found at {AHRQ}")
@pytest.mark.parametrize("path", _ahrq_files(), ids=lambda p: p.stem)
def test_ahrq_synthea_prefetch_maps_without_error_and_without_ms(path: Path) -> None:
    """Real Synthea R4 prefetch parses with R4B models and shows no MS on record: not_ms when
    Conditions were sent, unknown when none were."""
    prefetch = json.loads(path.read_text())["prefetch"]
    mapping = patient_from_fhir(prefetch, as_of=AS_OF)
    conditions = prefetch.get("Condition") or {}
    expected = "not_ms" if conditions.get("entry") else None
    assert not mapping.ms_on_record and mapping.patient.ms_phenotype == expected
    assert mapping.patient.sex in ("male", "female")


EXAMPLES = REPO / "examples" / "fhir"


@pytest.mark.parametrize(
    ("name", "tier", "rule"),
    [
        ("spms-decade-history", "not_recommended", "C05"),
        ("rrms-first-line-not-tolerated", "second_line", "C02a"),
        ("rrms-interferon-intolerant-glatiramer-never-tried", "indeterminate", "C13b"),
        ("no-ms-on-record", "not_applicable", "C12"),
    ],
)
def test_example_bundles_give_what_their_readme_says(name: str, tier: str, rule: str) -> None:
    """`ivig-cds evaluate --fhir` on each examples/fhir bundle gives the tier and rule listed in
    examples/fhir/README.md (the CLI and the library agree, e.g. not_applicable without MS)."""
    readme = (EXAMPLES / "README.md").read_text()
    assert f"`{name}.json`" in readme and f"`{tier}` ({rule})" in readme
    result = CliRunner().invoke(
        app, ["evaluate", "--fhir", "--format", "json", str(EXAMPLES / f"{name}.json")]
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)["recommendation"]
    assert (answer["tier"], answer["primary_rule"]) == (tier, rule)


# --- what the adapter says about a record, in plain words -------------------------------------


def _remark_templates() -> list[tuple[str, int, str]]:
    """Every literal piece of text the adapter writes into a note, an unmapped entry or a
    conflict message: (module, line, text)."""
    found = []
    for path in sorted((REPO / "src" / "ivig_cds" / "fhir").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            called, on = node.func.attr, node.func.value
            if called == "append" and isinstance(on, ast.Attribute):
                parts = node.args if on.attr in ("notes", "unmapped") else []
            else:
                parts = node.args[2:] if called in ("conflict", "_male_conflict") else []
            found += [
                (path.name, node.lineno, c.value)
                for part in parts
                for c in ast.walk(part)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            ]
    return found


def test_the_adapters_remarks_are_written_in_plain_words() -> None:
    """No note, unmapped entry or conflict the adapter writes names a patient-context field or
    a vocabulary code: `evaluate --fhir` shows them to clinicians (the same scan as the one
    over every rendered result)."""
    templates = _remark_templates()
    assert len(templates) > 50
    leaks = [(m, n, t) for m, n, t in templates if FORBIDDEN.search(t)]
    assert leaks == []


def _records() -> list[dict[str, Any]]:
    """Every FHIR record the project ships, and records that make the adapter fill in its
    remarks with values: a stale answer, several courses, a male delivery, unknown codes."""
    records = [
        json.loads(p.read_text()) for p in sorted((REPO / "examples" / "fhir").glob("*.json"))
    ]
    records += [json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))]
    for folder in (HOOKS, REPO / "examples" / "cds-hooks"):
        for path in sorted(folder.glob("*.json")):
            request = json.loads(path.read_text())
            if isinstance(request.get("prefetch"), dict):
                records.append(request["prefetch"])
    stale = (AS_OF - dt.timedelta(weeks=6)).isoformat()
    records += [
        fhir_records.bundle(
            fhir_records.condition("rrms", *fhir_records.RRMS_SCT),
            fhir_records.observation("o", "82810-3", stale, answer="LA26683-5"),
        ),
        fhir_records.bundle(
            fhir_records.condition("rrms", *fhir_records.RRMS_SCT, recorded="2015-01-01"),
            fhir_records.condition("spms", *fhir_records.SPMS_SCT),
            fhir_records.condition("x", "http://hl7.org/fhir/sid/icd-10", "G35.9", "MS"),
        ),
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {"resource": fhir_records.patient(gender="male", birth="1980")},
                {"resource": fhir_records.condition("rrms", *fhir_records.RRMS_SCT)},
                {
                    "resource": {
                        "resourceType": "Procedure",
                        "id": "d",
                        "status": "completed",
                        "code": {"coding": [{"system": SCT, "code": "236973005"}]},
                        "subject": {"reference": "Patient/p"},
                        "performedDateTime": "2026-10-01",
                    }
                },
            ],
        },
    ]
    return records


def test_the_remarks_on_every_shipped_record_are_plain() -> None:
    """The remarks the adapter makes on the project's records, values filled in, name no field
    and no code."""
    remarks: list[str] = []
    for data in _records():
        try:
            mapping = patient_from_fhir(data, as_of=AS_OF)
        except FhirDataError:
            continue  # fixtures of unusable data: their errors are not remarks
        remarks += [*mapping.notes, *mapping.unmapped, *(str(c) for c in mapping.conflicts)]
    assert len(remarks) > 10
    assert "Observation/o: a 'not pregnant' answer older than 4 weeks; not used" in remarks
    assert any(r.startswith("MS course ") for r in remarks)
    assert any(" is male but " in r for r in remarks)
    leaks = sorted({m.group(0) for r in remarks for m in FORBIDDEN.finditer(r)})
    assert leaks == []
