"""Synthetic feeds as FHIR R4 resources: a MedicationAdministration per version, an Encounter each.

``context`` Encounter, ``effectiveDateTime``/``effectivePeriod`` with offsets, SNOMED routes,
v2-0165 ``IVP`` for pushes; Cerner-like records use ``effectiveDateTime``, route text and the
infuse-over-time extension instead; corrections as versionId 2 (``entered-in-error`` for
deletions); one ``finished`` Encounter per encounter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import orjson

from connector.synth.feed import CORRECTED, FeedEncounter, FeedEvent

RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED: Final = "http://snomed.info/sct"
V2_0165: Final = "http://terminology.hl7.org/CodeSystem/v2-0165"
ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
UCUM: Final = "http://unitsofmeasure.org"
INFUSE_OVER_TIME: Final = "https://fhir-ehr.cerner.com/r4/StructureDefinition/infuse-over-time"
_TIMED: Final = frozenset({"infusion", "chemo", "hydration"})
_IV_ROUTE: Final = {"coding": [{"system": SNOMED, "code": "47625008", "display": "Intravenous route"}]}
_IM_ROUTE: Final = {"coding": [{"system": SNOMED, "code": "78421000", "display": "Intramuscular route"}]}
_PUSH_METHOD: Final = {"coding": [{"system": V2_0165, "code": "IVP", "display": "IV Push"}]}


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _number(text: str) -> int | float:
    return int(text) if text.isdigit() else float(text)


def fhir_resource(event: FeedEvent) -> dict[str, Any]:
    """One event as a FHIR R4 resource: a MedicationAdministration version, or the Encounter."""
    encounter, admin = event.encounter, event.administration
    if admin is None:
        return _encounter_resource(encounter)
    item = admin.item
    fix = admin.correction if event.kind == CORRECTED else None
    epic = encounter.vendor == "epic"
    end = fix.end if fix is not None else admin.end
    deleted = fix is not None and fix.action == "D"
    status = "entered-in-error" if deleted else ("completed" if admin.given else "not-done")
    medication: dict[str, Any] = {"text": item.text}
    if admin.send_code:
        medication = {"coding": [{"system": RXNORM, "code": item.rxnorm}], "text": item.text}
    resource: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": f"ma-{admin.order}-{admin.sub_id}",
        "meta": {"versionId": "2" if fix is not None else "1", "lastUpdated": _iso(event.at)},
        "status": status,
        "medicationCodeableConcept": medication,
        "subject": {"reference": f"Patient/{encounter.patient}"},
        "context": {"reference": f"Encounter/{encounter.visit}"},
    }
    timed = item.kind in _TIMED
    if timed and end is not None and epic:
        resource["effectivePeriod"] = {"start": _iso(admin.start), "end": _iso(end)}
    else:
        resource["effectiveDateTime"] = _iso(admin.start)
    if timed and end is not None and not epic:
        minutes = int((end - admin.start).total_seconds()) // 60
        resource["extension"] = [
            {"url": INFUSE_OVER_TIME, "valueQuantity": {"value": minutes, "unit": "min", "system": UCUM, "code": "min"}}
        ]
    resource["performer"] = [{"actor": {"reference": f"Practitioner/{1000 + encounter.number % 97}"}}]
    resource["request"] = {"reference": f"MedicationRequest/{admin.order}"}
    dose_text = fix.dose if fix is not None else admin.dose
    dosage: dict[str, Any] = {"route": _route(item.kind, epic)}
    if item.kind == "push" and epic:
        dosage["method"] = _PUSH_METHOD
    dosage["dose"] = {"value": _number(dose_text), "unit": item.unit, "system": UCUM, "code": item.unit}
    if item.kind == "hydration" and epic and end is not None:
        hours = max((end - admin.start).total_seconds() / 3600, 0.25)
        dosage["rateQuantity"] = {"value": round(_number(dose_text) / hours), "unit": "mL/h", "system": UCUM}
    resource["dosage"] = dosage
    return resource


def _route(kind: str, epic: bool) -> dict[str, Any]:
    if kind == "im":
        return _IM_ROUTE
    if epic:
        return _IV_ROUTE
    return {**_IV_ROUTE, "text": "IV Push" if kind == "push" else "IV Piggyback"}


def _encounter_resource(encounter: FeedEncounter) -> dict[str, Any]:
    code, display = ("OBSENC", "observation encounter") if encounter.observation else ("EMER", "emergency")
    return {
        "resourceType": "Encounter",
        "id": encounter.visit,
        "meta": {"versionId": "2", "lastUpdated": _iso(encounter.discharge)},
        "status": "finished",
        "class": {"system": ACT_CODE, "code": code, "display": display},
        "subject": {"reference": f"Patient/{encounter.patient}"},
        "period": {"start": _iso(encounter.arrival), "end": _iso(encounter.discharge)},
        "serviceProvider": {"reference": f"Organization/{encounter.facility}"},
    }


def fhir_line(event: FeedEvent) -> bytes:
    """One event as an NDJSON line."""
    return orjson.dumps(fhir_resource(event)) + b"\n"
