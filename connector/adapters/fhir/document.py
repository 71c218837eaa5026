"""FHIR inbound adapter: one JSON document → one ParsedRecord per administration or encounter.

Accepts a single MedicationAdministration or Encounter, or a Bundle of type transaction,
batch, collection, searchset or message (MessageHeader first) carrying them. Other entries
(MessageHeader, Patient, Medication, …) make no record, but Medication entries and contained
Medications resolve ``medicationReference``/``medication.reference``.

Versions: R4/R4B JSON (``medicationCodeableConcept``/``medicationReference``, ``context``,
``effective[x]``; Encounter ``class`` as a Coding, ``period``) is validated with the
fhir.resources R4B models; R5 JSON (``medication`` CodeableReference, ``encounter``,
``occurence[x]`` — HL7's spelling; ``occurrence[x]`` is accepted and read the same —
Encounter ``class`` as a list, ``actualPeriod``) with the R5 models. Every resource is
validated (``validate``) before it is read; one input has one fate: any resource that
fails rejects the whole document.

Identity: the administration id comes from the resource id (stable across versions);
``version`` orders versions (numeric versionId zero-padded to 12 digits, then lastUpdated
in UTC); ``dedup_key`` is ``Type/id/_history/versionId``, or ``Type/id/sha256:<digest of the
canonical JSON>`` without a versionId. Encounter keys: ``fields.RELATIVE_BASE``.

Every failure is an ``AdapterError`` whose detail names the element, never a value.
"""

from __future__ import annotations

from typing import Final, cast

import orjson

from connector.adapters.errors import InvalidFhir, MissingField, OversizeInput, UnsupportedMessageType
from connector.adapters.fhir.encounter import encounter_event
from connector.adapters.fhir.fields import Json, parse_reference
from connector.adapters.fhir.medadmin import Resolver, administration
from connector.adapters.fhir.validate import R4B, R5, validate
from connector.model import ParsedRecord
from connector.model.ids import digest
from connector.policy.model import Policy

MAX_BYTES: Final = 1 << 20
MEDICATION_ADMINISTRATION: Final = "MedicationAdministration"
ENCOUNTER: Final = "Encounter"
TARGETS: Final = frozenset({MEDICATION_ADMINISTRATION, ENCOUNTER})
BUNDLE_TYPES: Final = frozenset({"transaction", "batch", "collection", "searchset", "message"})

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


def parse_fhir(raw: bytes, policy: Policy, position: str = "", max_bytes: int = MAX_BYTES) -> list[ParsedRecord]:
    """Read one FHIR JSON document into records.

    Args:
        raw: One JSON document (a resource or a Bundle), UTF-8.
        policy: Supplies the status (``fhir:``) and patient class mappings.
        position: Where the document sits in its source (file offset, queue position).
        max_bytes: Inputs larger than this are rejected unread.

    Returns:
        One record per MedicationAdministration (an administration plus a SEEN event for its
        encounter) and per Encounter (an UPDATE or CLOSE event), in document order.

    Raises:
        AdapterError: Any input that cannot be read; nothing else escapes for any bytes.
    """
    if len(raw) > max_bytes:
        raise OversizeInput(f"input larger than {max_bytes} bytes")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidFhir("not JSON") from None
    if not isinstance(document, dict):
        raise InvalidFhir("not a JSON object")
    resource_type = document.get("resourceType")
    if not isinstance(resource_type, str):
        raise InvalidFhir("resourceType absent or not a JSON string")
    if resource_type == "Bundle":
        return _bundle(document, policy, position)
    if resource_type not in TARGETS:
        raise UnsupportedMessageType("resourceType is not MedicationAdministration, Encounter or Bundle")
    r5 = is_r5(document)
    precheck(document, r5)
    validate(R5 if r5 else R4B, document, resource_type)
    return [_record(document, r5, policy, Resolver({}), position)]


def is_r5(resource: Json) -> bool:
    """Whether a MedicationAdministration or Encounter is R5 JSON (else R4/R4B), by its elements.

    For a MedicationAdministration, ``occurrence[x]`` is renamed to HL7's R5 spelling
    ``occurence[x]`` in place (unless both are sent: then validation rejects the extra one).
    """
    if _type_of(resource) == MEDICATION_ADMINISTRATION:
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

    Raises:
        MissingField: A MedicationAdministration without effective[x] (R4) / occurence[x] (R5);
            fhir.resources would reject it as invalid, but it is a missing field.
    """
    if _type_of(resource) != MEDICATION_ADMINISTRATION:
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


def _record(resource: Json, r5: bool, policy: Policy, resolver: Resolver, position: str) -> ParsedRecord:
    key = dedup_key(resource)
    if resource["resourceType"] == MEDICATION_ADMINISTRATION:
        admin, seen = administration(resource, r5, policy, resolver, position)
        return ParsedRecord(key, (admin,), (seen,))
    return ParsedRecord(key, (), (encounter_event(resource, r5, policy),))


def _bundle(bundle: Json, policy: Policy, position: str) -> list[ParsedRecord]:
    """The records of a Bundle's MedicationAdministration and Encounter entries."""
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise InvalidFhir("Bundle.entry is not an array")
    targets: list[Json] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue  # validation rejects it
        resource = entry.get("resource")
        resource_type = _type_of(resource)
        if resource_type in TARGETS:
            targets.append(cast(Json, resource))
        else:
            if resource_type == "Bundle":
                raise UnsupportedMessageType(f"Bundle.entry[{i}].resource is a nested Bundle")
            _check_request(entry, i)
    if not targets:
        raise UnsupportedMessageType("Bundle carries no MedicationAdministration or Encounter")
    kind = bundle.get("type")
    if isinstance(kind, str) and kind not in BUNDLE_TYPES:
        raise UnsupportedMessageType("Bundle.type is not transaction, batch, collection, searchset or message")
    versions = {is_r5(resource) for resource in targets}
    if len(versions) > 1:
        raise InvalidFhir("Bundle.entry mixes R4 and R5 resources")
    r5 = versions.pop()
    for resource in targets:
        precheck(resource, r5)
    validate(R5 if r5 else R4B, bundle, "Bundle")
    for i, entry in enumerate(entries):  # fhir.resources also takes JSON text holding an object
        if not isinstance(entry, dict) or not isinstance(entry.get("resource") or {}, dict):
            raise InvalidFhir(f"Bundle.entry[{i}] or its resource is not a JSON object")
    header = entries[0].get("resource") if kind == "message" else None
    if kind == "message" and (not isinstance(header, dict) or header.get("resourceType") != "MessageHeader"):
        raise InvalidFhir("Bundle.entry[0] of a message Bundle is not a MessageHeader")
    resolver = Resolver(_index(entries))
    return [_record(resource, r5, policy, resolver, position) for resource in targets]


def _type_of(resource: object) -> str:
    """The resourceType of a JSON value, or ``""`` when it is not an object with a string one."""
    if isinstance(resource, dict):
        found = resource.get("resourceType")
        if isinstance(found, str):
            return found
    return ""


def _check_request(entry: Json, i: int) -> None:
    """Reject an entry that deletes or patches an administration or encounter: it cannot be read."""
    request = entry.get("request")
    if not isinstance(request, dict) or request.get("method") not in ("DELETE", "PATCH"):
        return
    url = request.get("url")
    if isinstance(url, str) and TARGETS.intersection(url.split("?", 1)[0].split("/")):
        raise UnsupportedMessageType(f"Bundle.entry[{i}].request deletes or patches an administration or encounter")


def _index(entries: list[Json]) -> dict[str, Json]:
    """Entry resources by fullUrl and by ``Type/id``, for reference resolution (first wins)."""
    found: dict[str, Json] = {}
    for entry in entries:
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str):
            found.setdefault(full_url, resource)
            named = parse_reference(full_url)  # https://…/Medication/5 also answers Medication/5
            if named is not None:
                found.setdefault(f"{named[1]}/{named[2]}", resource)
        resource_id = resource.get("id")
        if isinstance(resource_id, str):
            found.setdefault(f"{_type_of(resource)}/{resource_id}", resource)
    return found
