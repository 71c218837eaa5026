"""FHIR MedicationAdministration (R4/R4B and R5 JSON) → Administration.

Reads the validated JSON (see ``validate``); every failure is an ``AdapterError`` whose
detail names the element, never its value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP
from typing import Final

from connector.adapters.errors import InvalidFhir, MissingEncounterKey, MissingField, UnknownStatus
from connector.adapters.fhir.fields import (
    RELATIVE_BASE,
    Json,
    coded,
    moment,
    number,
    obj,
    objects,
    parse_reference,
    reference_id,
    reference_text,
    text,
    utc_iso,
)
from connector.adapters.sanity import DEFAULT_WINDOW, TimeWindow, identifier
from connector.model import (
    Administration,
    CodedValue,
    Coding,
    EncounterEvent,
    EncounterEventKind,
    EncounterRef,
    SourceRef,
)
from connector.model.ids import administration_id
from connector.policy.model import Policy

SOURCE_KIND: Final = "fhir"
INFUSE_OVER_TIME: Final = "https://fhir-ehr.cerner.com/r4/StructureDefinition/infuse-over-time"
MAX_INFUSE_MINUTES: Final = 7 * 24 * 60  # one documented infusion; beyond this the value is an error
_MINUTES: Final = frozenset({"min", "mins", "minute", "minutes"})
_HOURS: Final = frozenset({"h", "hr", "hrs", "hour", "hours"})
_NO_CONTEXTS: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Resolver:
    """Finds the resources a reference points to: contained ones, then Bundle entries.

    Attributes:
        entries: Bundle entry resources by fullUrl and by ``Type/id`` (empty outside a Bundle).
        refused: Names (fullUrl, ``Type/id``) of Bundle entries that were rejected.
    """

    entries: Mapping[str, Json]
    refused: frozenset[str] = frozenset()

    def find(self, reference: str, contained: list[Json], where: str) -> Json | None:
        """The resource a literal reference names, or None when it is not in this document.

        Raises:
            InvalidFhir: A ``#id`` reference with no contained resource of that id (FHIR dom-3),
                or a reference to a rejected Bundle entry.
        """
        if reference.startswith("#"):
            for resource in contained:
                if resource.get("id") == reference[1:]:
                    return resource
            raise InvalidFhir(f"{where} names a contained resource that is not there")
        return self.entry(reference, where)

    def entry(self, reference: str, where: str) -> Json | None:
        """The Bundle entry resource a reference names (by fullUrl, else ``Type/id``), or None.

        Raises:
            InvalidFhir: The reference names an entry that was rejected.
        """
        names = [reference]
        parsed = parse_reference(reference)
        if parsed is not None:
            names.append(f"{parsed[1]}/{parsed[2]}")
        for name in names:
            found = self.entries.get(name)
            if found is not None:
                return found
        if self.refused.intersection(names):
            raise InvalidFhir(f"{where} names a rejected Bundle entry")
        return None


def administration(
    resource: Json, r5: bool, policy: Policy, resolver: Resolver, position: str, window: TimeWindow = DEFAULT_WINDOW
) -> tuple[Administration, EncounterEvent]:
    """One MedicationAdministration as an administration plus a SEEN event for its encounter.

    Args:
        resource: The validated resource JSON.
        r5: Whether it is R5 JSON (``medication``, ``encounter``, ``occurence[x]``).
        policy: Supplies the status mapping.
        resolver: Finds referenced Medication and Encounter resources.
        position: Where the input sits in its source.
        window: Accepted instants (effective[x]/occurence[x], meta.lastUpdated).

    Returns:
        The administration and the encounter it was seen in.

    Raises:
        AdapterError: Missing id, unmapped status, no encounter, no time or one outside the
            window, no drug; an identifier that is blank or holds control characters.
    """
    where = "MedicationAdministration"
    resource_id = text(resource, "id", where)
    if not resource_id:
        raise MissingField("MedicationAdministration.id")
    status_text = text(resource, "status", where)
    status = policy.status_of(status_text, SOURCE_KIND)
    if status is None:
        raise UnknownStatus("MedicationAdministration.status not in the status mapping")
    encounter = encounter_ref(resource, "encounter" if r5 else "context", resolver, where)
    start, end = _when(resource, r5, where, window)
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
        version=version_of(resource, where, window),
        site=site.codings[0].code if site.codings and site.codings[0].code else site.text,
        dose=number(dose, "value", f"{dw}.dose"),
        dose_unit=text(dose, "code", f"{dw}.dose") or text(dose, "unit", f"{dw}.dose"),
        infuse_minutes=_infuse_minutes(resource, where),
        has_rate=bool(obj(dosage, "rateRatio", dw) or obj(dosage, "rateQuantity", dw)),
        contexts=_NO_CONTEXTS,
        source=SourceRef(SOURCE_KIND, f"MedicationAdministration/{resource_id}", position),
    )
    return admin, EncounterEvent(encounter, EncounterEventKind.SEEN)


def encounter_ref(resource: Json, name: str, resolver: Resolver, where: str) -> EncounterRef:
    """The encounter a resource's ``context``/``encounter`` Reference names.

    Key: ``base|id`` with the reference's base URL, or ``RELATIVE_BASE`` for a relative
    reference. A ``urn:`` reference to a Bundle entry uses that Encounter's id (base
    ``RELATIVE_BASE``, as for Encounter resources). A logical reference (``identifier``
    only) uses ``system|value``. References and identifier values are trimmed of Unicode
    whitespace (``sanity.identifier``).

    Raises:
        MissingEncounterKey: No reference, or one that does not name an Encounter by id.
        BadIdentifier: A reference or identifier that is blank or holds control characters.
    """
    ref = obj(resource, name, where)
    if not ref:
        raise MissingEncounterKey(f"{where}.{name} absent")
    rw = f"{where}.{name}"
    patient = reference_id(resource, "subject", where)
    literal = reference_text(ref, rw)
    if literal:
        parsed = parse_reference(literal)
        if parsed is None and literal.startswith("urn:"):
            target = resolver.entry(literal, f"{rw}.reference")
            if target is not None and target.get("resourceType") == "Encounter":
                target_id = text(target, "id", rw)
                parsed = (RELATIVE_BASE, "Encounter", identifier(target_id, f"{rw}.reference") if target_id else "")
        if parsed is None or parsed[1] != "Encounter" or not parsed[2]:
            raise MissingEncounterKey(f"{rw}.reference does not name an Encounter by id")
        base, _, visit = parsed
        return EncounterRef(f"{base}|{visit}", visit, base, patient)
    logical = obj(ref, "identifier", rw)
    iw = f"{rw}.identifier"
    system, value = text(logical, "system", iw), text(logical, "value", iw)
    if not system or not value:
        raise MissingEncounterKey(f"{rw} has neither a reference nor an identifier system and value")
    system, value = identifier(system, f"{iw}.system"), identifier(value, f"{iw}.value")
    return EncounterRef(f"{system}|{value}", value, system, patient)


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


def _when(resource: Json, r5: bool, where: str, window: TimeWindow) -> tuple[datetime, datetime | None]:
    """Start and end from effective[x] (R4) or occurence[x] (R5); a zero-length period has no end."""
    prefix = "occurence" if r5 else "effective"
    instant = resource.get(f"{prefix}DateTime")
    if instant is not None:
        return moment(instant, f"{where}.{prefix}DateTime", window), None
    period = obj(resource, f"{prefix}Period", where)
    if not period:
        if r5 and resource.get("occurenceTiming") is not None:
            raise MissingField(f"{where}.occurenceTiming is not read: send occurenceDateTime or occurencePeriod")
        raise MissingField(f"{where}.{prefix}[x] absent")
    pw = f"{where}.{prefix}Period"
    if period.get("start") is None:
        raise MissingField(f"{pw}.start absent")
    start = moment(period["start"], f"{pw}.start", window)
    end = moment(period["end"], f"{pw}.end", window) if period.get("end") is not None else None
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


def _infuse_minutes(resource: Json, where: str) -> int | None:
    """Minutes from Oracle Health's infuse-over-time extension (hours converted), or None."""
    for i, extension in enumerate(objects(resource, "extension", where)):
        if extension.get("url") != INFUSE_OVER_TIME:
            continue
        ew = f"{where}.extension[{i}].valueQuantity"
        quantity = obj(extension, "valueQuantity", f"{where}.extension[{i}]")
        value = number(quantity, "value", ew)
        if value is None:
            raise MissingField(f"{ew}.value absent")
        unit = (text(quantity, "code", ew) or text(quantity, "unit", ew) or "min").strip().lower()
        if unit in _HOURS:
            value *= 60
        elif unit not in _MINUTES:
            raise InvalidFhir(f"{ew} unit is neither minutes nor hours")
        if not 0 <= value <= MAX_INFUSE_MINUTES:
            raise InvalidFhir(f"{ew}.value is negative or longer than a week")
        return int(value.to_integral_value(rounding=ROUND_HALF_UP))
    return None
