import io
from collections import Counter
from datetime import UTC, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from connector.adapters.archive import read_records
from connector.adapters.fhir import parse_fhir
from connector.adapters.hl7v2 import parse_hl7
from connector.adapters.hl7v2.framing import read_message
from connector.adapters.hl7v2.timestamps import parse_dtm
from connector.cli.synth import synth
from connector.model import AdminStatus
from connector.policy.model import Policy
from connector.synth.encounters import encounters
from connector.synth.feed import DISCHARGED, feed_encounters, timeline
from connector.synth.hl7 import escape, hl7_time
from connector.synth.render import records, write_feed

SITE_ZONE = timezone(timedelta(hours=-5))


def _feed(fmt: str, seed: int = 7, count: int = 60) -> bytes:
    out = io.BytesIO()
    write_feed(out, fmt, seed, encounters=count)
    return out.getvalue()


def _archive(tmp_path: Path, fmt: str, data: bytes) -> list[bytes]:
    path = tmp_path / f"feed.{fmt}"
    path.write_bytes(data)
    return [record.data for record in read_records([str(path)])]


def test_the_model_encounters_api_still_gives_count_encounters_of_size_administrations() -> None:
    batch = encounters(seed=5, count=4, size=7)
    assert [len(e.administrations) for e in batch] == [7, 7, 7, 7]
    assert encounters(seed=5, count=4, size=7) == batch


@pytest.mark.parametrize("fmt", ["hl7", "fhir"])
def test_the_same_seed_writes_the_same_bytes_and_another_seed_other_bytes(fmt: str) -> None:
    assert _feed(fmt, seed=7) == _feed(fmt, seed=7)
    assert _feed(fmt, seed=7) != _feed(fmt, seed=8)


@pytest.mark.parametrize("fmt", ["hl7", "fhir"])
def test_streamed_records_are_the_written_bytes(fmt: str) -> None:
    assert b"".join(records(fmt, 7, encounters=60)) == _feed(fmt, seed=7)


def test_every_generated_hl7_message_parses_with_zero_rejects(tmp_path: Path, policy: Policy) -> None:
    messages = _archive(tmp_path, "hl7", _feed("hl7"))
    statuses: Counter[AdminStatus] = Counter()
    closes = 0
    for raw in messages:
        parsed = parse_hl7(raw, policy, SITE_ZONE)  # offsets are read as instants, shown in the site zone
        statuses.update(a.status for a in parsed.administrations)
        closes += sum(e.kind.value == "close" for e in parsed.encounter_events)
        assert all(a.start.utcoffset() == timedelta(hours=-5) for a in parsed.administrations)
    assert closes == 60
    assert statuses[AdminStatus.GIVEN] > 500
    assert statuses[AdminStatus.NOT_GIVEN] > 0
    assert statuses[AdminStatus.DELETED] > 0


def test_every_generated_fhir_resource_parses_with_zero_rejects(tmp_path: Path, policy: Policy) -> None:
    lines = _archive(tmp_path, "fhir", _feed("fhir"))
    statuses: Counter[AdminStatus] = Counter()
    closes = 0
    for raw in lines:
        for parsed in parse_fhir(raw, policy):
            statuses.update(a.status for a in parsed.administrations)
            closes += sum(e.kind.value == "close" for e in parsed.encounter_events)
    assert closes == 60
    assert statuses[AdminStatus.GIVEN] > 500
    assert statuses[AdminStatus.NOT_GIVEN] > 0
    assert statuses[AdminStatus.ENTERED_IN_ERROR] > 0


def test_both_formats_carry_the_same_administrations_per_encounter(tmp_path: Path, policy: Policy) -> None:
    hl7_counts: Counter[str] = Counter()
    for raw in _archive(tmp_path, "hl7", _feed("hl7")):
        for admin in parse_hl7(raw, policy, UTC).administrations:
            hl7_counts[admin.encounter_key.rpartition("|")[2]] += 1
    fhir_counts: Counter[str] = Counter()
    for raw in _archive(tmp_path, "fhir", _feed("fhir")):
        for parsed in parse_fhir(raw, policy):
            for admin in parsed.administrations:
                fhir_counts[admin.encounter_key.rpartition("|")[2]] += 1
    assert hl7_counts == fhir_counts
    assert len(hl7_counts) == 60


def test_hl7_messages_have_cr_segments_one_administration_each_and_corrections_come_later(tmp_path: Path) -> None:
    data = _feed("hl7")
    assert data.count(b"\nMSH|") == data.count(b"MSH|") - 1  # messages separated by \n
    first_sent: dict[tuple[str, str, str], str] = {}
    actions: Counter[str] = Counter()
    for raw in _archive(tmp_path, "hl7", data):
        message = read_message(raw)
        assert len(message.every("RXA")) <= 1
        rxa, orc, msh = message.first("RXA"), message.first("ORC"), message.msh
        if rxa is None or orc is None:
            assert msh.value(9) == "ADT" and msh.value(9, 2) == "A03"
            continue
        assert rxa.value(20) in ("CP", "NA")
        assert rxa.field(3).endswith("-0500")
        identity = (orc.value(2), orc.value(3), rxa.value(2))
        action = rxa.value(21)
        actions[action] += 1
        sent = parse_dtm(msh.value(7), SITE_ZONE, "MSH-7")
        if action == "A":
            first_sent[identity] = msh.value(7)
        else:
            assert sent > parse_dtm(first_sent[identity], SITE_ZONE, "MSH-7")
    administered = actions["A"]
    assert 0.02 < (actions["D"] + actions["U"]) / administered < 0.10  # about 5 %


def test_fhir_lines_are_r4_resources_with_versions_and_one_finished_encounter_each() -> None:
    resources = [orjson.loads(line) for line in _feed("fhir").splitlines()]
    kinds = Counter(r["resourceType"] for r in resources)
    assert kinds["Encounter"] == 60
    assert all(r["status"] == "finished" for r in resources if r["resourceType"] == "Encounter")
    admins = [r for r in resources if r["resourceType"] == "MedicationAdministration"]
    assert all(r["context"]["reference"].startswith("Encounter/") for r in admins)
    second = [r for r in admins if r["meta"]["versionId"] == "2"]
    assert second and {r["id"] for r in second} <= {r["id"] for r in admins if r["meta"]["versionId"] == "1"}
    assert any(r["status"] == "entered-in-error" for r in second)
    pushes = [r for r in admins if r["dosage"].get("method")]
    assert pushes and all(r["dosage"]["method"]["coding"][0]["code"] == "IVP" for r in pushes)
    routes = {r["dosage"]["route"]["coding"][0]["code"] for r in admins}
    assert routes == {"47625008", "78421000"}


def test_the_feed_mixes_ed_and_observation_and_every_encounter_has_1_to_40_administrations() -> None:
    batch = list(feed_encounters(3, 200))
    assert all(1 <= len(e.administrations) <= 40 for e in batch)
    observation = sum(e.observation for e in batch)
    assert 30 < observation < 100
    kinds = Counter(a.item.kind for e in batch for a in e.administrations)
    assert {"push", "infusion", "hydration", "im"} <= set(kinds)


def test_the_timeline_is_in_sending_order_and_ends_each_encounter_with_its_discharge() -> None:
    events = list(timeline(feed_encounters(11, 100)))
    assert [e.at for e in events] == sorted(e.at for e in events)
    last_kind = {e.encounter.number: e.kind for e in events}
    assert set(last_kind.values()) == {DISCHARGED}
    assert len(last_kind) == 100


def test_a_record_limit_stops_starting_encounters_once_reached() -> None:
    out = io.BytesIO()
    stats = write_feed(out, "hl7", 2, limit=500)
    assert 500 <= stats.records <= 500 + 2 * 40 + 1
    assert stats.records == out.getvalue().count(b"MSH|")
    with pytest.raises(ValueError, match="encounters or of records"):
        write_feed(io.BytesIO(), "hl7", 2)
    with pytest.raises(ValueError, match="unknown feed format"):
        write_feed(io.BytesIO(), "csv", 2, encounters=1)


def test_hl7_text_is_escaped_and_times_keep_their_offset() -> None:
    assert escape(r"A|B^C~D\E&F") == r"A\F\B\S\C\R\D\E\E\T\F"
    moment = parse_dtm("20260301061504-0500", SITE_ZONE, "x")
    assert hl7_time(moment) == "20260301061504-0500"
    assert hl7_time(moment, seconds=False) == "202603010615-0500"


def test_the_synth_command_writes_the_same_bytes_as_the_library(tmp_path: Path) -> None:
    target = tmp_path / "feed.ndjson"
    result = CliRunner().invoke(synth, ["--format", "fhir", "--encounters", "60", "--seed", "7", "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == _feed("fhir", seed=7)
    assert "60 encounters" in result.output


def test_the_synth_command_needs_exactly_one_size() -> None:
    result = CliRunner().invoke(synth, ["--format", "hl7", "--out", "-"])
    assert result.exit_code == 2
    assert "exactly one of --encounters and --records" in result.output
