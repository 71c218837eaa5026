"""Dated table entries (pure): in force on a day of service, overlapping, the first in force.

The site tables (``payer_map.yaml``, ``places_of_service.yaml``) hold, per key, entries that
apply over a span of dates of service; no two entries of one key overlap. Keys are compared
upper-case and single-spaced (``normalise_key``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import TypeVar


def normalise_key(sent: str) -> str:
    """A key as compared: upper-case, runs of whitespace as one space, trimmed."""
    return " ".join(sent.upper().split())


class DatedSpan:
    """The span of dates of service an entry applies to: a mixin for frozen dataclasses.

    Attributes:
        effective_from: First date of service it applies to.
        effective_to: Last date of service it applies to (inclusive), or open.
    """

    __slots__ = ()
    effective_from: date
    effective_to: date | None

    def covers(self, day: date) -> bool:
        """Whether the entry is in force on ``day``."""
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)

    def overlaps(self, other: DatedSpan) -> bool:
        """Whether two entries are in force on a common day."""
        end = self.effective_to or date.max
        other_end = other.effective_to or date.max
        return self.effective_from <= other_end and other.effective_from <= end


EntryT = TypeVar("EntryT", bound=DatedSpan)


def in_force(entries: Iterable[EntryT], day: date) -> EntryT | None:
    """The first of ``entries`` in force on ``day``, or None."""
    return next((entry for entry in entries if entry.covers(day)), None)
