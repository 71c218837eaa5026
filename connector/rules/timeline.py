"""Time arithmetic for timed services: merged intervals, hour units, dating by hour.

Hourly add-ons "accumulate continuous time across midnight and are dated on the day each
hour is provided" (coding rules §6; CPT introduction: hydration 23:00–02:00 → 96360 ×1 +
96361 ×2). Each unit beyond the first hour needs more than 30 minutes (CPT; UWHC FAQ 7:
1 h 30 min → 96365 ×1, 1 h 31 min → 96365 + 96366).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

Interval = tuple[datetime, datetime]

HOUR = 60.0
UNIT_THRESHOLD_MINUTES = 30.0  # a partial hour counts when it is *more than* 30 minutes


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Union of intervals, sorted, with overlapping or touching ones merged."""
    merged: list[Interval] = []
    for start, end in sorted([i for i in intervals if i[1] > i[0]]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def subtract(base: list[Interval], removed: list[Interval]) -> list[Interval]:
    """``base`` minus ``removed`` (both merged and sorted)."""
    result: list[Interval] = []
    for start, end in base:
        cursor = start
        for cut_start, cut_end in removed:
            if cut_end <= cursor or cut_start >= end:
                continue
            if cut_start > cursor:
                result.append((cursor, cut_start))
            cursor = max(cursor, cut_end)
            if cursor >= end:
                break
        if cursor < end:
            result.append((cursor, end))
    return result


def overlaps(left: list[Interval], right: list[Interval]) -> bool:
    """Whether two merged timelines share any positive length of time."""
    for a_start, a_end in left:
        for b_start, b_end in right:
            if a_start < b_end and b_start < a_end:
                return True
    return False


def minutes(intervals: list[Interval]) -> float:
    """Total minutes covered by merged intervals."""
    return sum([(end - start).total_seconds() for start, end in intervals]) / 60.0


def hour_units(total_minutes: float) -> int:
    """Hourly units in ``total_minutes``: whole hours plus one for a remainder over 30 min."""
    if total_minutes <= 0:
        return 0
    whole, rest = divmod(total_minutes, HOUR)
    return int(whole) + (1 if rest > UNIT_THRESHOLD_MINUTES else 0)


def day_at(intervals: list[Interval], offset_minutes: float) -> date:
    """Date of the moment ``offset_minutes`` into the timeline (in its recorded zone)."""
    remaining = timedelta(minutes=offset_minutes)
    for start, end in intervals:
        span = end - start
        if remaining < span:
            return (start + remaining).date()
        remaining -= span
    return intervals[-1][1].date()
