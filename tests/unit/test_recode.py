"""What-if recoding (issue #16): stored encounters coded again under other mappings, without the feeds.

The property: a state replayed under policy A, then recoded under B, has emitted in all the
same net lines per encounter (charges minus credits of every message) as a fresh replay of
the feed under B. A dry run does the same work and keeps nothing, and reports what the real
run emits.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recode_support import net, write_site

from connector.cli.recode import RecodeOptions, run_recode
from connector.cli.recode_report import RecodeReport
from connector.cli.replay import run
from connector.cli.replay_options import ReplayOptions
from connector.emitters import json_charge
from connector.model import ClaimType
from connector.policy.loader import load_policy
from connector.policy.model import Policy
from connector.service import EmitOn, Service, ServiceSettings
from connector.store.memory import MemoryStore
from connector.synth.render import write_feed


@pytest.fixture(scope="module")
def site_policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    """The shipped mappings under a site overlay of the default payer: a 60-minute repeat interval, a 96375 cap."""
    return load_policy(write_site(tmp_path_factory.mktemp("site"), "site-what-if-1"))


@pytest.fixture(scope="module")
def feeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feeds")


def feed(folder: Path, fmt: str, seed: int) -> Path:
    path = folder / f"{fmt}-{seed}.{'hl7' if fmt == 'hl7' else 'ndjson'}"
    if not path.exists():
        with path.open("wb") as out:
            write_feed(out, fmt, seed, encounters=8)
    return path


def parse(*outputs: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for out in outputs for line in out.splitlines() if line.strip()]


@dataclass(frozen=True)
class Change:
    """Policy B: the mappings, claim type and default payer a recode uses (None: keep the encounter's)."""

    site: bool = False
    claim_type: ClaimType | None = None
    payer: str | None = None


CHANGES = [
    Change(payer="medicare"),
    Change(claim_type=ClaimType.PROFESSIONAL),
    Change(site=True),
    Change(site=True, claim_type=ClaimType.PROFESSIONAL, payer="bcbs"),
]


def replay(path: Path, policy: Policy, store: MemoryStore, emit_on: EmitOn, batch: int, change: Change) -> bytes:
    out = io.BytesIO()
    options = ReplayOptions(
        paths=(str(path),),
        claim_type=change.claim_type or ClaimType.FACILITY,
        payer=change.payer or "default",
        emit_on=emit_on,
        batch_size=batch,
    )
    report = run(options, policy, out, store=store)
    assert report.totals.rejected == {} and not report.rejects
    return out.getvalue()


def recode(store: MemoryStore, policy: Policy, change: Change, dry_run: bool = False) -> tuple[RecodeReport, bytes]:
    out = io.BytesIO()
    service = Service(store, policy, ServiceSettings({"json": json_charge.render}), clock=lambda: 5000.0)
    options = RecodeOptions(change.claim_type, change.payer, dry_run, batch_size=3)
    return run_recode(store, service, options, None, None if dry_run else out), out.getvalue()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    fmt=st.sampled_from(["hl7", "fhir"]),
    change=st.sampled_from(CHANGES),
    emit_on=st.sampled_from(list(EmitOn)),
    batch=st.integers(5, 200),
)
def test_a_recode_nets_to_a_fresh_replay_under_the_new_policy(
    policy: Policy, site_policy: Policy, feeds: Path, seed: int, fmt: str, change: Change, emit_on: EmitOn, batch: int
) -> None:
    path = feed(feeds, fmt, seed)
    after = site_policy if change.site else policy
    store = MemoryStore()
    first = replay(path, policy, store, emit_on, batch, Change())
    report, recoded = recode(store, after, change)
    fresh = replay(path, after, MemoryStore(), EmitOn.CLOSE, 500, change)
    assert net(parse(first, recoded)) == net(parse(fresh))
    assert report.changed > 0 and not report.failed  # a new policy version: every line has a new id
    assert all(m["message_id"] for m in parse(recoded))
    again, nothing = recode(store, after, change)
    assert (again.changed, nothing) == (0, b"")  # recoded once: the state is coded under B
    assert again.unchanged == report.recoded


def snapshot(store: MemoryStore) -> tuple[Any, ...]:
    """Everything a recode could write: states, emitted lines, outbox, history, outcomes, meta."""
    with store.transaction() as tx:
        keys = tx.encounter_keys()
        return (
            [tx.get(key) for key in keys],
            [tx.emitted(key) for key in keys],
            [tx.history(key) for key in keys],
            [tx.outcomes(key) for key in keys],
            tx.get_meta("coding.mappings"),
            [(row.message_id, row.format, row.body) for row in store.pending(100_000)],
        )


def figures(report: RecodeReport) -> dict[str, Any]:
    found = report.as_dict(dry_run=False)
    found.pop("dry_run")
    return found


def test_a_dry_run_writes_nothing_and_reports_what_the_real_run_emits(
    policy: Policy, site_policy: Policy, feeds: Path
) -> None:
    store = MemoryStore()
    replay(feed(feeds, "hl7", 7), policy, store, EmitOn.CLOSE, 100, Change())
    before = snapshot(store)
    change = Change(site=True, claim_type=ClaimType.PROFESSIONAL)
    dry, nothing = recode(store, site_policy, change, dry_run=True)
    assert nothing == b""
    assert snapshot(store) == before
    real, emitted = recode(store, site_policy, change)
    assert figures(dry) == figures(real)
    messages = parse(emitted)
    assert len(messages) == real.changed > 0
    by_code: dict[str, dict[str, int]] = {}
    for message in messages:
        for line in message["lines"]:
            counts = by_code.setdefault(line["code"], {"credit": 0, "charge": 0})
            counts[line["action"]] += 1
    assert by_code == dry.as_dict(dry_run=True)["by_code"]
    with store.transaction() as tx:
        recoded = [e for key in tx.encounter_keys() for e in tx.history(key) if e.cause == "recode"]
    assert sorted(e.message_id for e in recoded) == sorted(m["message_id"] for m in messages)


def test_open_encounters_that_emitted_nothing_are_left_to_their_close(policy: Policy, feeds: Path) -> None:
    whole = feed(feeds, "hl7", 7).read_bytes().split(b"\n")
    cut = feeds / "cut.hl7"  # the first half of the feed: encounters still open, not discharged
    cut.write_bytes(b"\n".join(whole[: len(whole) // 2]) + b"\n")
    store = MemoryStore()
    run(ReplayOptions(paths=(str(cut),), close_at_end=False), policy, io.BytesIO(), store=store)
    with store.transaction() as tx:
        still_open = tx.open_encounters()
        every = tx.encounter_keys()
    report, emitted = recode(store, policy, Change(payer="medicare"))
    assert still_open and report.not_recoded == len(still_open)
    assert report.recoded + report.not_recoded == len(every)
    with store.transaction() as tx:
        assert tx.open_encounters() == still_open  # recoding closes nothing
        assert all(tx.history(key) == [] for key in still_open)
    assert len(parse(emitted)) == report.changed
