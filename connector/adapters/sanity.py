"""Checks every adapter applies to what a feed says: identifiers that can key an encounter, plausible times.

A value that passes here may still be wrong, but it can no longer break a renderer, a log
line or a date computation downstream: identifiers are trimmed of Unicode whitespace and
refused when empty or carrying control characters; instants outside a configurable window
are refused (a service dated year 1 or 9999 is a broken feed, never a charge).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

from connector.adapters.errors import BadIdentifier, BadTimestamp


def identifier(value: str, where: str) -> str:
    """An identifier as sent, trimmed of Unicode whitespace (NBSP, ideographic space, …).

    Args:
        value: The unescaped identifier (a visit, account, patient or resource id).
        where: The field or element, for the reject detail (never the value).

    Returns:
        The trimmed identifier.

    Raises:
        BadIdentifier: Empty after trimming, or holding a control or format character
            (NUL, C0/C1 controls, bidi overrides, zero-width characters).
    """
    trimmed = value.strip()  # str.strip() removes every Unicode whitespace, NBSP included
    if not trimmed:
        raise BadIdentifier(f"{where} empty or only whitespace")
    if not trimmed.isprintable() and any(unicodedata.category(c)[0] in "CZ" and c != " " for c in trimmed):
        raise BadIdentifier(f"{where} holds control characters")
    return trimmed


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The instants a feed may plausibly carry; outside it a timestamp is ``bad_timestamp``.

    Attributes:
        earliest: First accepted instant (inclusive).
        latest: Last accepted instant (exclusive).
    """

    earliest: datetime = datetime(1900, 1, 1, tzinfo=UTC)
    latest: datetime = datetime(2200, 1, 1, tzinfo=UTC)

    def check(self, moment: datetime, where: str) -> datetime:
        """``moment`` when inside the window.

        Raises:
            BadTimestamp: Outside the window (or not expressible as an instant).
        """
        # A year two clear of both edges is inside whatever its offset (less than a day); this
        # skips comparing instants in different zones, which costs about a microsecond each.
        if self.earliest.year + 2 <= moment.year <= self.latest.year - 2:
            return moment
        try:
            inside = self.earliest <= moment < self.latest
        except (OverflowError, ValueError) as error:
            raise BadTimestamp(f"{where} out of range") from error
        if not inside:
            raise BadTimestamp(f"{where} outside the accepted window")
        return moment


DEFAULT_WINDOW = TimeWindow()
"""1900-01-01 to 2200-01-01 UTC: wide enough for any archive, narrow enough to stop year 1 and 9999."""

DEFAULT_WINDOW_TEXT = "1900-01-01..2200-01-01"
"""``DEFAULT_WINDOW`` as ``parse_window`` reads it (the default of ``--time-window`` and ``coding.time_window``)."""


def parse_window(text: str) -> TimeWindow:
    """A window from ``FROM..TO``: ISO dates or date-times, UTC unless they carry an offset.

    Args:
        text: E.g. ``2000-01-01..2100-01-01``; ``FROM`` is inclusive, ``TO`` exclusive.

    Raises:
        ValueError: Not two ISO dates separated by ``..``, or ``FROM`` not before ``TO``.
    """
    start, dots, end = text.strip().partition("..")
    if not dots:
        raise ValueError("time window must be FROM..TO (ISO dates, e.g. 1900-01-01..2200-01-01)")
    try:
        bounds = [datetime.fromisoformat(part.strip()) for part in (start, end)]
    except ValueError as error:
        raise ValueError("time window bounds must be ISO dates (YYYY-MM-DD) or date-times") from error
    earliest, latest = (b if b.tzinfo else b.replace(tzinfo=UTC) for b in bounds)
    if not earliest < latest:
        raise ValueError("time window FROM must be before TO")
    return TimeWindow(earliest, latest)


def window_text(text: str) -> str:
    """``text`` stripped, once ``parse_window`` accepts it (a settings validator).

    Raises:
        ValueError: As ``parse_window``.
    """
    parse_window(text)
    return text.strip()
