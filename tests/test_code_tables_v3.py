"""Shipped tables, issue #19 part 3: RxNorm IVIG and first-line MS brand codes, and the MS
course codes the Synthea MS module emits, map through the tables and the adapter."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from ivig_cds import FirstLineByClass
from ivig_cds.fhir import default_code_tables, patient_from_fhir, read_draft_orders
from tests.fhir_records import (
    ADVERSE_REACTION,
    INTOLERANCE,
    MS_SCT,
    RRMS_SCT,
    RXNORM,
    SCT,
    bundle,
    condition,
    statement,
)

AS_OF = dt.date(2026, 11, 22)
HOOKS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "cds-hooks"
CIS_SCT = (SCT, "445967004", "Clinically isolated syndrome")

BRANDS = {
    "135779": "glatiramer_acetate",  # Copaxone
    "153326": "interferon_beta",  # Avonex
    "228271": "interferon_beta",  # Rebif
    "1012896": "other_dmt",  # Gilenya
    "1310526": "other_dmt",  # Aubagio
}
# Product codes a single list gives without naming the product: not mapped (an unnamed code
# could be another immune globulin, and a first-line product code needs a name to be checked).
UNNAMED = ["1111642", "153324", "795748", "82828", "261457", "547199", "205847"]
NOT_MAPPED = [
    (RXNORM, "152605"),  # the Synthea MS module's "Betaferon": no second source
    (RXNORM, "1876381"),  # its "Ocrevus"
    (RXNORM, "1594659"),  # its "Lemtrada": alemtuzumab stays out on purpose
    (RXNORM, "82050"),  # its "Novantrone": mitoxantrone stays out on purpose
]


@pytest.mark.parametrize(("code", "value"), sorted(BRANDS.items()))
def test_rxnorm_brand_codes_map_to_their_class(code: str, value: str) -> None:
    """Each RxNorm brand-name code confirmed by two sources maps to its therapy class."""
    entry = default_code_tables().lookup("medication", RXNORM, code)
    assert entry is not None and entry.value == value


def test_the_rxnorm_ivig_ingredient_maps_to_ivig() -> None:
    """RxNorm 1426680, "immunoglobulin G, human", maps to ivig."""
    entry = default_code_tables().lookup("medication", RXNORM, "1426680")
    assert entry is not None and entry.value == "ivig"


@pytest.mark.parametrize("code", UNNAMED)
def test_product_codes_no_source_names_stay_out(code: str) -> None:
    """A product code listed without a name is not read as IVIG or as a first-line drug."""
    assert default_code_tables().lookup("medication", RXNORM, code) is None


@pytest.mark.parametrize(("system", "code"), NOT_MAPPED)
def test_single_source_and_excluded_codes_stay_out(system: str, code: str) -> None:
    """Codes no second source confirmed, or excluded by rule, are not in the medication table."""
    assert default_code_tables().lookup("medication", system, code) is None


def test_every_added_entry_names_its_source() -> None:
    """Every RxNorm medication entry says where it was verified and has a display."""
    rxnorm = [e for e in default_code_tables().entries("medication") if e.system == RXNORM]
    assert len(rxnorm) >= 7
    assert all(e.verified and e.display for e in rxnorm)


def test_rxnorm_methylprednisolone_maps() -> None:
    """RxNorm 6902, the methylprednisolone the Synthea MS module orders, is methylprednisolone."""
    entry = default_code_tables().lookup("medication", RXNORM, "6902")
    assert entry is not None and entry.value == "methylprednisolone"


def test_cis_snomed_code_maps_to_cis() -> None:
    """SNOMED CT 445967004 is in ms_diagnosis with value CIS."""
    entry = default_code_tables().lookup("ms_diagnosis", SCT, "445967004")
    assert entry is not None and entry.value == "CIS"


@pytest.mark.parametrize(
    ("code", "display"),
    [
        ("343601000000105", "Secondary progressive multiple sclerosis"),
        ("724778008", "Progressive relapsing multiple sclerosis"),
    ],
)
def test_unconfirmed_synthea_course_codes_stay_out(code: str, display: str) -> None:
    """The Synthea MS module's unconfirmed SPMS and PRMS codes are not in ms_diagnosis."""
    assert default_code_tables().lookup("ms_diagnosis", SCT, code) is None


def _ivig_request_rxnorm_only(code: str, display: str) -> dict[str, Any]:
    request: dict[str, Any] = json.loads(
        (HOOKS / "order-sign-spec-shape-with-ivig.json").read_text()
    )
    draft: dict[str, Any] = copy.deepcopy(request["context"]["draftOrders"])
    resource = draft["entry"][2]["resource"]
    resource["medicationCodeableConcept"] = {
        "coding": [{"system": RXNORM, "code": code, "display": display}]
    }
    return draft


@pytest.mark.parametrize(
    ("code", "display"),
    [("1426680", "immunoglobulin G, human")],
)
def test_medication_request_coded_only_in_rxnorm_is_read_as_an_ivig_order(
    code: str, display: str
) -> None:
    """A draft MedicationRequest whose only coding is an RxNorm IVIG code is the IVIG order."""
    orders = read_draft_orders(_ivig_request_rxnorm_only(code, display))
    assert [o.reference for o in orders.ivig] == ["MedicationRequest/ivig-draft-7"]


def test_medication_request_with_an_unknown_rxnorm_code_is_not_an_ivig_order() -> None:
    """The same draft coded with an RxNorm code outside the tables is not an IVIG order."""
    orders = read_draft_orders(_ivig_request_rxnorm_only("152605", "Betaferon"))
    assert orders.ivig == ()


def test_synthea_cis_condition_maps_to_cis() -> None:
    """A Condition coded as the Synthea MS module codes CIS makes the patient CIS."""
    mapping = patient_from_fhir(bundle(condition("cis", *CIS_SCT)), as_of=AS_OF)
    assert mapping.patient.ms_phenotype == "CIS"
    assert mapping.unmapped == ()


def test_synthea_cis_then_rrms_reads_as_rrms() -> None:
    """The Synthea MS module's CIS followed by its RRMS code reads as RRMS, the later course."""
    data = bundle(
        condition("ms", *MS_SCT, recorded="2018-03-01"),
        condition("cis", *CIS_SCT, recorded="2018-03-01"),
        condition("rrms", *RRMS_SCT, recorded="2019-09-01"),
    )
    assert patient_from_fhir(data, as_of=AS_OF).patient.ms_phenotype == "RRMS"


def test_synthea_spms_uk_code_is_reported_not_dropped() -> None:
    """The module's unconfirmed SPMS code is reported as unmapped; the course stays unknown."""
    spms = (SCT, "343601000000105", "Secondary progressive multiple sclerosis")
    mapping = patient_from_fhir(bundle(condition("spms", *spms)), as_of=AS_OF)
    assert mapping.patient.ms_phenotype is None
    assert mapping.unmapped != ()


def test_rxnorm_brand_statements_set_first_line_classes() -> None:
    """Avonex stopped for intolerance and Copaxone for an adverse reaction, both coded only by
    RxNorm brand: both first-line classes read as not tolerated."""
    data = bundle(
        condition("rrms", *RRMS_SCT),
        statement("avonex", RXNORM, "153326", "Avonex", status="stopped", reason=INTOLERANCE),
        statement(
            "copaxone", RXNORM, "135779", "Copaxone", status="stopped", reason=ADVERSE_REACTION
        ),
    )
    mapping = patient_from_fhir(data, as_of=AS_OF)
    assert mapping.patient.first_line_by_class == FirstLineByClass(
        interferon_beta="not_tolerated", glatiramer_acetate="not_tolerated"
    )
