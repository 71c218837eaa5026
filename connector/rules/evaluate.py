"""``evaluate(encounter, policy)``: the pure coding function (architecture invariant 1).

A chain of small steps, each a module that opens with its rule and source:
setting (class, payer, place of service) → classify → choose initial → infusions/hydration →
sequence pushes → review flags → lines → payer overlay → CMS edits (MUE, PTP).
The result depends only on the encounter's administration set and the policy: arrival
order, duplicates and replays converge (administrations are sorted and de-duplicated by id).
"""

from __future__ import annotations

from connector.model import ChargeResult, Decision, Encounter, Reason, Review, ServiceKind
from connector.policy.cms import version_suffix
from connector.policy.model import Policy
from connector.rules import timeline
from connector.rules.classify import Service, classify
from connector.rules.edits import Withheld
from connector.rules.initial import Candidate, choose_initial
from connector.rules.lines import build_lines, line_key, suppressed, suppressed_claim
from connector.rules.pushes import code_pushes
from connector.rules.review import ambiguous_days, duration_reviews, flag, method_reviews, time_reviews
from connector.rules.setting import first_day, resolve_setting
from connector.rules.timed import code_hydration, code_infusions, hydration_timeline
from connector.rules.units import Unit

INITIAL_CHOICE = "initial_choice"
_NO_PRIMARY = "no administration is flagged primary: the initial service was chosen by the facility hierarchy."


def evaluate(encounter: Encounter, policy: Policy) -> ChargeResult:
    """Code the IV drug-administration services of one encounter.

    Args:
        encounter: The encounter with the current version of each administration.
        policy: Validated mappings and payer policies.

    Returns:
        Charge lines, a decision for every administration, and the lookups made.
    """
    setting = resolve_setting(encounter, policy)
    encounter = setting.encounter
    payer = policy.payer(encounter.payer)
    # One version per encounter: the CMS tables in force on its first date of service (decision 27).
    day = first_day(encounter)
    mue = policy.cms.mue_for(encounter.claim_type, day)
    ptp = policy.cms.ptp_for(encounter.claim_type, day)
    policy_version = f"{payer.version}/{encounter.claim_type.value}{version_suffix(mue, ptp)}"
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
    reviews = [
        *setting.reviews,
        *duration_reviews([*infusions, *hydration]),
        *time_reviews(encounter),
        *method_reviews(classified.unmapped_method),
    ]
    if choice.needs_review and choice.main is not None:
        reviews.append(Review(INITIAL_CHOICE, _NO_PRIMARY, (choice.main.first.admin.id,)))
    units = flag(units, reviews, ambiguous_days(encounter))
    kept = units
    dropped: set[str] = set()
    if payer.professional_suppression_action == "suppress" and suppressed_claim(encounter, payer):
        kept = []
        for unit in units:
            if suppressed(encounter, payer, unit.code):
                dropped.update(unit.admin_ids)
            else:
                kept.append(unit)
    distinct_ids = frozenset(m.admin.id for c in choice.second_sites for m in c.members) if ptp else frozenset()
    lines, withheld, edit_reviews = build_lines(
        kept, encounter, payer, policy.chargemaster, policy_version, mue, ptp, distinct_ids
    )
    reviews.extend(edit_reviews)
    decisions = _decisions(
        encounter,
        services,
        kept,
        dropped,
        [*classified.excluded, *classified.hydration_untimed, *timed.decisions, *hyd.decisions, *pushed.decisions],
        withheld,
    )
    return ChargeResult(
        encounter.key,
        encounter.claim_type,
        payer.name,
        policy_version,
        lines,
        decisions,
        tuple([s.evidence for s in services]),
        encounter.patient_class,
        encounter.place_of_service,
        tuple(reviews),
        setting.mappings,
    )


def _overlay(
    encounter: Encounter, units: list[Unit], needs_review: bool, initial_ids: set[str], modifier: str | None
) -> list[Unit]:
    """Mark the initial unit for review (no primary flag) and add the separate-encounter modifier."""
    extra = (modifier,) if modifier and encounter.separate_same_day else ()
    if not needs_review and not extra:
        return units  # nothing to mark
    result: list[Unit] = []
    for unit in units:
        if unit.rule.startswith("initial.") and not unit.modifiers and not initial_ids.isdisjoint(unit.admin_ids):
            flags = (*unit.flags, "needs_review") if needs_review else unit.flags
            unit = unit._replace(modifiers=(*unit.modifiers, *extra), flags=flags)  # noqa: PLW2901
        result.append(unit)
    return result


def _decisions(
    encounter: Encounter,
    services: tuple[Service, ...],
    kept: list[Unit],
    dropped: set[str],
    others: list[Decision],
    withheld: tuple[Withheld, ...] = (),
) -> tuple[Decision, ...]:
    codes: dict[str, list[str]] = {}
    not_billed: dict[str, list[str]] = {}
    withheld_keys = {(line.day, line.code, line.modifiers) for line in withheld}
    for line in withheld:
        for admin_id in line.admin_ids:
            not_billed.setdefault(admin_id, []).append(line.reason)
    for unit in kept:
        if withheld_keys and line_key(unit) in withheld_keys:
            continue
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
        over = not_billed.get(admin_id)
        if coded:
            text = f"{kind} ({evidence}) → {', '.join(coded)}."
            if over:
                text += "".join(f" {sentence}" for sentence in over)
            final[admin_id] = Decision(admin_id, kind, drug.key, reason_coded, text, tuple(coded))
        elif over:
            final[admin_id] = Decision(
                admin_id,
                kind,
                drug.key,
                Reason.MUE_EXCEEDED,
                f"{kind} ({evidence}) → " + " ".join(over),
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
