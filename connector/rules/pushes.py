"""Step 4: sequential IV pushes — 96374, 96375, 96376 (coding rules §4, §5).

The reported set starts as the initial service plus every infusion that got a line; pushes
are decided in time order and each push that gets a line joins it.

1. No administration of the drug in the reported set → 96375 (chemo push: 96411).
2. The same drug was reported → 96376 only when the push is *more than* 30 minutes
   (policy ``same_drug_min_interval_minutes``) from every reported administration of that
   drug, before or after it in time; otherwise no line (CPT parenthetical via ASCO JOP 2009
   and AAPC; CPT Assistant Dec 2011; HCPro 2013-11-22). Distance: from the end of an earlier
   reported administration to the push's start; from the push's end to the start of a later
   one (Ohio HIMA Part 5). An unreported push is never a reference.
3. 96376 is a facility-only code (policy ``facility_only_codes``): no professional line.
4. Different drugs at the same charted time each count (RCA); two records of the same drug
   at the same time are one push (Noridian JE A: one drug, several syringes).
"""

from __future__ import annotations

from collections.abc import Sequence

from connector.model import ClaimType, Decision, Reason, ServiceKind
from connector.policy.model import PayerPolicy
from connector.rules.classify import Service
from connector.rules.describe import UNMAPPED, when
from connector.rules.describe import service as describe
from connector.rules.timed import TimedCoding
from connector.rules.units import Unit

INITIAL = {ServiceKind.PUSH: "96374", ServiceKind.CHEMO_PUSH: "96409"}
NEW_DRUG = {ServiceKind.PUSH: "96375", ServiceKind.CHEMO_PUSH: "96411"}
SAME_DRUG = "96376"


def _gap_minutes(push: Service, reported: Service) -> float:
    if reported.start <= push.start:
        return (push.start - reported.end).total_seconds() / 60.0
    return (reported.start - push.end).total_seconds() / 60.0


def code_pushes(
    pushes: Sequence[Service],
    initial_pushes: dict[str, tuple[str, ...]],
    reported: Sequence[Service],
    why_initial: str,
    claim_type: ClaimType,
    payer: PayerPolicy,
) -> TimedCoding:
    """Code pushes in time order against the growing reported set.

    Args:
        pushes: Every push service, any order.
        initial_pushes: Admin id → modifiers, for pushes that are an initial service.
        reported: The reported set so far (initial service and coded infusions).
        why_initial: Why the main initial service was chosen, for its reason.
        claim_type: Facility or professional claim.
        payer: The payer policy (interval and facility-only codes).
    """
    out = TimedCoding()
    by_drug: dict[str, list[Service]] = {}
    for item in reported:
        by_drug.setdefault(item.drug.key, []).append(item)
    limit = payer.same_drug_min_interval_minutes
    repeat_facility_only = claim_type is ClaimType.PROFESSIONAL and SAME_DRUG in payer.facility_only_codes
    units, decisions = out.units, out.decisions
    # In time order, records charted at the same time are adjacent: remember the drugs seen
    # at the current time only.
    seen_at: dict[str, Service] = {}
    seen_time = None
    for push in sorted(pushes, key=lambda p: (p.start, p.admin.id)):
        admin, kind, drug, start, _, _ = push
        admin_id, drug_key = admin.id, drug.key
        if start != seen_time:
            seen_time = start
            seen_at.clear()
        twin = seen_at.get(drug_key)
        if twin is not None:
            decisions.append(
                Decision(
                    admin_id,
                    kind,
                    drug_key,
                    Reason.DUPLICATE_RECORD,
                    f"Same drug charted at the same time as {twin.admin.id}: one push.",
                )
            )
            continue
        seen_at[drug_key] = push
        flags = () if drug.mapped else UNMAPPED
        day = start.date()
        mods = initial_pushes.get(admin_id)
        if mods is not None:
            why = "a separate vascular access site" if mods else why_initial
            units.append(
                Unit(
                    INITIAL[kind],
                    day,
                    (admin_id,),
                    "initial.push",
                    f"Initial IV push {describe(push)}: {why}.",
                    admin.department,
                    mods,
                    flags,
                )
            )
            by_drug.setdefault(drug_key, []).append(push)
            continue
        same = by_drug.get(drug_key)
        if not same:
            units.append(
                Unit(
                    NEW_DRUG[kind],
                    day,
                    (admin_id,),
                    "push.new_drug",
                    f"Sequential IV push of a drug not yet reported: {describe(push)}.",
                    admin.department,
                    (),
                    flags,
                )
            )
            by_drug[drug_key] = [push]
            continue
        # The closest reported administration of the drug (the first one at that distance).
        ref, closest = same[0], _gap_minutes(push, same[0])
        for other in same[1:]:
            gap = _gap_minutes(push, other)
            if gap < closest:
                ref, closest = other, gap
        if closest <= limit:
            decisions.append(
                Decision(
                    admin_id,
                    kind,
                    drug_key,
                    Reason.WITHIN_INTERVAL,
                    f"Within {limit} min of reported {ref.admin.id} at {when(ref.start)} "
                    f"({max(closest, 0.0):g} min apart): no administration line.",
                )
            )
            continue
        if repeat_facility_only:
            decisions.append(
                Decision(
                    admin_id,
                    kind,
                    drug_key,
                    Reason.FACILITY_ONLY,
                    "Repeat push of the same drug: 96376 is reported by facilities only.",
                )
            )
            continue
        units.append(
            Unit(
                SAME_DRUG,
                day,
                (admin_id,),
                "push.same_drug",
                f"Repeat IV push of {drug_key} {describe(push)}, more than {limit} min "
                f"from every reported administration of it (closest {closest:g} min).",
                admin.department,
                (),
                flags,
            )
        )
        same.append(push)
    return out
