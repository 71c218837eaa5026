from datetime import datetime, timedelta, timezone

import pytest

from connector.rules import timeline

EST = timezone(timedelta(hours=-5))


def at(hour: int, minute: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=EST)


@pytest.mark.parametrize(
    ("minutes", "units"),
    [(0, 0), (30, 0), (31, 1), (60, 1), (90, 1), (91, 2), (120, 2), (150, 2), (151, 3), (170, 3), (180, 3)],
)
def test_hour_units_count_whole_hours_plus_a_remainder_over_thirty_minutes(minutes: int, units: int) -> None:
    assert timeline.hour_units(minutes) == units


def test_overlapping_and_touching_intervals_merge() -> None:
    merged = timeline.merge([(at(10), at(11)), (at(10, 30), at(12)), (at(12), at(12, 15)), (at(14), at(15))])
    assert merged == [(at(10), at(12, 15)), (at(14), at(15))]


def test_empty_and_reversed_intervals_are_ignored() -> None:
    assert timeline.merge([(at(10), at(10)), (at(11), at(10))]) == []


def test_subtract_cuts_holes_and_edges() -> None:
    base = [(at(8), at(11))]
    removed = [(at(7), at(8, 30)), (at(9), at(9, 5)), (at(10, 50), at(12))]
    assert timeline.subtract(base, removed) == [(at(8, 30), at(9)), (at(9, 5), at(10, 50))]


def test_day_at_follows_the_timeline_across_midnight() -> None:
    spans = [(at(23), at(2, day=3))]
    assert timeline.day_at(spans, 0).day == 2
    assert timeline.day_at(spans, 59).day == 2
    assert timeline.day_at(spans, 60).day == 3
    assert timeline.day_at(spans, 120).day == 3


def test_day_at_skips_gaps_between_bags() -> None:
    spans = [(at(22), at(23)), (at(1, day=3), at(2, day=3))]
    assert timeline.day_at(spans, 30).day == 2
    assert timeline.day_at(spans, 60).day == 3


def test_overlaps_needs_positive_shared_time() -> None:
    assert timeline.overlaps([(at(10), at(11))], [(at(10, 59), at(12))])
    assert not timeline.overlaps([(at(10), at(11))], [(at(11), at(12))])
