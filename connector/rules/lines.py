"""Step 5: units → charge lines, then the payer overlay and the CMS edits (coding rules §6, §7).

One line per (code, date of service, modifiers); units = count of qualifying services that
day. Payer overlays apply last: professional place-of-service suppression (BCBS ND /
Regence policy 109), separate-encounter modifier, then the CMS edits in force on the
encounter's first date of service (``rules.edits``): MUE caps by MAI (a payer file's ``mue``
entry overrides the CMS table's value for its code; absent any value no cap is applied and the
line says so) and NCCI PTP pairs. Line ids are derived last, from the edited lines.
Modifier 25 never goes on these codes (Noridian JF); 76 is never used for repeat pushes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import NamedTuple

from connector.model import ChargeLine, ClaimType, Encounter, Review
from connector.model.ids import line_id
from connector.policy.cms import MueTable, PtpTable
from connector.policy.model import Chargemaster, PayerPolicy
from connector.rules.edits import Draft, Withheld, apply_mue, apply_ptp
from connector.rules.units import Unit

NEVER_MODIFIERS = frozenset({"25", "76"})


class Built(NamedTuple):
    """The lines, the lines the MUE left no unit, and the reviews the CMS edits asked for."""

    lines: tuple[ChargeLine, ...]
    withheld: tuple[Withheld, ...]
    reviews: tuple[Review, ...]


def line_key(unit: Unit) -> tuple[date, str, tuple[str, ...]]:
    """The line a unit is aggregated into: (date of service, code, modifiers)."""
    modifiers = tuple(sorted(set(unit.modifiers) - NEVER_MODIFIERS)) if unit.modifiers else ()
    return (unit.day, unit.code, modifiers)


def suppressed_claim(encounter: Encounter, payer: PayerPolicy) -> bool:
    """Whether the payer suppresses some codes on this claim (professional, listed place of service)."""
    return (
        encounter.claim_type is ClaimType.PROFESSIONAL
        and encounter.place_of_service in payer.professional_suppressed_pos
    )


def suppressed(encounter: Encounter, payer: PayerPolicy, code: str) -> bool:
    """Whether the payer does not reimburse this code for this professional claim."""
    return suppressed_claim(encounter, payer) and code in payer.professional_suppressed_codes


def build_lines(
    units: Iterable[Unit],
    encounter: Encounter,
    payer: PayerPolicy,
    chargemaster: Chargemaster,
    policy_version: str,
    mue: MueTable | None = None,
    ptp: PtpTable | None = None,
    distinct_ids: frozenset[str] = frozenset(),
) -> Built:
    """Aggregate units into lines, apply the payer overlay, the CMS edits and the chargemaster.

    Args:
        units: The coded units.
        encounter: The encounter as coded (claim type, place of service).
        payer: The payer policy (suppression, MUE overrides, distinct-service modifier).
        chargemaster: Charge and revenue codes.
        policy_version: Named in every line id.
        mue: The MUE table in force for the encounter, if any.
        ptp: The PTP table in force for the encounter, if any.
        distinct_ids: Administrations of second-site initials (a documented separate access site).

    Returns:
        The lines, the lines the MUE left no unit (explained on their administrations) and the
        reviews (``mue_clinical``, ``ptp_conflict``) naming what to check.
    """
    groups: dict[tuple[date, str, tuple[str, ...]], list[Unit]] = {}
    for unit in units:  # line_key, inlined: this loop runs once per unit
        modifiers = tuple(sorted(set(unit.modifiers) - NEVER_MODIFIERS)) if unit.modifiers else ()
        key = (unit.day, unit.code, modifiers)
        members = groups.get(key)
        if members is None:
            groups[key] = [unit]
        else:
            members.append(unit)
    write_off = suppressed_claim(encounter, payer)
    drafts: list[Draft] = []
    for (day, code, modifiers), members in sorted(groups.items()):  # by date, code, modifiers (keys are unique)
        first = members[0]
        if len(members) == 1:
            admin_ids, rule, reason = first.admin_ids, first.rule, first.reason
            if len(admin_ids) > 1:
                admin_ids = tuple(dict.fromkeys(admin_ids))
            flags = set(first.flags)
        else:
            admin_ids = tuple(dict.fromkeys([i for u in members for i in u.admin_ids]))
            rule = "+".join(sorted({u.rule for u in members}))
            reason = " ".join(dict.fromkeys([u.reason for u in members]))
            flags = {f for u in members for f in u.flags}
        if write_off and code in payer.professional_suppressed_codes:
            flags.add("write_off")
        drafts.append(Draft(day, code, modifiers, len(members), admin_ids, rule, reason, flags, first.department))
    reviews: list[Review] = []
    withheld = apply_mue(drafts, encounter.claim_type, payer.mue, mue, reviews)
    if withheld:
        drafts = [d for d in drafts if d.units > 0]
    apply_ptp(drafts, ptp, payer.second_site_modifier, distinct_ids, reviews)
    lines: list[ChargeLine] = []
    for draft in drafts:
        charge_code, revenue_code = chargemaster.lookup(draft.code, draft.department)
        day, code, modifiers, admin_ids, units_count = (
            draft.day,
            draft.code,
            draft.modifiers,
            draft.admin_ids,
            draft.units,
        )
        lines.append(
            ChargeLine(
                line_id(encounter.key, code, day.isoformat(), modifiers, admin_ids, units_count, policy_version),
                code,
                units_count,
                day,
                modifiers,
                revenue_code,
                charge_code,
                admin_ids,
                draft.rule,
                draft.reason,
                tuple(sorted(draft.flags)),
            )
        )
    return Built(tuple(lines), tuple(withheld), tuple(reviews))
