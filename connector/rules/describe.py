"""Short, PHI-free descriptions of services for reasons and explanations."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from connector.rules.classify import Service


def when(moment: datetime) -> str:
    """A date and time as charted (in its recorded zone)."""
    return moment.isoformat(sep=" ", timespec="minutes")[:16]  # several times faster than strftime


def service(item: Service) -> str:
    """``<id> (<drug> at <time>)``."""
    return f"{item.admin.id} ({item.drug.key} at {when(item.start)})"


def services(items: Iterable[Service]) -> str:
    """Several services, comma-separated."""
    return ", ".join(service(i) for i in items)


def unmapped_flags(items: Iterable[Service]) -> tuple[str, ...]:
    """``unmapped_drug`` when any service's drug identity fell back to code equality."""
    return ("unmapped_drug",) if any(not i.drug.mapped for i in items) else ()
