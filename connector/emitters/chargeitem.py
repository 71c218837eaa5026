"""FHIR R4 ChargeItem output: one transaction Bundle per charge message.

The Bundle is built as plain dicts, validated with the fhir.resources **R4B** models (R4 JSON
validates as R4B; fhir.resources 8 has no R4 package) and serialised by the model: one line of
JSON, UTF-8, newline-terminated, keys in the FHIR element order, so the same message always
renders the same bytes.

Conventions (documented for receivers):

* **Bundle**: ``id`` = message id, ``type`` = ``transaction``, one entry per line action.
* **Idempotent PUT**: each entry is ``PUT ChargeItem/<line_id>``, so a redelivered or replayed
  message updates the same resources instead of creating duplicates. ``fullUrl`` is
  ``urn:uuid:<uuid5(NAMESPACE_URL, "urn:ivpush:chargeitem:<line_id>")>``: deterministic, and a
  ``urn:uuid`` as R4 expects of a fullUrl that is not the resource's RESTful URL.
* **Credits**: core FHIR has no credit status. A credit re-sends the charged line (same id)
  with ``status`` = ``entered-in-error``: the item must no longer be billed. Charges are
  ``billable``. No offsetting item is created.
* **Code**: ``code`` holds the CPT/HCPCS code alone (system ``http://www.ama-assn.org/go/cpt``).
  ChargeItem has no modifier element and codings are alternative codes for one concept, so
  modifiers are **not** codings: each one is an extension
  ``urn:ivpush:fhir:StructureDefinition:cpt-modifier`` (``valueCoding``, CPT system), in line order.
* **Chargemaster and revenue code**: extensions ``urn:ivpush:fhir:StructureDefinition:charge-code``
  (``valueString``) and ``urn:ivpush:fhir:StructureDefinition:revenue-code`` (``valueCoding``,
  system ``https://www.nubc.org/CodeSystem/RevenueCodes``), omitted when empty.
* ``identifier`` = the line id (system ``urn:ivpush:line-id``); ``service`` references each
  administration behind the line by identifier (system ``urn:ivpush:administration-id``);
  ``occurrenceDateTime`` = the service date; ``quantity.value`` = units; ``note`` = the rule
  and the reason (``<rule>: <reason>``).
* ``subject`` is a logical reference carrying the patient's identifier: ``{"type": "Patient",
  "identifier": {"system": <patient_system>, "value": <patient id>, "assigner": {"display":
  <assigning authority>}}}`` (``ChargeItemSettings``): the patient id is a medical record
  number, not the receiver's Patient resource id. ``subject="reference"`` sends
  ``Patient/<patient id>`` instead when the value is a FHIR id (the receiver keys its Patients
  by MRN). An unknown patient is a Reference with only the ``data-absent-reason`` extension
  (``unknown``), since ``subject`` is required.
* ``context`` = ``Encounter/<visit number>`` when the value is a valid FHIR id; otherwise a
  logical reference by identifier (``type`` + identifier value, the assigning authority as
  ``assigner.display``).
* Line flags (``needs_review``, ``write_off``, …) are not carried.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from fhir.resources.R4B.bundle import Bundle

from connector.model.charge import ChargeLine
from connector.model.events import EncounterRef
from connector.model.messages import Action, ChargeMessage, LineAction

CONTENT_TYPE = "application/fhir+json"

CPT_SYSTEM: Final = "http://www.ama-assn.org/go/cpt"
REVENUE_CODE_SYSTEM: Final = "https://www.nubc.org/CodeSystem/RevenueCodes"
LINE_ID_SYSTEM: Final = "urn:ivpush:line-id"
ADMINISTRATION_ID_SYSTEM: Final = "urn:ivpush:administration-id"
MODIFIER_EXTENSION: Final = "urn:ivpush:fhir:StructureDefinition:cpt-modifier"
CHARGE_CODE_EXTENSION: Final = "urn:ivpush:fhir:StructureDefinition:charge-code"
REVENUE_CODE_EXTENSION: Final = "urn:ivpush:fhir:StructureDefinition:revenue-code"
DATA_ABSENT_REASON: Final = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
FULL_URL_PREFIX: Final = "urn:ivpush:chargeitem:"
PATIENT_ID_SYSTEM: Final = "urn:ivpush:patient-id"

Subject = Literal["identifier", "reference"]

STATUS: Final = {Action.CHARGE: "billable", Action.CREDIT: "entered-in-error"}
"""ChargeItem.status for each line action."""

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


@dataclass(frozen=True)
class ChargeItemSettings:
    """Site settings for the ChargeItem output.

    Attributes:
        subject: ``identifier``: the patient by identifier (``system`` + ``value``);
            ``reference``: ``Patient/<patient id>`` when the id is a FHIR id.
        patient_system: ``Identifier.system`` of the patient id (a URI: the site's MRN system).
    """

    subject: Subject = "identifier"
    patient_system: str = PATIENT_ID_SYSTEM

    def __post_init__(self) -> None:
        if self.subject not in get_args(Subject):
            raise ValueError(f"subject must be one of {', '.join(get_args(Subject))}, not {self.subject!r}")
        if not self.patient_system.strip():
            raise ValueError("patient_system must be a URI, not empty")


DEFAULT_SETTINGS: Final = ChargeItemSettings()


def as_dict(message: ChargeMessage, settings: ChargeItemSettings = DEFAULT_SETTINGS) -> dict[str, Any]:
    """The Bundle as a JSON-ready dict (not yet validated)."""
    bundle: dict[str, Any] = {"resourceType": "Bundle", "id": message.message_id, "type": "transaction"}
    if message.lines:
        bundle["entry"] = [_entry(item, message.encounter, settings) for item in message.lines]
    return bundle


def render(message: ChargeMessage, settings: ChargeItemSettings = DEFAULT_SETTINGS) -> bytes:
    """The Bundle as one line of JSON (with its newline), validated with the R4B models.

    Raises:
        pydantic.ValidationError: A value FHIR does not accept (e.g. a message id that is not
            a FHIR id).
    """
    bundle = Bundle.model_validate(as_dict(message, settings))
    return bundle.model_dump_json().encode("utf-8") + b"\n"


def full_url(line_id: str) -> str:
    """The deterministic ``urn:uuid`` fullUrl of a line's entry."""
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, FULL_URL_PREFIX + line_id))


def _entry(item: LineAction, ref: EncounterRef, settings: ChargeItemSettings) -> dict[str, Any]:
    line_id = item.line.line_id
    return {
        "fullUrl": full_url(line_id),
        "resource": _charge_item(item, ref, settings),
        "request": {"method": "PUT", "url": f"ChargeItem/{line_id}"},
    }


def _charge_item(item: LineAction, ref: EncounterRef, settings: ChargeItemSettings) -> dict[str, Any]:
    line = item.line
    resource: dict[str, Any] = {
        "resourceType": "ChargeItem",
        "id": line.line_id,
    }
    extensions = _extensions(line)
    if extensions:
        resource["extension"] = extensions
    resource |= {
        "identifier": [{"system": LINE_ID_SYSTEM, "value": line.line_id}],
        "status": STATUS[item.action],
        "code": {"coding": [{"system": CPT_SYSTEM, "code": line.code}]},
        "subject": _subject(ref, settings),
        "context": _reference("Encounter", ref.visit_number, ref.assigning_authority),
        "occurrenceDateTime": line.service_date.isoformat(),
        "quantity": {"value": line.units},
    }
    if line.administration_ids:
        resource["service"] = [
            {"identifier": {"system": ADMINISTRATION_ID_SYSTEM, "value": admin_id}}
            for admin_id in line.administration_ids
        ]
    note = ": ".join(part for part in (line.rule, line.reason) if part)
    if note:
        resource["note"] = [{"text": note}]
    return resource


def _extensions(line: ChargeLine) -> list[dict[str, Any]]:
    extensions: list[dict[str, Any]] = [
        {"url": MODIFIER_EXTENSION, "valueCoding": {"system": CPT_SYSTEM, "code": modifier}}
        for modifier in line.modifiers
    ]
    if line.charge_code:
        extensions.append({"url": CHARGE_CODE_EXTENSION, "valueString": line.charge_code})
    if line.revenue_code:
        extensions.append(
            {"url": REVENUE_CODE_EXTENSION, "valueCoding": {"system": REVENUE_CODE_SYSTEM, "code": line.revenue_code}}
        )
    return extensions


def _subject(ref: EncounterRef, settings: ChargeItemSettings) -> dict[str, Any]:
    """The patient by identifier (the default), or as ``_reference`` makes it."""
    if settings.subject == "reference" or not ref.patient_id:
        return _reference("Patient", ref.patient_id, ref.assigning_authority)
    identifier: dict[str, Any] = {"system": settings.patient_system, "value": ref.patient_id}
    if ref.assigning_authority:
        identifier["assigner"] = {"display": ref.assigning_authority}
    return {"type": "Patient", "identifier": identifier}


def _reference(resource_type: str, identifier: str, assigning_authority: str) -> dict[str, Any]:
    """A literal reference when the value is a FHIR id, else a logical one; never empty."""
    if _FHIR_ID.fullmatch(identifier):
        return {"reference": f"{resource_type}/{identifier}"}
    if identifier:
        logical: dict[str, Any] = {"value": identifier}
        if assigning_authority:
            logical["assigner"] = {"display": assigning_authority}
        return {"type": resource_type, "identifier": logical}
    return {"extension": [{"url": DATA_ABSENT_REASON, "valueCode": "unknown"}]}
