"""Durations across DST changes are elapsed time; ambiguous local readings are read by rule and flagged.

coding-rules.md §2 "Time": an infusion from 01:30 to 03:30 on a spring-forward night is one
hour. A local time in a fall-back fold is read as its first occurrence (the offset before the
change), one inside a spring-forward gap with the offset in force just before the gap; the
lines of that day carry ``needs_review``. Both directions, in two zones.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connector.adapters.hl7v2.timestamps import parse_dtm
from connector.cli.replay import ReplayOptions, run
from connector.policy.model import Policy

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def ras(control: str, visit: str, start: str, end: str, drug: str, timed: bool) -> str:
    rxr = (
        "RXR|IV^Intravenous^HL70162||IVP^IV Pump^HL70164|IVPB^IV Piggyback^HL70165"
        if timed
        else ("RXR|IV^Intravenous^HL70162||IVP^IV Push^HL70165")
    )
    return (
        "\r".join(
            [
                f"MSH|^~\\&|PYXIS|GENHOSP|BILLING|GENHOSP|{start[:8]}235900||RAS^O17^RAS_O17|{control}|P|2.5.1",
                "PID|1||MRN1^^^GENHOSP^MR||DOE^JANE",
                f"PV1|1|E|ED^1||||||||||||||||{visit}^^^GENHOSP^VN",
                f"ORC|RE|O{control}|O{control}F",
                f"RXA|0|1|{start}|{end}|{drug}|1|g|||||||||||||CP|A",
                rxr,
            ]
        )
        + "\r\n"
    )


VANCO = "11124^Vancomycin 1 g in NS 250 mL^RXNORM"
ONDANSETRON = "26225^Ondansetron 4 mg/2 mL injection^RXNORM"


def replay(tmp_path: Path, policy: Policy, messages: list[str], zone: ZoneInfo) -> list[dict[str, object]]:
    feed = tmp_path / "feed.hl7"
    feed.write_text("\n".join(messages))
    out = io.BytesIO()
    run(ReplayOptions(paths=(str(feed),), zone=zone), policy, out)
    lines: dict[str, dict[str, object]] = {}
    for text in out.getvalue().splitlines():
        for line in json.loads(text)["lines"]:
            if line["action"] == "charge":
                lines[line["line_id"]] = line
            else:
                lines.pop(line["line_id"])
    return sorted(lines.values(), key=lambda line: str(line["code"]))


@pytest.mark.parametrize(
    ("zone", "start", "end"),
    [(NEW_YORK, "20260308013000", "20260308033000"), (BERLIN, "20260329013000", "20260329033000")],
)
def test_an_infusion_across_spring_forward_is_one_real_hour(tmp_path, policy, zone, start, end) -> None:
    lines = replay(tmp_path, policy, [ras("S1", "V1", start, end, VANCO, timed=True)], zone)
    assert [line["code"] for line in lines] == ["96365"]  # not 96365 + 96366: the wall clock says 2 h
    assert all("needs_review" not in line["flags"] for line in lines)  # both readings exist and are unique


@pytest.mark.parametrize(
    ("zone", "start", "end"),
    [(NEW_YORK, "20261101003000", "20261101013000"), (BERLIN, "20261025013000", "20261025023000")],
)
def test_an_infusion_ending_in_a_fall_back_fold_is_read_first_occurrence_and_flagged(
    tmp_path, policy, zone, start, end
) -> None:
    lines = replay(tmp_path, policy, [ras("F1", "V2", start, end, VANCO, timed=True)], zone)
    assert [line["code"] for line in lines] == ["96365"]  # first occurrence: 60 min, not 120
    assert all("needs_review" in line["flags"] for line in lines)


@pytest.mark.parametrize(("zone", "wall"), [(NEW_YORK, "20261101013000"), (BERLIN, "20261025023000")])
def test_a_fold_reading_is_the_first_occurrence_and_noted(zone, wall) -> None:
    notes: list[str] = []
    moment = parse_dtm(wall, zone, "RXA-3", True, notes)
    assert notes == ["RXA-3 fold"]
    assert moment.utcoffset() == zone.utcoffset(moment.replace(tzinfo=None))  # fold=0: before the change
    assert moment.hour == int(wall[8:10])  # the wall time is kept


@pytest.mark.parametrize(("zone", "wall"), [(NEW_YORK, "20260308023000"), (BERLIN, "20260329023000")])
def test_a_gap_reading_takes_the_offset_before_the_gap_and_is_noted(zone, wall) -> None:
    notes: list[str] = []
    moment = parse_dtm(wall, zone, "RXA-3", True, notes)
    assert notes == ["RXA-3 gap"]
    before = parse_dtm(wall[:8] + "010000", zone, "RXA-3", True)
    assert moment.utcoffset() == before.utcoffset()


@pytest.mark.parametrize(("zone", "day"), [(NEW_YORK, "20260308"), (BERLIN, "20260329")])
def test_pushes_across_spring_forward_are_sequenced_on_elapsed_time(tmp_path, policy, zone, day) -> None:
    # 01:50 then 03:10 local: 20 real minutes apart, 80 on the wall clock. A repeat push of
    # the same drug within 30 minutes of the first is no 96376.
    first = ras("P1", "V3", f"{day}015000", "", ONDANSETRON, timed=False)
    second = ras("P2", "V3", f"{day}031000", "", ONDANSETRON, timed=False)
    lines = replay(tmp_path, policy, [first, second], zone)
    assert [line["code"] for line in lines] == ["96374"]


def test_a_push_in_the_spring_forward_gap_is_charged_and_flagged(tmp_path, policy) -> None:
    lines = replay(tmp_path, policy, [ras("G1", "V4", "20260308023000", "", ONDANSETRON, timed=False)], NEW_YORK)
    assert [line["code"] for line in lines] == ["96374"]
    assert all("needs_review" in line["flags"] for line in lines)


def test_times_sent_with_offsets_are_elapsed_time_across_fall_back(tmp_path, policy) -> None:
    # 00:30-04:00 to 01:30-05:00 is two real hours (the same wall reading twice would be one).
    message = ras("O1", "V5", "20261101003000-0400", "20261101013000-0500", VANCO, timed=True)
    lines = replay(tmp_path, policy, [message], NEW_YORK)
    assert sorted(line["code"] for line in lines) == ["96365", "96366"]
    assert all("needs_review" not in line["flags"] for line in lines)


def test_a_local_reading_keeps_its_wall_time_and_local_date() -> None:
    moment = parse_dtm("20260308233000", NEW_YORK, "RXA-3", True)
    assert (moment.date().isoformat(), moment.hour, moment.utcoffset()) == ("2026-03-08", 23, timedelta(hours=-4))
