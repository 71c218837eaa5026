"""``evaluate(encounter, policy)``: the pure coding function (architecture invariant 1).

A chain of small steps, each a module that opens with its rule and source:
classify → choose initial → infusions/hydration → sequence pushes → lines → payer overlay.
The result depends only on the encounter's administration set and the policy: arrival
order, duplicates and replays converge (administrations are sorted and de-duplicated by id).
"""

from __future__ import annotations

from datetime import date

from connector.model import ChargeResult, Decision, Encounter, Reason, ServiceKind
from connector.policy.model import Policy
from connector.rules import timeline
from connector.rules.classify import Service, classify
from connector.rules.initial import Candidate, choose_initial
from connector.rules.lines import build_lines, suppressed, suppressed_claim
from connector.rules.pushes import code_pushes
from connector.rules.timed import code_hydration, code_infusions, hydration_timeline
from connector.rules.units import Unit


def evaluate(encounter: Encounter, policy: Policy) -> ChargeResult:
    """Code the IV drug-administration services of one encounter.

    Args:
        encounter: The encounter with the current version of each administration.
        policy: Validated mappings and payer policies.

    Returns:
        Charge lines, a decision for every administration, and the lookups made.
    """
    payer = policy.payer(encounter.payer)
    policy_version = f"{payer.version}/{encounter.claim_type.value}"
    classified = classify(encounter, policy)
    services, pushes, infusions, hydration = (
        classified.services,
        classified.pushes,
        classified.infusions,
        classified.hydration,
    )
    by_drug: dict[str, list[Service]] = {}
    for item in infusions:
        by_drug.setdefault(item.drug.key, []).append(item)
    groups = [Candidate(members[0].kind, tuple(members)) for members in by_drug.values()]
    net_hydration = hydration_timeline(hydration, infusions, pushes)
    candidates = groups + [Candidate(p.kind, (p,)) for p in pushes]
    if hydration and timeline.minutes(net_hydration) >= 31:
        candidates.append(Candidate(ServiceKind.HYDRATION, tuple(hydration)))
    choice = choose_initial(candidates, encounter.claim_type, payer)

    timed = code_infusions(groups, choice, payer.second_site_modifier)
    hydration_initial = choice.main is not None and choice.main.kind is ServiceKind.HYDRATION
    hyd = code_hydration(hydration, net_hydration, hydration_initial)
    initial_pushes: dict[str, tuple[str, ...]] = {}
    for candidate in (choice.main, *choice.second_sites):
        if candidate is not None and candidate.first.is_push and len(candidate.members) == 1:
            modifier = () if candidate is choice.main else (payer.second_site_modifier,)
            initial_pushes[candidate.first.admin.id] = modifier
    reported = [*timed.reported, *hyd.reported]
    pushed = code_pushes(pushes, initial_pushes, reported, choice.why, encounter.claim_type, payer)

    units = _overlay(
        encounter,
        [*timed.units, *hyd.units, *pushed.units],
        choice.needs_review,
        initial_ids={c.first.admin.id for c in (choice.main,) if c is not None},
        modifier=payer.separate_encounter_modifier,
    )
    kept = units
    dropped: set[str] = set()
    if payer.professional_suppression_action == "suppress" and suppressed_claim(encounter, payer):
        kept = []
        for unit in units:
            if suppressed(encounter, payer, unit.code):
                dropped.update(unit.admin_ids)
            else:
                kept.append(unit)
    lines = build_lines(kept, encounter, payer, policy.chargemaster, policy_version)
    decisions = _decisions(
        encounter,
        services,
        kept,
        dropped,
        [*classified.excluded, *classified.hydration_untimed, *timed.decisions, *hyd.decisions, *pushed.decisions],
    )
    return ChargeResult(
        encounter.key,
        encounter.claim_type,
        payer.name,
        policy_version,
        lines,
        decisions,
        tuple([s.evidence for s in services]),
    )


def _overlay(
    encounter: Encounter, units: list[Unit], needs_review: bool, initial_ids: set[str], modifier: str | None
) -> list[Unit]:
    """Mark the initial unit for review, add the separate-encounter modifier, flag DST-ambiguous days."""
    extra = (modifier,) if modifier and encounter.separate_same_day else ()
    ambiguous_days = _ambiguous_days(encounter)
    if not needs_review and not extra and not ambiguous_days:
        return units  # nothing to mark
    result: list[Unit] = []
    for unit in units:
        if unit.rule.startswith("initial.") and not unit.modifiers and not initial_ids.isdisjoint(unit.admin_ids):
            flags = (*unit.flags, "needs_review") if needs_review else unit.flags
            unit = unit._replace(modifiers=(*unit.modifiers, *extra), flags=flags)  # noqa: PLW2901
        if unit.day in ambiguous_days and "needs_review" not in unit.flags:
            unit = unit._replace(flags=(*unit.flags, "needs_review"))  # noqa: PLW2901
        result.append(unit)
    return result


def _ambiguous_days(encounter: Encounter) -> frozenset[date]:
    """Local days with an administration whose time a DST change made ambiguous.

    coding-rules.md §2 "Time" flags the line of that administration *and* any line whose
    code would differ under the other reading. Any line of the same day can (sequence,
    initial choice, hour units), so every line of that day is flagged: more review, never a
    silent guess.
    """
    days: set[date] = set()
    for admin in encounter.administrations:
        if admin.time_review:
            days.add(admin.start.date())
            if admin.end is not None:
                days.add(admin.end.date())
    return frozenset(days)


def _decisions(
    encounter: Encounter, services: tuple[Service, ...], kept: list[Unit], dropped: set[str], others: list[Decision]
) -> tuple[Decision, ...]:
    codes: dict[str, list[str]] = {}
    for unit in kept:
        code = unit.code
        for admin_id in unit.admin_ids:
            found = codes.get(admin_id)
            if found is None:
                codes[admin_id] = [code]
            elif code not in found:
                found.append(code)
    final = {d.administration_id: d for d in others}
    reason_coded = Reason.CODED  # (enum members are slow to look up in a loop)
    for admin, kind, drug, _, _, evidence in services:
        admin_id = admin.id
        if admin_id in final:
            continue
        coded = codes.get(admin_id)
        if coded:
            final[admin_id] = Decision(
                admin_id,
                kind,
                drug.key,
                reason_coded,
                f"{kind} ({evidence}) → {', '.join(coded)}.",
                tuple(coded),
            )
        elif admin_id in dropped:
            final[admin_id] = Decision(
                admin_id,
                kind,
                drug.key,
                Reason.PAYER_SUPPRESSED,
                f"Payer {encounter.payer} does not reimburse drug administration "
                f"on professional claims in place of service {encounter.place_of_service}.",
            )
    return tuple([decision for a in encounter.administrations if (decision := final.get(a.id)) is not None])
