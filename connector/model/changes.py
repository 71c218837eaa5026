"""Applying encounter events to an encounter (pure, arrival-order insensitive)."""

from __future__ import annotations

from dataclasses import replace

from connector.model.encounter import Encounter, PatientClass
from connector.model.events import EncounterEvent, EncounterEventKind


def apply_event(encounter: Encounter, event: EncounterEvent, payer: str | None = None) -> Encounter:
    """Return the encounter after an event.

    - The patient class is the one of the latest event by event time (``class_at``), so a
      late-arriving older message never overrides a newer class.
    - A class change (ADT^A06/A07) to inpatient records when it happened (``inpatient_from``,
      the earliest such time); administrations from then on are not coded as outpatient
      services (coding rules §3). An encounter that is inpatient with no change time is
      wholly inpatient.
    - A close marks the encounter closed; later administrations still produce deltas.

    Args:
        encounter: The encounter before the event.
        event: The event.
        payer: The payer policy name the event's insurance maps to, if any.
    """
    changed = encounter
    if event.patient_class is not None and (
        encounter.class_at is None or (event.at is not None and event.at >= encounter.class_at)
    ):
        changed = replace(changed, patient_class=event.patient_class, class_at=event.at or encounter.class_at)
    if (
        event.kind is EncounterEventKind.CLASS_CHANGE
        and event.patient_class is PatientClass.INPATIENT
        and event.at is not None
        and (encounter.inpatient_from is None or event.at < encounter.inpatient_from)
    ):
        changed = replace(changed, inpatient_from=event.at)
    if payer is not None:
        changed = replace(changed, payer=payer)
    if event.kind is EncounterEventKind.CLOSE:
        changed = replace(changed, closed=True)
    return changed
