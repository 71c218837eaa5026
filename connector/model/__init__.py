"""Pure domain model: frozen dataclasses with no I/O and no clock."""

from connector.model.administration import Administration, AdminStatus, SourceRef
from connector.model.charge import ChargeLine, ChargeResult, Decision, Reason, Review, ServiceKind
from connector.model.codes import EMPTY, CodedValue, Coding
from connector.model.emission import EmitOn
from connector.model.encounter import ClaimType, Encounter, PatientClass, fingerprint
from connector.model.events import (
    EncounterEvent,
    EncounterEventKind,
    EncounterRef,
    IdentityHints,
    ParsedRecord,
    VisitWindow,
)
from connector.model.outcomes import AdministrationOutcome, HistoryEntry, OutcomeKind, Unmapped

__all__ = [
    "EMPTY",
    "AdminStatus",
    "Administration",
    "AdministrationOutcome",
    "ChargeLine",
    "ChargeResult",
    "ClaimType",
    "CodedValue",
    "Coding",
    "Decision",
    "EmitOn",
    "Encounter",
    "EncounterEvent",
    "EncounterEventKind",
    "EncounterRef",
    "HistoryEntry",
    "IdentityHints",
    "OutcomeKind",
    "ParsedRecord",
    "PatientClass",
    "Reason",
    "Review",
    "ServiceKind",
    "SourceRef",
    "Unmapped",
    "VisitWindow",
    "fingerprint",
]
