"""FHIR inbound: validation (fhir.resources), fields, MedicationAdministration, Encounter, documents.

``parse_fhir`` (in ``document``) is the entry point: one JSON document, Bundle or NDJSON line.
"""

from connector.adapters.fhir.document import is_r5, parse_fhir

__all__ = ["is_r5", "parse_fhir"]
