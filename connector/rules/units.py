"""Service units: one counted service on one date, before lines are aggregated.

Internal to the rules and created by the thousand per second, so a NamedTuple (immutable,
built in C) rather than a frozen dataclass.
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple


class Unit(NamedTuple):
    """One unit of one code on one date of service.

    Attributes:
        code: CPT code.
        day: Date of service.
        admin_ids: Administrations behind the unit.
        rule: Rule id (stable, documented in ``docs/rules.md``).
        reason: One sentence saying why, naming the administrations.
        department: Department for revenue-code overrides.
        modifiers: Modifiers the unit needs.
        flags: Markers carried to the line (``needs_review``, ``unmapped_drug``).
    """

    code: str
    day: date
    admin_ids: tuple[str, ...]
    rule: str
    reason: str
    department: str = ""
    modifiers: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
