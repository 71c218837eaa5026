"""Step 1: classify each administration (coding rules §2).

- Only completed administrations count; not given, held, refused, entered-in-error and
  deleted records are absent (HL7 RXA-20/RXA-21, FHIR status).
- Outpatient lines stop when the encounter becomes inpatient (§3, AHIMA).
- Only intravenous administrations enter the push/infusion/hydration logic; IM/SQ
  injections (96372) are classified so they are never mistaken for a push.
- Administration integral to another procedure (contrast for imaging, transfusion
  premedication, procedural pain medicine) is not separately reportable (Miami OBC; HCPro).
- Push: method "push" regardless of duration; otherwise a documented duration of 15 minutes
  or less (CPT via AAPC, Noridian JF). Infusion: 16 minutes or more. An infusion with no
  documented stop time is coded as a push (Miami OBC tips; Centramed).
- Hydration: a fluid mapped as hydration, not used as KVO, flush or vehicle (Noridian JE A;
  UWHC); it needs a documented duration to be timed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from connector.model import Administration, Decision, Encounter, PatientClass, Reason, ServiceKind
from connector.policy.drugs import BillingClass, DrugIdentity
from connector.policy.model import MethodKind, Policy, RouteKind

PUSH_MAX_MINUTES = 15.0


class Service(NamedTuple):
    """A classified, potentially reportable IV administration (internal, hot: a NamedTuple)."""

    admin: Administration
    kind: ServiceKind
    drug: DrugIdentity
    start: datetime
    end: datetime
    evidence: str

    @property
    def minutes(self) -> float:
        """Documented (or inferred) length in minutes."""
        return (self.end - self.start).total_seconds() / 60.0

    @property
    def is_push(self) -> bool:
        """Push or chemo push."""
        return self.kind in (ServiceKind.PUSH, ServiceKind.CHEMO_PUSH)

    @property
    def is_infusion(self) -> bool:
        """Therapeutic or chemo infusion."""
        return self.kind in (ServiceKind.INFUSION, ServiceKind.CHEMO_INFUSION)


@dataclass(frozen=True, slots=True)
class Classified:
    """Services that may be coded, and decisions already final for the others."""

    services: tuple[Service, ...]
    excluded: tuple[Decision, ...]
    hydration_untimed: tuple[Decision, ...]


def classify(encounter: Encounter, policy: Policy) -> Classified:
    """Classify every administration of an encounter."""
    services: list[Service] = []
    excluded: list[Decision] = []
    untimed: list[Decision] = []
    for admin in encounter.administrations:
        drug = policy.drugs.resolve(admin.drug)
        outcome = _classify_one(admin, drug, encounter, policy)
        if isinstance(outcome, Service):
            services.append(outcome)
        elif outcome.reason_code is Reason.HYDRATION_UNTIMED:
            untimed.append(outcome)
        else:
            excluded.append(outcome)
    return Classified(tuple(services), tuple(excluded), tuple(untimed))


def _classify_one(
    admin: Administration, drug: DrugIdentity, encounter: Encounter, policy: Policy
) -> Service | Decision:
    def out(reason: Reason, text: str, kind: ServiceKind = ServiceKind.EXCLUDED) -> Decision:
        return Decision(admin.id, kind, drug.key, reason, text)

    if not admin.status.counts:
        return out(Reason.NOT_GIVEN, f"Not given: status {admin.status.value}.")
    if encounter.patient_class is PatientClass.INPATIENT and encounter.inpatient_from is None:
        return out(Reason.INPATIENT, "Inpatient encounter: no outpatient administration codes.")
    if encounter.inpatient_from is not None and admin.start >= encounter.inpatient_from:
        return out(
            Reason.INPATIENT,
            f"Given after the encounter became inpatient at {encounter.inpatient_from:%Y-%m-%d %H:%M}.",
        )
    day = admin.start.date()
    route, route_evidence = policy.route_of(admin.route, day)
    method, method_evidence = policy.method_of(admin.method, day)
    route_kind = route.route if route else RouteKind.UNKNOWN
    if route_kind in (RouteKind.IM, RouteKind.SQ):
        return out(
            Reason.IM_SQ_INJECTION,
            f"{route_kind.value.upper()} injection (route {route_evidence}): outside the IV push logic.",
            ServiceKind.INJECTION,
        )
    if route_kind is RouteKind.OTHER:
        return out(Reason.NOT_IV, f"Not intravenous (route {route_evidence}).")
    if route_kind is RouteKind.UNKNOWN:
        sent = admin.route.text or ",".join(f"{c.system}|{c.code}" for c in admin.route.codings)
        return out(Reason.UNKNOWN_ROUTE, f"Route not mapped: {sent or 'none sent'}.")
    integral = sorted(admin.contexts & policy.integral_contexts)
    if drug.billing_class is BillingClass.CONTRAST or integral:
        why = f"context {', '.join(integral)}" if integral else "contrast agent"
        return out(Reason.INTEGRAL, f"Not separately reportable: {why} is integral to the procedure.")

    method_kind = method.method if method else MethodKind.UNKNOWN
    if method_kind is MethodKind.UNKNOWN and route is not None:
        method_kind = route.method  # local route texts such as "IV PUSH" carry the method
        method_evidence = route_evidence if method_kind is not MethodKind.UNKNOWN else ""
    end = admin.end
    if end is None and admin.infuse_minutes:
        end = admin.start + timedelta(minutes=admin.infuse_minutes)
    if end is not None and end < admin.start:
        end = None  # a stop before the start is not a documented duration

    if drug.billing_class is BillingClass.HYDRATION:
        flags = sorted(admin.contexts & policy.non_hydration_contexts)
        if flags:
            return out(Reason.NOT_HYDRATION, f"Fluid used as {', '.join(flags)}: never hydration.")
        if end is None:
            return out(
                Reason.HYDRATION_UNTIMED,
                "Hydration without a documented stop time cannot be timed.",
                ServiceKind.HYDRATION,
            )
        return Service(admin, ServiceKind.HYDRATION, drug, admin.start, end, "hydration fluid")

    chemo = drug.billing_class is BillingClass.CHEMO
    push_kind = ServiceKind.CHEMO_PUSH if chemo else ServiceKind.PUSH
    infusion_kind = ServiceKind.CHEMO_INFUSION if chemo else ServiceKind.INFUSION
    if method_kind is MethodKind.PUSH:
        return Service(admin, push_kind, drug, admin.start, end or admin.start, f"method {method_evidence}: push")
    if end is None:
        return Service(admin, push_kind, drug, admin.start, admin.start, "no documented stop time: coded as a push")
    length = (end - admin.start).total_seconds() / 60.0
    if length <= PUSH_MAX_MINUTES:
        return Service(admin, push_kind, drug, admin.start, end, f"{length:g} min ≤ 15 min: push")
    return Service(admin, infusion_kind, drug, admin.start, end, f"{length:g} min ≥ 16 min: infusion")
