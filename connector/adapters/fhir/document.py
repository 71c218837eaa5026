"""FHIR inbound adapter: one JSON document → one ParsedRecord per administration or encounter.

Accepts a single MedicationAdministration or Encounter, or a Bundle of type transaction,
batch, collection, searchset or message (MessageHeader first) carrying them. Other entries
(MessageHeader, Patient, Medication, Account, Coverage, …) make no record, but they resolve
references: Medications the drug, Encounters the facility zone of an administration,
Accounts and Coverages an Encounter's payer (``coverage``), MedicationRequests the ordered
infusion time (``infusion``), Locations the place. A document that is only one of these
(an Account or Coverage on its own included) is ``unsupported_message_type``.

Versions: R4/R4B JSON (``medicationCodeableConcept``/``medicationReference``, ``context``,
``effective[x]``; Encounter ``class`` as a Coding, ``period``) is validated with the
fhir.resources R4B models; R5 JSON (``medication`` CodeableReference, ``encounter``,
``occurence[x]`` — HL7's spelling; ``occurrence[x]`` is accepted and read the same —
Encounter ``class`` as a list, ``actualPeriod``) with the R5 models. Every resource is
validated (``validate``) before it is read. A single resource has one fate; a Bundle is read
entry by entry (``bundle``): an unusable entry is rejected on its own and the others are kept.

JSON: an object that repeats a key is rejected (``jsondoc``). Times outside the accepted
window (``sanity.TimeWindow``) are ``bad_timestamp``; ids and references are trimmed of
Unicode whitespace and rejected as ``bad_identifier`` when blank or holding control characters.

Identity: the administration id comes from the resource id (stable across versions);
``version`` orders versions (numeric versionId zero-padded to 12 digits, then lastUpdated
in UTC); ``dedup_key`` is ``Type/id/_history/versionId``, or ``Type/id/sha256:<digest of the
canonical JSON>`` without a versionId. Encounter keys: ``fhir|<Encounter id>`` whether the
encounter is referenced relatively, absolutely or by ``urn:uuid`` (``references``).

Zones: every instant an administration or encounter is dated by (effective[x],
occurence[x], Encounter periods) is expressed in its facility's site zone, else in the
default zone ``local_zone`` (``context.Reading``), with a fixed offset per instant.

Every failure is an ``AdapterError`` whose detail names the element, never a value
(``details``).
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Final

from connector.adapters.errors import InvalidFhir, OversizeInput, UnsupportedMessageType
from connector.adapters.fhir.bundle import read_bundle
from connector.adapters.fhir.context import Reading
from connector.adapters.fhir.jsondoc import load
from connector.adapters.fhir.resource import TARGETS, is_r5, precheck, record_of
from connector.adapters.fhir.validate import R4B, R5, validate
from connector.adapters.result import Parsed
from connector.adapters.sanity import DEFAULT_WINDOW, TimeWindow
from connector.model import ParsedRecord
from connector.policy.model import Policy

MAX_BYTES: Final = 1 << 20


def read_fhir(
    raw: bytes,
    policy: Policy,
    position: str = "",
    max_bytes: int = MAX_BYTES,
    *,
    window: TimeWindow = DEFAULT_WINDOW,
    local_zone: tzinfo | None = None,
) -> Parsed:
    """Read one FHIR JSON document into records, and the Bundle entries rejected on their own.

    Args:
        raw: One JSON document (a resource or a Bundle), UTF-8.
        policy: Supplies the status (``fhir:``) and patient class mappings.
        position: Where the document sits in its source (file offset, queue position).
        max_bytes: Inputs larger than this are rejected unread.
        window: Accepted instants (effective[x]/occurence[x], periods, meta.lastUpdated).
        local_zone: The default zone (``--zone``): every instant read is dated in its
            facility's site zone (``policy.site``), else in this one; None keeps each
            instant's offset as sent (tests, tools without a site).

    Returns:
        One record per usable MedicationAdministration (an administration plus a SEEN event
        for its encounter) and Encounter (an UPDATE or CLOSE event), in document order; and
        one ``PartReject`` (``entry[i]``) per Bundle entry that could not be used.

    Raises:
        AdapterError: The document as a whole cannot be read; nothing else escapes for any bytes.
    """
    if len(raw) > max_bytes:
        raise OversizeInput(f"input larger than {max_bytes} bytes")
    loaded = load(raw)
    document = loaded.value
    if not isinstance(document, dict):
        raise InvalidFhir("not a JSON object")
    resource_type = document.get("resourceType")
    if not isinstance(resource_type, str):
        raise InvalidFhir("resourceType absent or not a JSON string")
    if resource_type == "Bundle":
        return read_bundle(document, policy, position, window, loaded.repeated, local_zone)
    if resource_type not in TARGETS:
        raise UnsupportedMessageType("resourceType is not MedicationAdministration, Encounter or Bundle")
    r5 = is_r5(document)
    precheck(document, r5)
    validate(R5 if r5 else R4B, document, resource_type)
    return Parsed((record_of(document, r5, Reading(policy, position=position, window=window, zone=local_zone)),))


def parse_fhir(
    raw: bytes,
    policy: Policy,
    position: str = "",
    max_bytes: int = MAX_BYTES,
    *,
    window: TimeWindow = DEFAULT_WINDOW,
    local_zone: tzinfo | None = None,
) -> list[ParsedRecord]:
    """``read_fhir`` with one fate per document: the records, or the first reject (whole or entry).

    For callers that treat a Bundle atomically (tests, benchmarks, an ingress that answers a
    FHIR ``transaction``); replay and the consumer use ``read_fhir`` through ``dispatch``.

    Raises:
        AdapterError: The document, or one of its Bundle entries, cannot be read.
    """
    return read_fhir(raw, policy, position, max_bytes, window=window, local_zone=local_zone).strict()
