"""`ivpush replay` over the sample corpus: determinism, order and duplicate insensitivity, state, options."""

import json
import random
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from connector.adapters.archive import read_records
from connector.cli.main import cli

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
HL7 = SAMPLES / "hl7"


def replay(*args: str) -> Result:
    return CliRunner().invoke(cli, ["replay", "--zone", "America/New_York", *args], catch_exceptions=False)


def net_lines(ndjson: str) -> dict[str, tuple[str, int, str]]:
    current: dict[str, tuple[str, int, str]] = {}
    for text in ndjson.splitlines():
        for line in json.loads(text)["lines"]:
            if line["action"] == "charge":
                current[line["line_id"]] = (line["code"], line["units"], line["service_date"])
            else:
                del current[line["line_id"]]
    return current


def write_feed(path: Path, messages: Sequence[bytes]) -> Path:
    path.write_bytes(b"\n".join(messages) + b"\n")
    return path


def hl7_messages() -> list[bytes]:
    return [r.data for r in read_records([str(HL7)]) if r.format == "hl7"]


def test_replaying_the_samples_twice_gives_byte_identical_output() -> None:
    first, second = replay(str(HL7)), replay(str(HL7))
    assert first.exit_code == 0, first.output
    assert first.stdout_bytes == second.stdout_bytes
    assert first.stdout_bytes.count(b"\n") >= 5


def test_shuffled_and_duplicated_feeds_net_to_the_same_lines(tmp_path: Path) -> None:
    messages = hl7_messages()
    baseline = net_lines(replay(str(write_feed(tmp_path / "in-order.hl7", messages))).stdout)
    assert baseline
    for seed in range(5):
        shuffled = messages * 2
        random.Random(seed).shuffle(shuffled)
        result = replay(str(write_feed(tmp_path / f"shuffled-{seed}.hl7", shuffled)))
        assert net_lines(result.stdout) == baseline, f"seed {seed}"


def test_rejects_are_counted_written_with_positions_and_fatal_only_with_strict(tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.ndjson"
    result = replay(str(HL7), "--rejects", str(rejects))
    assert result.exit_code == 0
    written = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert written and all({"source", "position", "code", "detail"} <= set(r) for r in written)
    assert "rejects: " in result.stderr
    assert replay(str(HL7), "--strict").exit_code == 1


def test_a_persistent_state_makes_a_second_replay_of_the_same_feed_emit_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    assert replay(str(HL7), "--state", str(state)).stdout
    again = replay(str(HL7), "--state", str(state))
    assert again.exit_code == 0 and again.stdout == ""


def test_diff_against_prints_only_the_deltas_and_leaves_the_state_alone(tmp_path: Path) -> None:
    messages = hl7_messages()
    state = tmp_path / "state.db"
    replay(str(write_feed(tmp_path / "half.hl7", messages[: len(messages) // 2])), "--state", str(state))
    before = state.read_bytes()
    full = write_feed(tmp_path / "full.hl7", messages)
    diff = replay(str(full), "--diff-against", str(state))
    assert diff.exit_code == 0
    assert state.read_bytes() == before
    fresh = replay(str(full), "--state", str(state))
    assert diff.stdout == fresh.stdout


@pytest.mark.parametrize("fmt", ["dft", "chargeitem"])
def test_every_output_format_renders_the_same_charges(fmt: str) -> None:
    result = replay(str(HL7), "--format", fmt)
    assert result.exit_code == 0, result.output
    marker = b"FT1|" if fmt == "dft" else b'"resourceType":"ChargeItem"'
    assert result.stdout_bytes.count(marker) >= 5


def test_an_encounter_filter_keeps_only_that_encounter() -> None:
    everything = net_lines(replay(str(HL7)).stdout)
    one = replay(str(HL7), "--encounter", "V1001")
    assert one.exit_code == 0
    assert 0 < len(net_lines(one.stdout)) < len(everything)


def test_usage_errors_exit_2() -> None:
    assert replay(str(HL7), "--policy", "nosuchpayer").exit_code == 2
    assert replay(str(HL7), "--format", "pdf").exit_code == 2
    assert replay(str(HL7), "--zone", "Mars/Olympus").exit_code == 2


def test_emitting_on_every_change_sends_more_messages_that_net_to_the_same_lines() -> None:
    feed = str(Path(__file__).resolve().parents[2] / "examples" / "feeds" / "ed-visit-2026-03-02.hl7")
    at_close = replay(feed, "--batch-size", "3")
    every_change = replay(feed, "--emit-on", "change", "--batch-size", "3")
    assert every_change.exit_code == 0
    assert every_change.stdout.count("\n") > at_close.stdout.count("\n")
    assert net_lines(every_change.stdout) == net_lines(at_close.stdout)
