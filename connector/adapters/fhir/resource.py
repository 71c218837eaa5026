"""One MedicationAdministration or Encounter resource: its version, the checks made before validation, its record.

Shared by single-resource documents and Bundle entries (``document``, ``bundle``).
"""

from __future__ import annotations

from typing import Final

import orjson

from connector.adapters.errors import MissingField
from connector.adapters.fhir.context import Reading
from connector.adapters.fhir.details import learn
from connector.adapters.fhir.encounter import encounter_event
from connector.adapters.fhir.fields import Json
from connector.adapters.fhir.medadmin import administration
from connector.adapters.sanity import identifier
from connector.model import ParsedRecord
from connector.model.ids import digest

MEDICATION_ADMINISTRATION: Final = "MedicationAdministration"
ENCOUNTER: Final = "Encounter"
TARGETS: Final = frozenset({MEDICATION_ADMINISTRATION, ENCOUNTER})

_R5_MEDADMIN: Final = frozenset(
    {
        "medication",
        "encounter",
        "occurenceDateTime",
        "occurencePeriod",
        "occurenceTiming",
        "isSubPotent",
        "subPotentReason",
        "recorded",
        "basedOn",
        "reason",
    }
)
_R4_MEDADMIN: Final = frozenset(
    {
        "medicationCodeableConcept",
        "medicationReference",
        "context",
        "effectiveDateTime",
        "effectivePeriod",
        "instantiates",
        "reasonCode",
        "reasonReference",
    }
)
_R5_ENCOUNTER: Final = frozenset(
    {
        "actualPeriod",
        "plannedStartDate",
        "plannedEndDate",
        "virtualService",
        "admission",
        "subjectStatus",
        "careTeam",
        "dietPreference",
        "specialArrangement",
        "specialCourtesy",
        "reason",
    }
)
_R4_ENCOUNTER: Final = frozenset(
    {"period", "hospitalization", "classHistory", "statusHistory", "reasonCode", "reasonReference"}
)
_R5_ONLY_STATUSES: Final = frozenset({"completed", "discharged", "on-hold", "discontinued"})
_R4_ONLY_STATUSES: Final = frozenset({"finished", "arrived", "triaged", "onleave"})
_R4_WHEN: Final = ("effectiveDateTime", "effectivePeriod")
_R5_WHEN: Final = ("occurenceDateTime", "occurencePeriod", "occurenceTiming")
_OCCURRENCE: Final = (
    ("occurrenceDateTime", "occurenceDateTime"),
    ("occurrencePeriod", "occurencePeriod"),
    ("occurrenceTiming", "occurenceTiming"),
    ("_occurrenceDateTime", "_occurenceDateTime"),
)
learn(sent for sent, _ in _OCCURRENCE)  # the corrected spelling is an element name too (details)


def type_of(resource: object) -> str:
    """The resourceType of a JSON value, or ``""`` when it is not an object with a string one."""
    if isinstance(resource, dict):
        found = resource.get("resourceType")
        if isinstance(found, str):
            return found
    return ""


def is_r5(resource: Json) -> bool:
    """Whether a MedicationAdministration or Encounter is R5 JSON (else R4/R4B), by its elements.

    For a MedicationAdministration, ``occurrence[x]`` is renamed to HL7's R5 spelling
    ``occurence[x]`` in place (unless both are sent: then validation rejects the extra one).
    """
    if type_of(resource) == MEDICATION_ADMINISTRATION:
        for sent, spelled in _OCCURRENCE:
            if sent in resource and spelled not in resource:
                resource[spelled] = resource.pop(sent)
        r5_score = len(_R5_MEDADMIN.intersection(resource))
        return r5_score > len(_R4_MEDADMIN.intersection(resource))
    sent_class = resource.get("class")
    status = resource.get("status")
    status = status if isinstance(status, str) else ""
    r5_score = len(_R5_ENCOUNTER.intersection(resource)) + isinstance(sent_class, list) + (status in _R5_ONLY_STATUSES)
    r4_score = len(_R4_ENCOUNTER.intersection(resource)) + isinstance(sent_class, dict) + (status in _R4_ONLY_STATUSES)
    return r5_score > r4_score


def precheck(resource: Json, r5: bool) -> None:
    """Checks made before validation, so that they get their own reject code.

    The resource id is trimmed of Unicode whitespace in place (``sanity.identifier``).

    Raises:
        BadIdentifier: The id is only whitespace or holds control characters (fhir.resources
            would call it invalid; it is an identifier no encounter or charge may carry).
        MissingField: A MedicationAdministration without effective[x] (R4) / occurence[x] (R5);
            fhir.resources would reject it as invalid, but it is a missing field.
    """
    resource_type = type_of(resource)
    sent_id = resource.get("id")
    if isinstance(sent_id, str) and resource_type in TARGETS:
        resource["id"] = identifier(sent_id, f"{resource_type}.id")
    if resource_type != MEDICATION_ADMINISTRATION:
        return
    names = _R5_WHEN if r5 else _R4_WHEN
    if not any(resource.get(name) is not None for name in names):
        raise MissingField(f"MedicationAdministration.{'occurence' if r5 else 'effective'}[x] absent")


def dedup_key(resource: Json) -> str:
    """``Type/id/_history/versionId``, else ``Type/id/sha256:<digest of the canonical JSON>``."""
    resource_type, resource_id = resource.get("resourceType"), resource.get("id")
    meta = resource.get("meta")
    version_id = meta.get("versionId") if isinstance(meta, dict) else None
    ident = resource_id if isinstance(resource_id, str) else ""
    if ident and isinstance(version_id, str) and version_id:
        return f"{resource_type}/{ident}/_history/{version_id}"
    canonical = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS).decode()
    return f"{resource_type}/{ident}/sha256:{digest((canonical,))}"


def record_of(resource: Json, r5: bool, reading: Reading) -> ParsedRecord:
    """The record of one validated MedicationAdministration or Encounter.

    Raises:
        AdapterError: The resource cannot be read (see ``administration``, ``encounter_event``).
    """
    key = dedup_key(resource)
    if resource["resourceType"] == MEDICATION_ADMINISTRATION:
        admin, seen = administration(resource, r5, reading)
        return ParsedRecord(key, (admin,), (seen,))
    return ParsedRecord(key, (), (encounter_event(resource, r5, reading),))
