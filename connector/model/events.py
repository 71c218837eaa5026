"""What adapters produce from one input record: administrations and encounter events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from connector.model.administration import Administration
from connector.model.encounter import PatientClass


@dataclass(frozen=True, slots=True)
class EncounterRef:
    """Who and where an encounter is, as the output messages need it.

    Attributes:
        key: Encounter identity used everywhere (``assigning_authority|visit_number``).
        visit_number: HL7 PV1-19 (CX.1) or the FHIR Encounter id.
        assigning_authority: HL7 PV1-19 CX.4 (else MSH-4) or the FHIR reference base.
        patient_id: HL7 PID-3 (first repetition, CX.1) or the FHIR Patient id (output only,
            never logged).
        facility: Sending facility (HL7 MSH-4) or the FHIR serviceProvider.
    """

    key: str
    visit_number: str
    assigning_authority: str = ""
    patient_id: str = ""
    facility: str = ""


class EncounterEventKind(StrEnum):
    """What an encounter event says."""

    SEEN = "seen"  # encounter data carried by an administration message (PV1)
    UPDATE = "update"  # registration/update (ADT^A04/A08, FHIR Encounter)
    CLASS_CHANGE = "class_change"  # ADT^A06/A07
    CLOSE = "close"  # ADT^A03, FHIR Encounter finished/completed


@dataclass(frozen=True, slots=True)
class EncounterEvent:
    """A change to an encounter's attributes (not its administrations).

    Attributes:
        encounter: The encounter it applies to.
        kind: What happened.
        at: When it happened (event time), if sent.
        patient_class: Patient class after the event, if sent.
        payer_ids: Insurance identifiers as sent (HL7 IN1-3/IN1-4, FHIR Coverage payor),
            mapped to a payer policy by the service layer.
    """

    encounter: EncounterRef
    kind: EncounterEventKind
    at: datetime | None = None
    patient_class: PatientClass | None = None
    payer_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedRecord:
    """Everything one input record (a message or resource) says.

    Attributes:
        dedup_key: Identity of the input for de-duplication (HL7: MSH-3|MSH-4|MSH-10;
            FHIR: resource id + versionId, or a content hash).
        administrations: Administrations it carries (with their encounter keys).
        encounter_events: Encounter events it carries.
    """

    dedup_key: str
    administrations: tuple[Administration, ...] = ()
    encounter_events: tuple[EncounterEvent, ...] = ()
