"""FHIR MedicationAdministration (R4/R4B and R5 JSON) → Administration, plus a SEEN event for its encounter.

Reads the validated JSON (see ``validate``); every failure is an ``AdapterError`` whose
detail names the element, never its value. Besides the drug, route, method, times, dose and
status:

- Times are dated in a zone (``fields.moment``): the site zone of the facility of the
  Encounter the administration names, when this document holds that Encounter and the site
  profile names a zone for its ``serviceProvider``; else the default zone (``--zone``).
- ``category`` (R4 a CodeableConcept, R5 a list of them; codes ``inpatient``,
  ``outpatient``, ``community`` of medication-admin-category (R4) / medication-admin-location
  (R5)) becomes the SEEN event's ``class_hint`` through the patient class mapping
  (``mappings/patient_classes.yaml``): codings of those systems first, then any other coding
  the mapping knows; a code it does not know gives no hint (not OTHER: a hint is a fallback).
- ``primary``: an extension on the resource whose URL is the site's
  ``primary_fhir_extension`` with ``valueBoolean`` true, or ``valueCode``/``valueString``
  ``primary`` (any case); no URL configured, no primary.
- ``ordered_minutes`` from the order ``request`` names (``infusion.ordered_minutes``), and
  ``infuse_minutes`` from Oracle Health's infuse-over-time extension.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Final

from connector.adapters.errors import AdapterError, InvalidFhir, MissingField, UnknownStatus
from connector.adapters.fhir.context import Reading
from connector.adapters.fhir.fields import Json, coded, moment, number, obj, objects, reference_text, text, utc_iso
from connector.adapters.fhir.infusion import infuse_minutes, ordered_minutes
from connector.adapters.fhir.references import Resolver, encounter_ref, facility_of
from connector.adapters.sanity import DEFAULT_WINDOW, TimeWindow
from connector.model import (
    Administration,
    CodedValue,
    Coding,
    EncounterEvent,
    EncounterEventKind,
    PatientClass,
    SourceRef,
)
from connector.model.ids import administration_id
from connector.policy.model import Policy

SOURCE_KIND: Final = "fhir"
CATEGORY_SYSTEMS: Final = (
    "http://terminology.hl7.org/CodeSystem/medication-admin-category",  # R4
    "http://terminology.hl7.org/CodeSystem/medication-admin-location",  # R5
)
_NO_CONTEXTS: frozenset[str] = frozenset()


def administration(resource: Json, r5: bool, reading: Reading) -> tuple[Administration, EncounterEvent]:
    """One MedicationAdministration as an administration plus a SEEN event for its encounter.

    Args:
        resource: The validated resource JSON.
        r5: Whether it is R5 JSON (``medication``, ``encounter``, ``occurence[x]``).
        reading: Mappings, site profile, Bundle entries, window and default zone.

    Returns:
        The administration and the encounter it was seen in (with the ``category`` hint).

    Raises:
        AdapterError: Missing id, unmapped status, no encounter, no time or one outside the
            window, no drug; an identifier that is blank or holds control characters.
    """
    where = "MedicationAdministration"
    policy, resolver = reading.policy, reading.resolver
    resource_id = text(resource, "id", where)
    if not resource_id:
        raise MissingField("MedicationAdministration.id")
    status_text = text(resource, "status", where)
    status = policy.status_of(status_text, SOURCE_KIND)
    if status is None:
        raise UnknownStatus("MedicationAdministration.status not in the status mapping")
    context = "encounter" if r5 else "context"
    encounter = encounter_ref(resource, context, resolver, where)
    zone = reading.zone_of(_facility(resource, context, resolver, where))
    start, end = _when(resource, r5, where, reading.window, zone)
    contained = objects(resource, "contained", where)
    dosage = obj(resource, "dosage", where)
    dw = f"{where}.dosage"
    dose = obj(dosage, "dose", dw)
    site = coded(obj(dosage, "site", dw), f"{dw}.site")
    admin = Administration(
        id=administration_id(SOURCE_KIND, resource_id),
        encounter_key=encounter.key,
        drug=_drug(resource, r5, resolver, where),
        start=start,
        route=coded(obj(dosage, "route", dw), f"{dw}.route"),
        method=coded(obj(dosage, "method", dw), f"{dw}.method"),
        end=end,
        status=status,
        version=version_of(resource, where, reading.window),
        site=site.codings[0].code if site.codings and site.codings[0].code else site.text,
        dose=number(dose, "value", f"{dw}.dose"),
        dose_unit=text(dose, "code", f"{dw}.dose") or text(dose, "unit", f"{dw}.dose"),
        infuse_minutes=infuse_minutes(resource, where),
        ordered_minutes=ordered_minutes(resource, contained, resolver, where),
        has_rate=bool(obj(dosage, "rateRatio", dw) or obj(dosage, "rateQuantity", dw)),
        primary=_primary(resource, policy.site.primary_fhir_extension, where),
        contexts=_NO_CONTEXTS,
        source=SourceRef(SOURCE_KIND, f"MedicationAdministration/{resource_id}", reading.position),
    )
    hint = _class_hint(resource, r5, policy, where)
    return admin, EncounterEvent(encounter, EncounterEventKind.SEEN, class_hint=hint)


def _facility(resource: Json, name: str, resolver: Resolver, where: str) -> str:
    """The ``serviceProvider`` of the Encounter the administration names, when this document holds it."""
    literal = reference_text(obj(resource, name, where), f"{where}.{name}")
    target = resolver.get(literal) if literal else None
    if target is None or target.get("resourceType") != "Encounter":
        return ""
    try:
        return facility_of(target)
    except AdapterError:  # that Encounter's own record is rejected for it; here it names no zone
        return ""


def _class_hint(resource: Json, r5: bool, policy: Policy, where: str) -> PatientClass | None:
    """The patient class ``category`` implies (module docstring), or None."""
    if r5:
        concepts = objects(resource, "category", where)
        names = [f"{where}.category[{i}]" for i in range(len(concepts))]
    else:
        concepts = [obj(resource, "category", where)]
        names = [f"{where}.category"]
    codings = [c for concept, cw in zip(concepts, names, strict=True) for c in coded(concept, cw).codings]
    ranked = sorted(codings, key=lambda c: c.system not in CATEGORY_SYSTEMS)
    for coding in ranked:
        found = policy.patient_class_of(coding.code) if coding.code else None
        if found is not None:
            return found
    return None


def _primary(resource: Json, url: str, where: str) -> bool:
    """Whether the site's ``primary`` extension marks the administration (module docstring)."""
    if not url:
        return False
    for i, extension in enumerate(objects(resource, "extension", where)):
        if extension.get("url") != url:
            continue
        if extension.get("valueBoolean") is True:
            return True
        ew = f"{where}.extension[{i}]"
        sent = text(extension, "valueCode", ew) or text(extension, "valueString", ew)
        if sent.strip().lower() == "primary":
            return True
    return False


def version_of(resource: Json, where: str, window: TimeWindow = DEFAULT_WINDOW) -> str:
    """Order key among versions: zero-padded numeric versionId (or as sent), then lastUpdated in UTC."""
    meta = obj(resource, "meta", where)
    version_id = text(meta, "versionId", f"{where}.meta")
    updated_text = text(meta, "lastUpdated", f"{where}.meta")
    updated = utc_text(updated_text, f"{where}.meta.lastUpdated", window) if updated_text else ""
    if not version_id and not updated:
        return ""
    if version_id.isascii() and version_id.isdigit():
        version_id = f"{int(version_id):012d}"
    return f"{version_id}|{updated}"


def utc_text(value: str, where: str, window: TimeWindow = DEFAULT_WINDOW) -> str:
    """An instant as UTC ISO text."""
    return utc_iso(moment(value, where, window), where)


def _when(
    resource: Json, r5: bool, where: str, window: TimeWindow, zone: tzinfo | None
) -> tuple[datetime, datetime | None]:
    """Start and end from effective[x] (R4) or occurence[x] (R5), in ``zone``; a zero-length period has no end."""
    prefix = "occurence" if r5 else "effective"
    instant = resource.get(f"{prefix}DateTime")
    if instant is not None:
        return moment(instant, f"{where}.{prefix}DateTime", window, zone), None
    period = obj(resource, f"{prefix}Period", where)
    if not period:
        if r5 and resource.get("occurenceTiming") is not None:
            raise MissingField(f"{where}.occurenceTiming is not read: send occurenceDateTime or occurencePeriod")
        raise MissingField(f"{where}.{prefix}[x] absent")
    pw = f"{where}.{prefix}Period"
    if period.get("start") is None:
        raise MissingField(f"{pw}.start absent")
    start = moment(period["start"], f"{pw}.start", window, zone)
    end = moment(period["end"], f"{pw}.end", window, zone) if period.get("end") is not None else None
    if end is not None and end < start:
        raise InvalidFhir(f"{pw}.end before start (per-1)")
    return start, None if end == start else end


def _drug(resource: Json, r5: bool, resolver: Resolver, where: str) -> CodedValue:
    contained = objects(resource, "contained", where)
    if r5:
        medication = obj(resource, "medication", where)
        concept = coded(obj(medication, "concept", f"{where}.medication"), f"{where}.medication.concept")
        drug = concept if not concept.is_empty else _referenced(medication, "reference", contained, resolver, where)
    elif "medicationCodeableConcept" in resource:
        drug = coded(obj(resource, "medicationCodeableConcept", where), f"{where}.medicationCodeableConcept")
    else:
        drug = _referenced(resource, "medicationReference", contained, resolver, where)
    if drug.is_empty:
        raise MissingField(f"{where}.medication[x] has no code or text")
    return drug


def _referenced(parent: Json, name: str, contained: list[Json], resolver: Resolver, where: str) -> CodedValue:
    """The drug a Medication reference names: its code, else its ingredients, else the display."""
    rw = f"{where}.{name}"
    ref = obj(parent, name, where)
    display = text(ref, "display", rw)
    literal = reference_text(ref, rw)
    medication = resolver.find(literal, contained, f"{rw}.reference") if literal else None
    if medication is None:
        return CodedValue(text=display)
    if medication.get("resourceType") != "Medication":
        raise InvalidFhir(f"{rw}.reference does not name a Medication")
    mw = "Medication"
    code = coded(obj(medication, "code", mw), f"{mw}.code")
    if code.codings:
        return CodedValue(code.codings, code.text or display)
    codings: list[Coding] = []
    texts: list[str] = []
    for i, ingredient in enumerate(objects(medication, "ingredient", mw)):
        iw = f"{mw}.ingredient[{i}]"
        item = obj(ingredient, "itemCodeableConcept", iw) or obj(obj(ingredient, "item", iw), "concept", f"{iw}.item")
        concept = coded(item, f"{iw}.item")
        codings.extend(concept.codings)
        name_text = concept.text or next((c.display for c in concept.codings if c.display), "")
        if name_text:
            texts.append(name_text)
    return CodedValue(tuple(codings), code.text or " + ".join(texts) or display)
