"""The FHIR R4 adapter: EHR records in, a `PatientContext` (and its provenance) out.

Parsing (`_parse`) reads FHIR JSON with the `fhir.resources.R4B` models; the mapping
(`_mapping`) runs one reader per part of the record (`_conditions`, `_thrombosis`,
`_medications`, `_ivig_use`, `_observations`) over the code tables (`_codes`, data in
`codes/*.yaml`, with a site's own codes added by `_site_maps`, read by `_site_formats`);
`_orders` reads CDS Hooks draft orders leniently. The rest of the package uses only the names
below.
"""

from ivig_cds.fhir._codes import (
    GROUP_VALUES,
    CodeTables,
    FhirCodeTableError,
    SiteCodeEntry,
    default_code_tables,
    load_code_tables,
)
from ivig_cds.fhir._mapping import (
    FhirMapping,
    evaluate_fhir,
    patient_from_fhir,
    patient_from_resources,
)
from ivig_cds.fhir._orders import (
    DraftOrder,
    DraftOrders,
    ivig_given,
    ivig_orders,
    read_draft_orders,
)
from ivig_cds.fhir._parse import MAX_RESOURCES, FhirDataError, ref, resources_of
from ivig_cds.fhir._projection import READ_FIELDS, for_mapping, project
from ivig_cds.fhir._record import FhirConflict
from ivig_cds.fhir._site_maps import (
    CONCEPT_SYSTEM,
    SiteMapError,
    SiteMaps,
    load_site_maps,
    site_code_tables,
)

__all__ = [
    "CONCEPT_SYSTEM",
    "GROUP_VALUES",
    "MAX_RESOURCES",
    "READ_FIELDS",
    "CodeTables",
    "DraftOrder",
    "DraftOrders",
    "FhirCodeTableError",
    "FhirConflict",
    "FhirDataError",
    "FhirMapping",
    "SiteCodeEntry",
    "SiteMapError",
    "SiteMaps",
    "default_code_tables",
    "evaluate_fhir",
    "for_mapping",
    "ivig_given",
    "ivig_orders",
    "load_code_tables",
    "load_site_maps",
    "patient_from_fhir",
    "patient_from_resources",
    "project",
    "read_draft_orders",
    "ref",
    "resources_of",
    "site_code_tables",
]
