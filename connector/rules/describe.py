"""Short, PHI-free descriptions of services for reasons and explanations."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from connector.rules.classify import Service

_TWO_DIGITS = tuple(f"{n:02d}" for n in range(100))


def when(moment: datetime) -> str:
    """A date and time as charted (in its recorded zone): ``YYYY-MM-DD HH:MM``.

    The text of ``moment.isoformat(sep=" ", timespec="minutes")``, assembled from a table of
    two-digit numbers: several times faster, and this runs for every service described.
    """
    two = _TWO_DIGITS
    return f"{moment.year:04d}-{two[moment.month]}-{two[moment.day]} {two[moment.hour]}:{two[moment.minute]}"


def service(item: Service) -> str:
    """``<id> (<drug> at <time>)``."""
    return f"{item.admin.id} ({item.drug.key} at {when(item.start)})"


def services(items: Iterable[Service]) -> str:
    """Several services, comma-separated."""
    return ", ".join([service(i) for i in items])


UNMAPPED = ("unmapped_drug",)


def unmapped_flags(items: Iterable[Service]) -> tuple[str, ...]:
    """``unmapped_drug`` when any service's drug identity fell back to code equality."""
    for item in items:
        if not item.drug.mapped:
            return UNMAPPED
    return ()
