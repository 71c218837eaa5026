"""Charge messages: what goes out for an encounter after a change (a delta of lines)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from connector.model.charge import ChargeLine
from connector.model.encounter import ClaimType, PatientClass
from connector.model.events import EncounterRef


class Action(StrEnum):
    """What downstream billing must do with a line."""

    CHARGE = "charge"
    CREDIT = "credit"


@dataclass(frozen=True, slots=True)
class LineAction:
    """A line to charge, or a previously charged line to credit (reverse)."""

    action: Action
    line: ChargeLine


@dataclass(frozen=True, slots=True)
class ChargeMessage:
    """One outgoing message: the delta of one encounter's lines.

    Attributes:
        message_id: Derived from the encounter and the line actions (same delta, same id).
        encounter: Who and where (for the output's encounter block).
        patient_class: Patient class at the time of coding.
        claim_type: Facility or professional.
        policy: Payer policy name.
        policy_version: Version of the payer policy and claim type used.
        lines: Credits first, then charges, each sorted by date, code and line id.
        as_of: The latest clinical time known for the encounter (latest administration
            start or end): a deterministic stand-in for "now" in headers such as MSH-7, so
            the same input always renders the same bytes.
    """

    message_id: str
    encounter: EncounterRef
    patient_class: PatientClass
    claim_type: ClaimType
    policy: str
    policy_version: str
    lines: tuple[LineAction, ...]
    as_of: datetime
