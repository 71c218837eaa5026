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
        payer_ids: Identifiers of the primary coverage as sent, most specific first (HL7 the
            IN1 with the lowest IN1-22 priority, else IN1-1: IN1-2 plan id, IN1-3 company id,
            IN1-4 company name; FHIR Coverage by Account.coverage priority: payor identifier/
            reference/display), mapped to a payer policy by the rules (site payer map).
        location: Where the patient was seen (HL7 PV1-3 point of care, FHIR Encounter.location
            type code), for the site place-of-service table.
        class_hint: The class an administration implies (FHIR MedicationAdministration
            ``category``), used only while nothing has given ``patient_class``.
        version: Order key of the message among those sent about the encounter (HL7 MSH-7 in
            UTC and MSH-10; FHIR ``meta.versionId`` and ``lastUpdated``): breaks ties between
            events with the same (or no) event time, so the newer message wins whatever order
            they arrive in.
        account: The patient (billing) account number, if sent (HL7 PID-18 CX.1; FHIR the
            Account an Encounter.account names): kept for finding the encounter, never coded.
    """

    encounter: EncounterRef
    kind: EncounterEventKind
    at: datetime | None = None
    patient_class: PatientClass | None = None
    payer_ids: tuple[str, ...] = ()
    location: str = ""
    class_hint: PatientClass | None = None
    version: str = ""
    account: str = ""


@dataclass(frozen=True, slots=True)
class IdentityHints:
    """What an administration message says about its encounter when it names no visit.

    Set by the HL7 adapter when PV1-19, PID-18 and PV1-50 carry no number; the service
    resolves it through the site identity chain (order links learned from earlier messages,
    then the patient's ADT visit window, then the site's fallback) or rejects the input
    ``missing_encounter_key``.

    Attributes:
        authority: Assigning authority to key a resolved encounter under (MSH-4).
        placer_ids: ORC-2 / ORC-4 placer order (group) numbers, as ``authority|number``.
        patient_key: ``authority|PID-3 CX.1`` of the patient, if sent.
        at: Earliest administration time (picks the ADT visit that covers it).
    """

    authority: str
    placer_ids: tuple[str, ...] = ()
    patient_key: str = ""
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ParsedRecord:
    """Everything one input record (a message or resource) says.

    Attributes:
        dedup_key: Identity of the input for de-duplication (HL7: MSH-3|MSH-4|MSH-10;
            FHIR: resource id + versionId, or a content hash).
        administrations: Administrations it carries (with their encounter keys).
        encounter_events: Encounter events it carries.
        unresolved: Set when the message names no encounter: its administrations and events
            carry an empty encounter key until the service resolves one from these hints.
        order_ids: Placer order ids (``authority|number``) seen with the encounter, so that
            later messages without a visit number can be linked (HL7 ORC-2/ORC-4).
        visit: (patient key, encounter key, from, to) an ADT message says: the patient's
            visit window for the identity chain's patient step.
    """

    dedup_key: str
    administrations: tuple[Administration, ...] = ()
    encounter_events: tuple[EncounterEvent, ...] = ()
    unresolved: IdentityHints | None = None
    order_ids: tuple[str, ...] = ()
    visit: VisitWindow | None = None


@dataclass(frozen=True, slots=True)
class VisitWindow:
    """A patient's visit as an ADT message states it (identity chain, patient step).

    Attributes:
        patient_key: ``authority|PID-3 CX.1``.
        encounter_key: The visit's encounter key.
        start: Admit time (PV1-44), else the event time.
        end: Discharge time (PV1-45), if sent (open otherwise).
    """

    patient_key: str
    encounter_key: str
    start: datetime | None = None
    end: datetime | None = None
