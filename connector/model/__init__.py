"""Pure domain model: frozen dataclasses with no I/O and no clock."""

from connector.model.administration import Administration, AdminStatus, SourceRef
from connector.model.charge import ChargeLine, ChargeResult, Decision, Reason, ServiceKind
from connector.model.codes import EMPTY, CodedValue, Coding
from connector.model.encounter import ClaimType, Encounter, PatientClass, fingerprint
from connector.model.events import EncounterEvent, EncounterEventKind, EncounterRef, ParsedRecord

__all__ = [
    "EMPTY",
    "AdminStatus",
    "Administration",
    "ChargeLine",
    "ChargeResult",
    "ClaimType",
    "CodedValue",
    "Coding",
    "Decision",
    "Encounter",
    "EncounterEvent",
    "EncounterEventKind",
    "EncounterRef",
    "ParsedRecord",
    "PatientClass",
    "Reason",
    "ServiceKind",
    "SourceRef",
    "fingerprint",
]
