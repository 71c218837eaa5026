"""HL7 v2 site data from the feed (issue #13 parts 4–7): primary coverage, location, primary flag,
ordered minutes and the facility's zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hl7_build import NEW_YORK, ORC, PID, RXR, adt, message, parse, pv1, rxa, with_site

from connector.model import ParsedRecord
from connector.policy.model import Policy

CHICAGO = ZoneInfo("America/Chicago")


def ras(*segments: str, **kwargs: str) -> bytes:
    return message(PID, pv1(visit="V1"), *segments, **kwargs)


# --- primary coverage (IN1-22, else IN1-1) -----------------------------------------------------------


def in1(set_id: str, plan: str, company: str, name: str, priority: str = "") -> str:
    fields = ["IN1", set_id, plan, company, name] + [""] * 18
    fields[22] = priority
    return "|".join(fields).rstrip("|")


def adt_payers(policy: Policy, *segments: str) -> tuple[str, ...]:
    return parse(adt("A08", PID, pv1(visit="V1"), *segments), policy).encounter_events[0].payer_ids


def test_the_primary_coverage_is_the_lowest_coordination_of_benefits_priority(policy: Policy) -> None:
    secondary = in1("1", "BCBSPPO^BCBS PPO", "BCBS77^^^BCBS", "BLUE CROSS", priority="2")
    primary = in1("2", "MCR", "CMS001", "MEDICARE PART B", priority="1")
    assert adt_payers(policy, secondary, "IN2|1", primary) == ("MCR", "CMS001", "MEDICARE PART B")


def test_without_priorities_the_lowest_set_id_is_primary(policy: Policy) -> None:
    second = in1("2", "UHC-PLAN", "UHC900", "UNITED HEALTHCARE")
    first = in1("1", "AET-HMO", "AET123~AET999", "AETNA HEALTH~AETNA ALT")
    # IN1-3 and IN1-4 repetitions follow, in order: company ids, then names
    assert adt_payers(policy, second, first) == ("AET-HMO", "AET123", "AET999", "AETNA HEALTH", "AETNA ALT")


def test_a_single_coverage_gives_its_identifiers_once_each(policy: Policy) -> None:
    assert adt_payers(policy, in1("1", "CIGNA1", "CIGNA1", " CIGNA\u00a0 HEALTH ")) == ("CIGNA1", "CIGNA HEALTH")
    assert adt_payers(policy) == ()
    assert adt_payers(policy, in1("1", "", "", "")) == ()
    # a value with control characters is dropped, never passed on
    assert adt_payers(policy, in1("1", "P\\X07\\1", "CO1", "")) == ("CO1",)


def test_a_non_numeric_priority_or_set_id_counts_as_absent(policy: Policy) -> None:
    odd = in1("A", "ODD", "", "", priority="first")
    numbered = in1("3", "THIRD", "", "")
    assert adt_payers(policy, odd, numbered) == ("THIRD",)


def test_a_ras_carries_its_primary_coverage_too(policy: Policy) -> None:
    raw = ras(in1("2", "B", "", "", "2"), in1("1", "A", "", "", "1"), ORC, rxa(), RXR)
    assert parse(raw, policy).encounter_events[0].payer_ids == ("A",)


# --- location (PV1-3 point of care) ------------------------------------------------------------------------


def test_the_point_of_care_is_the_events_location_on_adt_and_ras(policy: Policy) -> None:
    record = parse(adt("A04", PID, pv1(visit="V1", location="INFUSION CTR^C2^01^GENHOSP")), policy)
    assert record.encounter_events[0].location == "INFUSION CTR"
    assert parse(ras(ORC, rxa(), RXR), policy).encounter_events[0].location == "ED"
    assert parse(message(PID, pv1(visit="V1", location=""), ORC, rxa(), RXR), policy).encounter_events[0].location == ""


# --- the professional primary flag (site primary_hl7) -------------------------------------------------------


def primaries(record: ParsedRecord) -> list[bool]:
    return [a.primary for a in record.administrations]


def test_an_rxa_component_equal_to_the_value_marks_primary(policy: Policy) -> None:
    site = with_site(policy, primary_hl7="RXA-9.1=P")
    raw = ras(ORC, rxa("20260302101500", notes="P^Primary"), rxa("20260302103000", notes="S"), RXR)
    assert primaries(parse(raw, site)) == [True, False]
    repeated = ras(ORC, rxa(notes="X^other~p^primary"), RXR)  # any repetition, case-insensitive
    assert primaries(parse(repeated, site)) == [True]
    assert primaries(parse(raw, policy)) == [False, False]  # not read unless the site names it


def test_a_z_segment_after_the_administration_marks_only_its_group(policy: Policy) -> None:
    site = with_site(policy, primary_hl7="ZRX-2")
    raw = ras(
        ORC,
        rxa("20260302100000"),
        rxa("20260302101000"),
        RXR,
        "ZRX|1|Y",  # after the RXR closing the run: both RXAs of the run
        rxa("20260302102000"),
        RXR,
        "ZRX|1|N",
        rxa("20260302103000"),
        RXR,  # no ZRX: not the previous group's
    )
    assert primaries(parse(raw, site)) == [True, True, False, False]


def test_an_order_header_field_marks_every_administration_of_that_order(policy: Policy) -> None:
    site = with_site(policy, primary_hl7="TQ1-9.1=1")
    raw = ras(ORC, "TQ1|1||||||||1", rxa(), RXR, "ORC|RE|ORD2|FIL2", "TQ1|1||||||||2", rxa("20260302110000"), RXR)
    assert primaries(parse(raw, site)) == [True, False]


# --- ordered minutes (TQ1-13 occurrence duration) ------------------------------------------------------------


def tq1(duration: str) -> str:
    return "TQ1|1" + "|" * 12 + duration


@pytest.mark.parametrize(
    ("duration", "minutes"),
    [
        ("30^min", 30),
        ("1.5^h", 90),
        ("45^MIN&minutes&ANS+", 45),
        ("2^HR", 120),
        ("90^s", 2),  # 1.5 min, rounded half up
        ("30", None),  # no units: not guessed
        ("30^mL", None),
        ("abc^min", None),
        ("-5^min", None),
        ("1e9^min", None),
        ("", None),
    ],
)
def test_ordered_minutes_come_from_the_orders_occurrence_duration(
    policy: Policy, duration: str, minutes: int | None
) -> None:
    (admin,) = parse(ras(ORC, tq1(duration), rxa(), RXR), policy).administrations
    assert admin.ordered_minutes == minutes


def test_ordered_minutes_belong_to_their_order_only(policy: Policy) -> None:
    raw = ras(ORC, tq1("30^min"), rxa(), RXR, tq1("60^min"), "ORC|RE|ORD2|FIL2", rxa("20260302110000"), RXR)
    assert [a.ordered_minutes for a in parse(raw, policy).administrations] == [30, None]


# --- the facility's zone -------------------------------------------------------------------------------------


def test_an_offset_time_at_a_chicago_facility_is_dated_the_previous_local_day(policy: Policy) -> None:
    site = with_site(policy, zones={"GENHOSP": CHICAGO})
    raw = ras(ORC, rxa("20200511032700+0000"), RXR, sent="20200511040000+0000")
    record = parse(raw, site)
    (admin,) = record.administrations
    assert admin.start == datetime(2020, 5, 11, 3, 27, tzinfo=UTC)  # the same instant
    assert admin.start.date() == date(2020, 5, 10)  # 22:27 CDT on 05-10
    assert admin.start.utcoffset() == timedelta(hours=-5)
    assert record.encounter_events[0].at == datetime(2020, 5, 10, 23, tzinfo=CHICAGO)
    assert parse(raw, policy).administrations[0].start.date() == date(2020, 5, 10)  # --zone New York too


def test_local_times_are_read_in_the_facility_zone_else_the_default(policy: Policy) -> None:
    site = with_site(policy, zones={"GENHOSP": CHICAGO})
    (chicago,) = parse(ras(ORC, rxa("20260302101500"), RXR), site).administrations
    assert chicago.start == datetime(2026, 3, 2, 10, 15, tzinfo=CHICAGO)
    other = ras(ORC, rxa("20260302101500"), RXR, facility="MERCY")
    (default,) = parse(other, site).administrations
    assert default.start == datetime(2026, 3, 2, 10, 15, tzinfo=NEW_YORK)
    (cased,) = parse(ras(ORC, rxa(), RXR, facility="genhosp"), site).administrations
    assert cased.start.utcoffset() == timedelta(hours=-6)  # facility ids compare upper-cased


def test_adt_times_follow_the_facility_zone(policy: Policy) -> None:
    site = with_site(policy, zones={"GENHOSP": CHICAGO})
    record = parse(adt("A03", PID, pv1(visit="V1"), event="20260303040000+0000"), site)
    assert record.encounter_events[0].at is not None
    assert record.encounter_events[0].at.isoformat() == "2026-03-02T22:00:00-06:00"
