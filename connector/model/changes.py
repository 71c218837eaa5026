"""Applying encounter events to an encounter (pure, arrival-order insensitive)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from connector.model.encounter import Encounter, PatientClass
from connector.model.events import EncounterEvent, EncounterEventKind

# When two events give different class hints, the most restrictive wins whatever their order:
# an administration charted as inpatient keeps the encounter out of outpatient coding.
_HINT_RANK = {
    PatientClass.INPATIENT: 5,
    PatientClass.OBSERVATION: 4,
    PatientClass.EMERGENCY: 3,
    PatientClass.OUTPATIENT: 2,
    PatientClass.OTHER: 1,
    PatientClass.UNKNOWN: 0,
}


def apply_event(encounter: Encounter, event: EncounterEvent) -> Encounter:
    """Return the encounter after an event.

    - The patient class (and the location sent with it) is the one of the latest event by
      event time (``class_at``), so a late-arriving older message never overrides a newer one.
    - A class change (ADT^A06/A07) to inpatient records when it happened (``inpatient_from``,
      the earliest such time); administrations from then on are not coded as outpatient
      services (coding rules §3). An encounter that is inpatient with no change time is
      wholly inpatient.
    - The primary coverage's identifiers are those of the latest event carrying insurance
      (``payer_at``); the rules map them to a payer policy.
    - The account number is that of the latest event carrying one (``account_at``), by the
      same order; it is never read by the rules.
    - A class hint (FHIR administration ``category``) keeps the most restrictive one seen.
    - A close marks the encounter closed; later administrations still produce deltas.

    Args:
        encounter: The encounter before the event.
        event: The event.
    """
    changes: dict[str, Any] = {}  # one replace at the end: each field is set by one branch at most
    sent_class = (event.patient_class.value, event.location) if event.patient_class is not None else None
    held_class = (encounter.patient_class.value, encounter.location)
    unclassed = encounter.patient_class is PatientClass.UNKNOWN and encounter.class_at is None
    if sent_class is not None and (
        (unclassed and not encounter.class_version)
        or _newer((event.at, event.version, sent_class), (encounter.class_at, encounter.class_version, held_class))
    ):
        changes.update(
            patient_class=event.patient_class or encounter.patient_class,
            class_at=event.at or encounter.class_at,
            class_version=event.version,
            location=event.location,
        )
    elif event.location and not encounter.location:
        changes.update(location=event.location)
    if (
        event.kind is EncounterEventKind.CLASS_CHANGE
        and event.patient_class is PatientClass.INPATIENT
        and event.at is not None
        and (encounter.inpatient_from is None or event.at < encounter.inpatient_from)
    ):
        changes.update(inpatient_from=event.at)
    if event.payer_ids and _newer(
        (event.at, event.version, event.payer_ids), (encounter.payer_at, encounter.payer_version, encounter.payer_ids)
    ):
        changes.update(payer_ids=event.payer_ids, payer_at=event.at or encounter.payer_at, payer_version=event.version)
    if event.account and _newer(
        (event.at, event.version, (event.account,)),
        (encounter.account_at, encounter.account_version, (encounter.account,) if encounter.account else ()),
    ):
        changes.update(
            account=event.account, account_at=event.at or encounter.account_at, account_version=event.version
        )
    if event.encounter.facility and not encounter.facility:
        changes.update(facility=event.encounter.facility)
    hint = event.class_hint
    if hint is not None and _HINT_RANK[hint] > _HINT_RANK[encounter.class_hint or PatientClass.UNKNOWN]:
        changes.update(class_hint=hint)
    if event.kind is EncounterEventKind.CLOSE:
        changes.update(closed=True)
    return replace(encounter, **changes) if changes else encounter


Stamp = tuple[datetime | None, str, tuple[str, ...]]


def _newer(sent: Stamp, held: Stamp) -> bool:
    """Whether what an event sent (event time, message version, value) replaces what is held.

    By event time; a dated statement beats an undated one; on equal (or no) times the newer
    message version wins, then the larger value — so the result never depends on arrival
    order. An undated encounter that holds nothing yet takes anything.
    """
    at, version, value = sent
    held_at, held_version, held_value = held
    if held_at is not None and at is None:
        return False
    if at is not None and (held_at is None or at != held_at):
        return held_at is None or at > held_at
    return (version, value) >= (held_version, held_value)
