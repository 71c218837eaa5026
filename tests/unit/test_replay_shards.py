"""``replay --jobs``: records that may touch each other through the state go to one worker."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from connector.adapters.archive import Record, read_records
from connector.adapters.dispatch import read_record
from connector.adapters.errors import AdapterError
from connector.bootstrap import local_zone
from connector.cli import replay_shards
from connector.cli.replay_options import ReplayOptions
from connector.policy.model import Policy
from connector.synth.render import write_feed

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
OPTIONS = ReplayOptions(paths=(), zone=local_zone("America/New_York"))


def synthetic(tmp_path: Path, fmt: str, seed: int) -> list[Record]:
    buffer = io.BytesIO()
    write_feed(buffer, fmt, seed, encounters=60)
    path = tmp_path / f"feed.{'hl7' if fmt == 'hl7' else 'ndjson'}"
    path.write_bytes(buffer.getvalue())
    return list(read_records([str(path)]))


def test_the_quick_scan_finds_every_token_the_adapter_reads(policy: Policy, tmp_path: Path) -> None:
    records = list(read_records([str(SAMPLES)])) + synthetic(tmp_path, "hl7", 3) + synthetic(tmp_path, "fhir", 4)
    fields = replay_shards._hl7_fields(policy)
    quick = 0
    for record in records:
        if record.error is not None or record.oversize or record.format not in ("hl7", "fhir"):
            continue
        scanned = (
            replay_shards._hl7_tokens(record.data, fields)
            if record.format == "hl7"
            else replay_shards._fhir_tokens(record.data)
        )
        if scanned is None:
            continue
        quick += 1
        try:
            parsed = read_record(record, policy, OPTIONS.zone, OPTIONS.max_bytes).records
        except AdapterError:
            continue
        for item in parsed:
            assert replay_shards.dedup_forms(item.dedup_key) & scanned, record.position
            for key in replay_shards.keys_of(item):
                assert not key or replay_shards.forms(key) & scanned, (record.position, key)
    assert quick > 100


@pytest.mark.parametrize(("fmt", "seed"), [("hl7", 7), ("fhir", 8)])
def test_every_encounter_and_dedup_key_stays_with_one_worker(
    policy: Policy, tmp_path: Path, fmt: str, seed: int
) -> None:
    records = synthetic(tmp_path, fmt, seed)
    records += records[::7]  # repeats: a duplicate must meet its first
    shards = replay_shards.assign(iter(records), OPTIONS, policy, 2)
    assert shards == replay_shards.assign(iter(records), OPTIONS, policy, 2)  # a function of the input
    assert sorted(set(shards)) == [0, 1]
    assert abs(shards.count(0) - shards.count(1)) < len(records) // 4  # balanced enough to be worth it
    owner: dict[str, int] = {}
    for record, shard in zip(records, shards, strict=True):
        try:
            parsed = read_record(record, policy, OPTIONS.zone, OPTIONS.max_bytes).records
        except AdapterError:
            continue
        for item in parsed:
            keys = {a.encounter_key for a in item.administrations} | {e.encounter.key for e in item.encounter_events}
            for key in keys | {item.dedup_key}:
                assert owner.setdefault(key, shard) == shard, key


def test_unreadable_and_unscannable_records_are_placed_by_their_adapter(policy: Policy) -> None:
    broken = Record("x", "byte 0", "hl7", b"not hl7 at all")
    assert replay_shards.tokens(broken, OPTIONS, policy, replay_shards._hl7_fields(policy)) == set()
    shifted = next(r for r in read_records([str(SAMPLES / "hl7" / "ras-o17-iso2022jp.hl7")]))
    assert replay_shards._hl7_tokens(shifted.data, replay_shards._hl7_fields(policy)) is None  # ISO 2022: adapter
    assert replay_shards.tokens(shifted, OPTIONS, policy, replay_shards._hl7_fields(policy))


def test_a_message_in_a_set_that_may_hide_a_delimiter_in_a_character_goes_to_the_adapter(policy: Policy) -> None:
    fields = replay_shards._hl7_fields(policy)
    # Big5 U+541C is 0xCA 0x7C: its second byte is "|", which would shift PV1-19 by one field
    body = "PID|1||MRN1\rPV1|1|E|ED^1^1^GENHOSP||||{name}||||||||||||V1001\r"
    header = b"MSH|^~\\&|MAR|GENHOSP|||20260302||RAS^O17|C1|P|2.5.1||||||"
    big5 = header + b"BIG-5\r" + body.format(name="\u541c").encode("big5")
    assert b"|" in "\u541c".encode("big5")
    assert replay_shards._hl7_tokens(big5, fields) is None
    latin = b"MSH|^~\\&|MAR|GENHOSP|||20260302||RAS^O17|C1|P|2.5.1||||||8859/1\r" + body.format(name="é").encode(
        "latin-1"
    )
    assert "V1001" in (replay_shards._hl7_tokens(latin, fields) or set())


def test_an_explicit_null_is_no_value_and_no_reason_to_parse_in_full(policy: Policy) -> None:
    fields = replay_shards._hl7_fields(policy)
    message = b'MSH|^~\\&|MAR|GENHOSP|||20260302||RAS^O17|C1|P|2.5.1|""\rPID|1||MRN1||""\rPV1|1|E|||||||||||||||||""\r'
    found = replay_shards._hl7_tokens(message, fields)
    assert found is not None and '""' not in found and "MRN1" in found
