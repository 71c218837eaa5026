"""What the rules produce: charge lines, per-administration decisions, and the result."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from connector.model.encounter import ClaimType, PatientClass


class Reason(StrEnum):
    """Stable reason codes for what happened to an administration (for explain/tests)."""

    CODED = "coded"
    NOT_GIVEN = "not_given"
    INPATIENT = "inpatient"
    NOT_IV = "not_iv"
    IM_SQ_INJECTION = "im_sq_injection"
    UNKNOWN_ROUTE = "unknown_route"
    INTEGRAL = "integral"
    NOT_HYDRATION = "not_hydration"
    HYDRATION_UNDER_31 = "hydration_under_31"
    HYDRATION_UNTIMED = "hydration_untimed"
    WITHIN_INTERVAL = "within_interval"
    DUPLICATE_RECORD = "duplicate_record"
    FACILITY_ONLY = "facility_only"
    CONCURRENT_LIMIT = "concurrent_limit"
    PAYER_SUPPRESSED = "payer_suppressed"
    MUE_EXCEEDED = "mue_exceeded"


class ServiceKind(StrEnum):
    """How one administration is classified (coding rules §2)."""

    PUSH = "push"
    INFUSION = "infusion"
    CHEMO_PUSH = "chemo_push"
    CHEMO_INFUSION = "chemo_infusion"
    HYDRATION = "hydration"
    INJECTION = "injection"
    EXCLUDED = "excluded"


@dataclass(frozen=True, slots=True)
class ChargeLine:
    """One charge line: a code with its units on one date of service.

    Attributes:
        line_id: Deterministic id (``connector.model.ids.line_id``).
        code: CPT/HCPCS code.
        units: Number of services on that date.
        service_date: Date the services were provided, in the zone they were recorded in.
        modifiers: CPT/HCPCS modifiers.
        revenue_code: UB-04 revenue code from the chargemaster.
        charge_code: The hospital's chargemaster item.
        administration_ids: The administrations behind the line.
        rule: Id of the rule that produced it (e.g. ``push.same_drug``).
        reason: One sentence naming the administrations.
        flags: Markers such as ``needs_review``, ``unmapped_drug``, ``write_off``,
            ``mue_capped``, ``no_mue_on_file``, ``ptp_conflict``.
    """

    line_id: str
    code: str
    units: int
    service_date: date
    modifiers: tuple[str, ...]
    revenue_code: str
    charge_code: str
    administration_ids: tuple[str, ...]
    rule: str
    reason: str
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """What the rules decided for one administration, and why."""

    administration_id: str
    kind: ServiceKind
    drug_key: str
    reason_code: Reason
    reason: str
    codes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Review:
    """Why lines need a person's review, naming what the feed sent (no patient data).

    Attributes:
        code: ``unknown_class``, ``unmapped_payer``, ``duration_review``, ``time_review``,
            ``initial_choice``, ``mue_clinical`` or ``ptp_conflict`` (CMS edits).
        detail: One sentence naming the identifier, field or times involved.
        administration_ids: The administrations concerned (empty: the whole encounter).
        sent: The identifiers as sent that the review is about (``unmapped_payer``).
    """

    code: str
    detail: str
    administration_ids: tuple[str, ...] = ()
    sent: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChargeResult:
    """The coded encounter: lines, a decision per administration, and the lookups made.

    Attributes:
        encounter_key: The encounter.
        claim_type: Facility or professional.
        policy: Payer policy name the lines were coded under.
        policy_version: Payer policy version and claim type.
        lines: The charge lines.
        decisions: One per administration.
        trace: Evidence of each service's classification.
        patient_class: The class the encounter was coded as (its own, else the feed's hint,
            else outpatient under review).
        place_of_service: The place of service used (explicit, or from the site table).
        reviews: Why lines were flagged ``needs_review``.
        mappings: ``file:line`` of the encounter-level entries used (payer map, place table).
    """

    encounter_key: str
    claim_type: ClaimType
    policy: str
    policy_version: str
    lines: tuple[ChargeLine, ...]
    decisions: tuple[Decision, ...]
    trace: tuple[str, ...] = ()
    patient_class: PatientClass = PatientClass.OUTPATIENT
    place_of_service: str = ""
    reviews: tuple[Review, ...] = ()
    mappings: tuple[str, ...] = ()
