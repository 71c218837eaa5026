"""Step 5: units → charge lines, then the payer overlay (coding rules §6, §7).

One line per (code, date of service, modifiers); units = count of qualifying services that
day. Payer overlays apply last: professional place-of-service suppression (BCBS ND /
Regence policy 109), separate-encounter modifier, MUE caps from the payer file (no value
shipped without its CMS source; absent a value no cap is applied and the line says so).
Modifier 25 never goes on these codes (Noridian JF); 76 is never used for repeat pushes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from connector.model import ChargeLine, ClaimType, Encounter
from connector.model.ids import line_id
from connector.policy.model import Chargemaster, PayerPolicy
from connector.rules.units import Unit

NEVER_MODIFIERS = frozenset({"25", "76"})


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
) -> tuple[ChargeLine, ...]:
    """Aggregate units into lines, then apply the payer overlay and the chargemaster."""
    groups: dict[tuple[date, str, tuple[str, ...]], list[Unit]] = {}
    for unit in units:
        modifiers = tuple(sorted(set(unit.modifiers) - NEVER_MODIFIERS)) if unit.modifiers else ()
        key = (unit.day, unit.code, modifiers)
        members = groups.get(key)
        if members is None:
            groups[key] = [unit]
        else:
            members.append(unit)
    claim_type = encounter.claim_type
    write_off = suppressed_claim(encounter, payer)
    lines: list[ChargeLine] = []
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
        units_count = len(members)
        mue = payer.mue.get(code)
        cap = mue.limit(claim_type) if mue else None
        if cap is None:
            flags.add("no_mue_on_file")
        elif units_count > cap:
            units_count = cap
            flags.add("mue_capped")
        if write_off and code in payer.professional_suppressed_codes:
            flags.add("write_off")
        charge_code, revenue_code = chargemaster.lookup(code, first.department)
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
                rule,
                reason,
                tuple(sorted(flags)),
            )
        )
    return tuple(lines)
