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

from datetime import date, datetime, timedelta
from typing import NamedTuple

from connector.model import Administration, AdminStatus, Decision, Encounter, PatientClass, Reason, ServiceKind
from connector.policy.drugs import BillingClass, DrugIdentity
from connector.policy.model import MethodKind, Policy, RouteKind, remember

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


class Classified(NamedTuple):
    """Services that may be coded (all, and by kind), and decisions already final for the others.

    ``unmapped_method``: the services whose method was sent but is not in the mappings (read
    once per profile here, for ``review.method_reviews``), in service order.
    """

    services: tuple[Service, ...]
    excluded: tuple[Decision, ...]
    hydration_untimed: tuple[Decision, ...]
    pushes: list[Service]
    infusions: list[Service]
    hydration: list[Service]
    unmapped_method: tuple[Service, ...] = ()


def classify(encounter: Encounter, policy: Policy) -> Classified:
    """Classify every administration of an encounter."""
    services: list[Service] = []
    pushes: list[Service] = []
    infusions: list[Service] = []
    hydration: list[Service] = []
    excluded: list[Decision] = []
    untimed: list[Decision] = []
    unmapped_method: list[Service] = []
    inpatient_from = encounter.inpatient_from
    all_inpatient = encounter.patient_class is PatientClass.INPATIENT and inpatient_from is None
    memo = policy.rule_memo
    for admin in encounter.administrations:
        drug_sent, route, method, start = admin.drug, admin.route, admin.method, admin.start
        day = start.date()
        # Exactly what a profile depends on, as plain values (cheaper to hash than CodedValue objects).
        key = (drug_sent.text, drug_sent.codings, route.text, route.codings, method.text, method.codings,
               admin.contexts, day)  # fmt: skip
        profile: Profile | None = memo.get(key)
        if profile is None:
            profile = remember(memo, key, _profile(admin, day, policy))
        drug, exclusion, is_hydration, push_kind, infusion_kind, push_evidence, method_unmapped = profile
        if (
            admin.status not in _COUNTED
            or all_inpatient
            or (inpatient_from is not None and start >= inpatient_from)
            or exclusion is not None
        ):
            excluded.append(_exclusion(admin, drug, exclusion, encounter))
            continue
        end = admin.end
        if end is None and admin.infuse_minutes:
            end = start + timedelta(minutes=admin.infuse_minutes)
        if end is not None and end < start:
            end = None  # a stop before the start is not a documented duration
        if is_hydration:
            if end is None:
                untimed.append(Decision(admin.id, ServiceKind.HYDRATION, drug.key, Reason.HYDRATION_UNTIMED, _UNTIMED))
                continue
            item = Service(admin, ServiceKind.HYDRATION, drug, start, end, "hydration fluid")
            hydration.append(item)
        elif push_evidence is not None:
            item = Service(admin, push_kind, drug, start, end or start, push_evidence)
            pushes.append(item)
        elif end is None:
            item = Service(admin, push_kind, drug, start, start, _NO_STOP)
            pushes.append(item)
        else:
            length = (end - start).total_seconds() / 60.0
            if length <= PUSH_MAX_MINUTES:
                item = Service(admin, push_kind, drug, start, end, f"{length:g} min ≤ 15 min: push")
                pushes.append(item)
            else:
                item = Service(admin, infusion_kind, drug, start, end, f"{length:g} min ≥ 16 min: infusion")
                infusions.append(item)
        services.append(item)
        if method_unmapped:
            unmapped_method.append(item)
    return Classified(
        tuple(services), tuple(excluded), tuple(untimed), pushes, infusions, hydration, tuple(unmapped_method)
    )


def _exclusion(
    admin: Administration, drug: DrugIdentity, exclusion: tuple[Reason, ServiceKind, str] | None, encounter: Encounter
) -> Decision:
    """The decision for an administration that is not coded: the first rule that excludes it."""
    inpatient_from = encounter.inpatient_from
    if admin.status not in _COUNTED:
        return Decision(
            admin.id, ServiceKind.EXCLUDED, drug.key, Reason.NOT_GIVEN, f"Not given: status {admin.status}."
        )
    if encounter.patient_class is PatientClass.INPATIENT and inpatient_from is None:
        return Decision(admin.id, ServiceKind.EXCLUDED, drug.key, Reason.INPATIENT, _INPATIENT)
    if inpatient_from is not None and admin.start >= inpatient_from:
        text = f"Given after the encounter became inpatient at {inpatient_from.isoformat(sep=' ', timespec='minutes')}."
        return Decision(admin.id, ServiceKind.EXCLUDED, drug.key, Reason.INPATIENT, text)
    if exclusion is None:
        raise ValueError(f"administration {admin.id} is not excluded")  # classify checked that it is
    reason, kind, text = exclusion
    return Decision(admin.id, kind, drug.key, reason, text)


_COUNTED = tuple(status for status in AdminStatus if status.counts)  # AdminStatus.counts, as a tuple
_INPATIENT = "Inpatient encounter: no outpatient administration codes."
_UNTIMED = "Hydration without a documented stop time cannot be timed."
_NO_STOP = "no documented stop time: coded as a push"


class Profile(NamedTuple):
    """What an administration's drug, route, method, contexts and date decide.

    Memoised per policy: administrations charted alike share one profile.

    Attributes:
        drug: The resolved drug identity.
        exclusion: (reason, kind, text) of the final decision when the administration is
            not a timed/push service whatever its times (IM/SQ, not IV, unknown route,
            integral, fluid not used as hydration); None otherwise.
        hydration: A hydration fluid.
        push_kind: Push or chemo push.
        infusion_kind: Infusion or chemo infusion.
        push_evidence: The evidence when the method (or a route text) says push, else None.
        method_unmapped: A method was sent and the mappings do not know it (a review).
    """

    drug: DrugIdentity
    exclusion: tuple[Reason, ServiceKind, str] | None
    hydration: bool
    push_kind: ServiceKind
    infusion_kind: ServiceKind
    push_evidence: str | None
    method_unmapped: bool = False


def _profile(admin: Administration, day: date, policy: Policy) -> Profile:
    drug = policy.drugs.resolve(admin.drug)
    chemo = drug.billing_class is BillingClass.CHEMO
    push_kind = ServiceKind.CHEMO_PUSH if chemo else ServiceKind.PUSH
    infusion_kind = ServiceKind.CHEMO_INFUSION if chemo else ServiceKind.INFUSION
    hydration = drug.billing_class is BillingClass.HYDRATION

    def out(reason: Reason, text: str, kind: ServiceKind = ServiceKind.EXCLUDED) -> Profile:
        return Profile(drug, (reason, kind, text), hydration, push_kind, infusion_kind, None)  # never a service

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

    if hydration:
        flags = sorted(admin.contexts & policy.non_hydration_contexts)
        if flags:
            return out(Reason.NOT_HYDRATION, f"Fluid used as {', '.join(flags)}: never hydration.")
    push_evidence = f"method {method_evidence}: push" if method_kind is MethodKind.PUSH else None
    unmapped = method is None and not admin.method.is_empty
    return Profile(drug, None, hydration, push_kind, infusion_kind, push_evidence, unmapped)
