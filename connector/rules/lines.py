"""Step 5: units → charge lines, then the payer overlay (coding rules §6, §7).

One line per (code, date of service, modifiers); units = count of qualifying services that
day. Payer overlays apply last: professional place-of-service suppression (BCBS ND /
Regence policy 109), separate-encounter modifier, MUE caps from the payer file (no value
shipped without its CMS source; absent a value no cap is applied and the line says so).
Modifier 25 never goes on these codes (Noridian JF); 76 is never used for repeat pushes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date

from connector.model import ChargeLine, ClaimType, Encounter
from connector.model.ids import line_id
from connector.policy.model import Chargemaster, PayerPolicy
from connector.rules.units import Unit

NEVER_MODIFIERS = frozenset({"25", "76"})


def suppressed(encounter: Encounter, payer: PayerPolicy, code: str) -> bool:
    """Whether the payer does not reimburse this code for this professional claim."""
    return (
        encounter.claim_type is ClaimType.PROFESSIONAL
        and encounter.place_of_service in payer.professional_suppressed_pos
        and code in payer.professional_suppressed_codes
    )


def build_lines(
    units: Iterable[Unit],
    encounter: Encounter,
    payer: PayerPolicy,
    chargemaster: Chargemaster,
    policy_version: str,
) -> tuple[ChargeLine, ...]:
    """Aggregate units into lines, then apply the payer overlay and the chargemaster."""
    groups: dict[tuple[str, date, tuple[str, ...]], list[Unit]] = defaultdict(list)
    for unit in units:
        modifiers = tuple(sorted(set(unit.modifiers) - NEVER_MODIFIERS)) if unit.modifiers else ()
        groups[(unit.code, unit.day, modifiers)].append(unit)
    lines: list[ChargeLine] = []
    for (code, day, modifiers), members in sorted(groups.items(), key=lambda g: (g[0][1], g[0][0], g[0][2])):
        admin_ids = tuple(dict.fromkeys(i for u in members for i in u.admin_ids))
        flags = set().union(*(u.flags for u in members))
        units_count = len(members)
        mue = payer.mue.get(code)
        cap = mue.limit(encounter.claim_type) if mue else None
        if cap is None:
            flags.add("no_mue_on_file")
        elif units_count > cap:
            units_count = cap
            flags.add("mue_capped")
        if suppressed(encounter, payer, code):
            flags.add("write_off")
        charge_code, revenue_code = chargemaster.lookup(code, members[0].department)
        rules = sorted({u.rule for u in members})
        reason = " ".join(dict.fromkeys(u.reason for u in members))
        lines.append(
            ChargeLine(
                line_id=line_id(
                    encounter.key, code, day.isoformat(), modifiers, admin_ids, units_count, policy_version
                ),
                code=code,
                units=units_count,
                service_date=day,
                modifiers=modifiers,
                revenue_code=revenue_code,
                charge_code=charge_code,
                administration_ids=admin_ids,
                rule="+".join(rules),
                reason=reason,
                flags=tuple(sorted(flags)),
            )
        )
    return tuple(lines)
