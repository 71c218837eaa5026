"""FHIR Encounter (R4/R4B and R5 JSON) → EncounterEvent."""

from __future__ import annotations

from typing import Final

from connector.adapters.errors import MissingEncounterKey, UnknownStatus
from connector.adapters.fhir.fields import (
    RELATIVE_BASE,
    Json,
    coded,
    coding_of,
    moment,
    obj,
    objects,
    reference_id,
    text,
)
from connector.adapters.sanity import DEFAULT_WINDOW, TimeWindow, identifier
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


def encounter_event(resource: Json, r5: bool, policy: Policy, window: TimeWindow = DEFAULT_WINDOW) -> EncounterEvent:
    """One Encounter as an UPDATE, or a CLOSE when finished (R4) / completed or discharged (R5).

    ``at`` is the period end when closing, else its start (``period`` in R4,
    ``actualPeriod`` in R5). The patient class is the first class code the policy maps; a
    class the mapping does not know is OTHER, not dropped (as for HL7 PV1-2). The id is trimmed
    of Unicode whitespace; ``at`` and ``meta.lastUpdated`` must lie in ``window``.

    Raises:
        MissingEncounterKey: The Encounter has no id.
        BadIdentifier: The id or a reference is blank or holds control characters.
        BadTimestamp: ``at`` or ``meta.lastUpdated`` is not a placeable time or lies outside the window.
        UnknownStatus: The status is not a code of the resource's FHIR version
            (fhir.resources accepts any code).
    """
    where = "Encounter"
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
    at = moment(sent, f"{where}.{period_name}.{edge}", window) if sent is not None else None
    if r5:
        codings: list[Coding] = []
        for i, concept in enumerate(objects(resource, "class", where)):
            codings.extend(coded(concept, f"{where}.class[{i}]").codings)
    else:
        sent_class = obj(resource, "class", where)
        codings = [coding_of(sent_class, f"{where}.class")] if sent_class else []
    provider = obj(resource, "serviceProvider", where)
    facility = reference_id(resource, "serviceProvider", where) or text(provider, "display", f"{where}.serviceProvider")
    ref = EncounterRef(
        key=f"{RELATIVE_BASE}|{visit}",
        visit_number=visit,
        assigning_authority=RELATIVE_BASE,
        patient_id=reference_id(resource, "subject", where),
        facility=facility,
    )
    kind = EncounterEventKind.CLOSE if closing else EncounterEventKind.UPDATE
    return EncounterEvent(ref, kind, at, _patient_class(codings, policy))


def _patient_class(codings: list[Coding], policy: Policy) -> PatientClass | None:
    sent = [c.code for c in codings if c.code]
    if not sent:
        return None
    for code in sent:
        found = policy.patient_class_of(code)
        if found is not None:
            return found
    return PatientClass.OTHER
