"""What the rules produce: charge lines, per-administration decisions, and the result."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from connector.model.encounter import ClaimType


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
            ``mue_capped``, ``no_mue_on_file``.
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
class ChargeResult:
    """The coded encounter: lines, a decision per administration, and the lookups made."""

    encounter_key: str
    claim_type: ClaimType
    policy: str
    policy_version: str
    lines: tuple[ChargeLine, ...]
    decisions: tuple[Decision, ...]
    trace: tuple[str, ...] = ()
