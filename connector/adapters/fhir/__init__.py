"""FHIR inbound: validation (fhir.resources), fields, MedicationAdministration, Encounter, Bundles, documents.

``read_fhir`` (in ``document``) is the entry point: one JSON document, Bundle or NDJSON line →
records plus the Bundle entries rejected on their own; ``parse_fhir`` is its one-fate form.
"""

from connector.adapters.fhir.document import parse_fhir, read_fhir
from connector.adapters.fhir.resource import is_r5

__all__ = ["is_r5", "parse_fhir", "read_fhir"]
