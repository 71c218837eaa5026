"""FHIR Encounter (R4/R4B and R5 JSON) → EncounterEvent: key, status, class, time, payer, location.

- Key: ``fhir|<id>``, the key every reference form gives (``references``).
- Time: ``at`` is dated in the site zone of the Encounter's facility (``serviceProvider``
  id, else its display; ``SiteProfile.zone_for``), else the default zone (``--zone``).
- Payer: ``payer_ids`` from Encounter.account → Account.coverage → Coverage.payor
  (``coverage``).
- Location: ``location`` is where ``location[0]`` points (the first entry, as sent): the
  Location id its reference names (``Location/ED-1`` → ``ED-1``; a ``urn:`` reference gives the
  id of the Location entry it resolves to), else an identifier value (the Reference's
  ``identifier``, or the first ``identifier`` of a contained Location), else the code of
  ``location[0].physicalType`` (R4) / ``form`` (R5) (``bd`` bed, ``wa`` ward, …). It is what
  the site's place-of-service table is keyed by, as PV1-3 is for HL7.
- Account: ``account`` is the account number of the first ``Encounter.account`` that names
  one and is not ``entered-in-error`` (when this document holds it): the Account id its
  reference names (``Account/ACC-1`` → ``ACC-1``; a ``urn:`` reference gives the id of the
  Account entry it resolves to), else the Reference's ``identifier`` value, else the first
  ``identifier`` value of the Account it resolves to (the only one for a contained Account,
  whose local id means nothing outside it). A reference to another type names no account.
  It is kept for finding the encounter (the console's search), never coded, as HL7 PID-18.
"""

from __future__ import annotations

from typing import Final

from connector.adapters.errors import BadIdentifier, MissingEncounterKey, UnknownStatus
from connector.adapters.fhir.context import Reading
from connector.adapters.fhir.coverage import payer_ids
from connector.adapters.fhir.fields import (
    RELATIVE_BASE,
    Json,
    coded,
    coding_of,
    moment,
    obj,
    objects,
    parse_reference,
    reference_id,
    reference_text,
    text,
)
from connector.adapters.fhir.medadmin import version_of
from connector.adapters.fhir.references import facility_of, referenced
from connector.adapters.sanity import identifier
from connector.model import Coding, EncounterEvent, EncounterEventKind, EncounterRef, PatientClass
from connector.policy.model import Policy

R4_STATUSES: Final = frozenset(
    {"planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled", "entered-in-error", "unknown"}
)
R5_STATUSES: Final = frozenset(
    {
        "planned",
        "in-progress",
        "on-hold",
        "discharged",
        "completed",
        "cancelled",
        "discontinued",
        "entered-in-error",
        "unknown",
    }
)
_CLOSING_R4: Final = frozenset({"finished"})
_CLOSING_R5: Final = frozenset({"completed", "discharged"})
_DEAD_ACCOUNT: Final = frozenset({"entered-in-error"})


def encounter_event(resource: Json, r5: bool, reading: Reading) -> EncounterEvent:
    """One Encounter as an UPDATE, or a CLOSE when finished (R4) / completed or discharged (R5).

    ``at`` is the period end when closing, else its start (``period`` in R4,
    ``actualPeriod`` in R5). The patient class is the first class code the policy maps; a
    class the mapping does not know is OTHER, not dropped (as for HL7 PV1-2). The id is trimmed
    of Unicode whitespace; ``at`` and ``meta.lastUpdated`` must lie in the window. Payer and
    location: see the module docstring.

    Raises:
        MissingEncounterKey: The Encounter has no id.
        BadIdentifier: The id or a reference is blank or holds control characters.
        BadTimestamp: ``at`` or ``meta.lastUpdated`` is not a placeable time or lies outside the window.
        UnknownStatus: The status is not a code of the resource's FHIR version
            (fhir.resources accepts any code).
        InvalidFhir: An account, coverage or location reference names a ``#id`` that is not
            contained, a rejected Bundle entry or a resource of the wrong type.
    """
    where = "Encounter"
    window = reading.window
    visit = text(resource, "id", where)
    if not visit:
        raise MissingEncounterKey("Encounter.id absent")
    visit = identifier(visit, f"{where}.id")
    updated = text(obj(resource, "meta", where), "lastUpdated", f"{where}.meta")
    if updated:
        moment(updated, f"{where}.meta.lastUpdated", window)
    status = text(resource, "status", where)
    if status not in (R5_STATUSES if r5 else R4_STATUSES):
        raise UnknownStatus(f"Encounter.status is not an {'R5' if r5 else 'R4'} Encounter status")
    closing = status in (_CLOSING_R5 if r5 else _CLOSING_R4)
    period_name = "actualPeriod" if r5 else "period"
    period = obj(resource, period_name, where)
    edge = "end" if closing else "start"
    sent = period.get(edge)
    facility = facility_of(resource, where)
    zone = reading.zone_of(facility)
    at = moment(sent, f"{where}.{period_name}.{edge}", window, zone) if sent is not None else None
    if r5:
        codings: list[Coding] = []
        for i, concept in enumerate(objects(resource, "class", where)):
            codings.extend(coded(concept, f"{where}.class[{i}]").codings)
    else:
        sent_class = obj(resource, "class", where)
        codings = [coding_of(sent_class, f"{where}.class")] if sent_class else []
    ref = EncounterRef(
        key=f"{RELATIVE_BASE}|{visit}",
        visit_number=visit,
        assigning_authority=RELATIVE_BASE,
        patient_id=reference_id(resource, "subject", where),
        facility=facility,
    )
    kind = EncounterEventKind.CLOSE if closing else EncounterEventKind.UPDATE
    return EncounterEvent(
        ref,
        kind,
        at,
        _patient_class(codings, reading.policy),
        payer_ids=payer_ids(resource, r5, reading.resolver, where),
        location=_location(resource, r5, reading, where),
        version=version_of(resource, where, reading.window),
        account=_account(resource, reading, where),
    )


def _account(resource: Json, reading: Reading, where: str) -> str:
    """The account number ``Encounter.account`` names (module docstring), or ``""``.

    A candidate that is blank or holds control characters is skipped, as HL7 leaves a broken
    PID-18 out: the account is a finding aid, and the Encounter (class, coverage, discharge)
    is not lost over it.
    """
    contained = objects(resource, "contained", where)
    for i, ref in enumerate(objects(resource, "account", where)):
        aw = f"{where}.account[{i}]"
        found, named = referenced(ref, contained, reading.resolver, aw)
        if found is not None and text(found, "status", "Account") in _DEAD_ACCOUNT:
            continue
        literal = reference_text(ref, aw)
        parsed = parse_reference(literal) if literal else None
        candidates = [] if literal.startswith("#") or (parsed and parsed[1] != "Account") else [named]
        candidates.append(text(obj(ref, "identifier", aw), "value", f"{aw}.identifier"))
        if found is not None:
            held = objects(found, "identifier", "Account")
            candidates.extend(text(item, "value", "Account.identifier") for item in held)
        for candidate in candidates:
            if candidate:
                try:
                    return identifier(candidate, f"{aw} account number")
                except BadIdentifier:
                    continue
    return ""


def _location(resource: Json, r5: bool, reading: Reading, where: str) -> str:
    """Where ``location[0]`` points (module docstring), or ``""``."""
    items = objects(resource, "location", where)
    if not items:
        return ""
    lw = f"{where}.location[0]"
    ref = obj(items[0], "location", lw)
    found, named = referenced(ref, objects(resource, "contained", where), reading.resolver, f"{lw}.location")
    is_contained = text(ref, "reference", f"{lw}.location").strip().startswith("#")
    candidates = [] if is_contained else [named]
    candidates.append(text(obj(ref, "identifier", f"{lw}.location"), "value", f"{lw}.location.identifier"))
    if found is not None and is_contained:
        candidates.extend(text(i, "value", "Location.identifier") for i in objects(found, "identifier", "Location"))
    form = "form" if r5 else "physicalType"
    candidates.extend(c.code for c in coded(obj(items[0], form, lw), f"{lw}.{form}").codings)
    for candidate in candidates:
        if not candidate:
            continue
        try:
            return identifier(candidate, f"{lw}.location")
        except BadIdentifier:  # a value no place-of-service table can hold: try the next one
            continue
    return ""


def _patient_class(codings: list[Coding], policy: Policy) -> PatientClass | None:
    sent = [c.code for c in codings if c.code]
    if not sent:
        return None
    for code in sent:
        found = policy.patient_class_of(code)
        if found is not None:
            return found
    return PatientClass.OTHER
