"""``ivpush replay --jobs 2`` codes what ``--jobs 1`` codes: the same messages, rejects, summary and exit code.

Only the order of the output may differ (``connector.cli.replay_jobs``: grouped by worker), so
outputs are compared as sorted lines. Runs go through ``ivpush`` in a process of its own
(``forked_cli``; the workers are forked from it), except the crash test, which makes a forked
worker die in this process.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from forked_cli import run_ivpush

from connector.cli import replay_jobs
from connector.cli.main import cli
from connector.synth.render import write_feed

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
SHARED_SAMPLES = Path("/work/shared/samples")


@dataclass(frozen=True)
class Run:
    """One replay: exit code, output and rejects lines (sorted), the summary line, stderr."""

    code: int
    lines: list[bytes]
    rejects: list[str]
    summary: str
    stderr: str


def replay(tmp: Path, name: str, paths: Sequence[Path | str], *options: str, env: dict[str, str] | None = None) -> Run:
    out, rejects = tmp / f"{name}.out", tmp / f"{name}.rejects"
    command = ["replay", *map(str, paths), "--zone", "America/New_York", "--out", str(out)]
    done = run_ivpush(
        [*command, "--rejects", str(rejects), *options],
        env={**os.environ, "IVPUSH_IDENTITY_KEY": "test-key", **(env or {})},
    )
    stderr = done.stderr.decode()
    summary = next((line for line in reversed(stderr.splitlines()) if line.startswith("records read")), "")
    return Run(
        done.returncode,
        sorted(out.read_bytes().splitlines()) if out.exists() else [],
        sorted(rejects.read_text().splitlines()) if rejects.exists() else [],
        summary,
        stderr,
    )


@pytest.fixture(scope="module")
def feeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic HL7 v2 (discharges, corrections) and FHIR feeds of 120 encounters each."""
    folder = tmp_path_factory.mktemp("feeds")
    found = {}
    for fmt, seed, suffix in (("hl7", 41, "hl7"), ("fhir", 42, "ndjson")):
        buffer = io.BytesIO()
        write_feed(buffer, fmt, seed, encounters=120)
        found[fmt] = folder / f"feed.{suffix}"
        found[fmt].write_bytes(buffer.getvalue())
    return found


@pytest.fixture(scope="module")
def one_job(tmp_path_factory: pytest.TempPathFactory, feeds: dict[str, Path]) -> Any:
    """``--jobs 1`` of a synthetic feed with some options, each replayed once per module (the reference)."""
    folder = tmp_path_factory.mktemp("one-job")
    done: dict[tuple[str, tuple[str, ...]], Run] = {}

    def reference(feed: str, *options: str) -> Run:
        key = (feed, options)
        if key not in done:
            run = replay(folder, f"{feed}-{len(done)}", [feeds[feed]], *options)
            assert run.code == 0, run.stderr  # a failed reference is not kept: each test that asks fails
            done[key] = run
        return done[key]

    return reference


def same(one: Run, two: Run) -> None:
    assert two.code == one.code, two.stderr
    assert two.summary == one.summary
    assert two.lines == one.lines
    assert two.rejects == one.rejects


@pytest.mark.parametrize(
    ("feed", "options"),
    [
        ("hl7", ()),
        ("hl7", ("--format", "dft", "--emit-on", "change")),
        ("hl7", ("--format", "chargeitem", "--batch-size", "37")),
        ("fhir", ()),
        ("fhir", ("--emit-on", "change", "--no-close")),
    ],
)
def test_two_jobs_emit_the_messages_one_does_on_synthetic_feeds(
    tmp_path: Path, feeds: dict[str, Path], one_job: Any, feed: str, options: tuple[str, ...]
) -> None:
    one = one_job(feed, *options)
    two = replay(tmp_path, "two", [feeds[feed]], *options, "--jobs", "2")
    assert len(one.lines) > 50
    same(one, two)


@pytest.mark.parametrize("where", ["tests", "shared"])
def test_two_jobs_code_the_samples_as_one_does_rejects_included(tmp_path: Path, where: str) -> None:
    folder = SAMPLES if where == "tests" else SHARED_SAMPLES
    if not folder.is_dir():
        pytest.skip(f"no {folder}")
    # each option set once per folder is enough: the other folder covers the other one
    plans = {"tests": ((), ("--strict",)), "shared": ((), ("--format", "dft", "--emit-on", "change"))}
    for options in plans[where]:
        one = replay(tmp_path, "one", [folder / "hl7", folder / "fhir"], *options)
        two = replay(tmp_path, "two", [folder / "hl7", folder / "fhir"], *options, "--jobs", "2")
        assert one.rejects, "the samples hold rejects"
        assert one.code == (1 if options == ("--strict",) else 0)
        same(one, two)


def test_a_new_sqlite_state_of_two_jobs_is_the_state_of_one(tmp_path: Path, feeds: dict[str, Path]) -> None:
    states = {jobs: tmp_path / f"state-{jobs}.db" for jobs in ("1", "2")}
    for jobs, state in states.items():
        assert replay(tmp_path, f"run-{jobs}", [feeds["hl7"]], "--state", str(state), "--jobs", jobs).code == 0
    assert rows(states["2"]) == rows(states["1"])
    again = replay(tmp_path, "again", [feeds["hl7"]], "--state", str(states["2"]), "--jobs", "2")
    assert again.code == 0
    assert "--jobs 2 ran as --jobs 1: the SQLite state exists" in again.stderr
    assert again.lines == [] and " 0 duplicates" not in again.summary  # everything was seen: nothing new


def rows(state: Path) -> dict[str, Any]:
    """What a state holds, order aside (outbox sequence numbers, update times and send times left out)."""
    with sqlite3.connect(state) as db:
        found: dict[str, Any] = {
            table: sorted(db.execute(f"SELECT * FROM {table}").fetchall())
            for table in ("administrations", "emitted", "outcomes", "order_links", "visits", "meta")
        }
        found["encounters"] = sorted(db.execute("SELECT key, ref, attrs, messages, closed, failed FROM encounters"))
        found["seen"] = sorted(db.execute("SELECT dedup_key FROM seen"))
        found["outbox"] = sorted(db.execute("SELECT message_id, format, encounter_key, body, sent FROM outbox"))
        found["history"] = sorted(db.execute("SELECT encounter_key, sequence, message_id, cause, body FROM history"))
    return found


def test_standard_input_runs_in_one_process_and_says_so(feeds: dict[str, Path], one_job: Any) -> None:
    done = run_ivpush(["replay", "-", "--zone", "America/New_York", "--jobs", "2"], input=feeds["hl7"].read_bytes())
    assert done.returncode == 0
    assert "--jobs 2 ran as --jobs 1: standard input" in done.stderr.decode()
    assert done.stdout.count(b"\n") == len(one_job("hl7").lines)


def test_exit_codes_are_those_of_one_job(tmp_path: Path) -> None:
    missing = replay(tmp_path, "missing", [tmp_path / "absent.hl7"], "--jobs", "2")
    assert missing.code == 2
    assert "no such file" in missing.stderr
    bad = replay(tmp_path, "bad", [SAMPLES / "hl7"], "--jobs", "0")
    assert bad.code == 2


def test_a_worker_that_dies_stops_the_run_with_exit_1_and_leaves_no_state(
    tmp_path: Path, feeds: dict[str, Path], one_job: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("the crash is injected into forked workers")
    coded = replay_jobs.code_batch

    def dies_in_worker_1(*args: Any) -> None:
        if multiprocessing.current_process().name == "ivpush-replay-1":
            os._exit(3)
        coded(*args)

    monkeypatch.setattr(replay_jobs, "code_batch", dies_in_worker_1)
    state, out = tmp_path / "state.db", tmp_path / "out.ndjson"
    arguments = ["replay", str(feeds["hl7"]), "--zone", "America/New_York", "--jobs", "2"]
    result = CliRunner().invoke(cli, [*arguments, "--state", str(state), "--out", str(out)])
    assert result.exit_code == 1
    assert "worker 1 (exit code 3) of 2 failed: nothing was written" in result.output
    assert out.read_bytes() == b""
    assert not state.exists() and not Path(f"{state}-wal").exists()  # the new state is removed
    monkeypatch.setattr(replay_jobs, "code_batch", coded)
    after = replay(tmp_path, "after", [feeds["hl7"]], "--state", str(state), "--jobs", "2")
    assert after.code == 0 and "ran as --jobs 1" not in after.stderr  # run again: in parallel, coded whole
    assert after.lines == one_job("hl7").lines


def test_two_jobs_share_a_postgresql_state(tmp_path: Path, feeds: dict[str, Path], one_job: Any, cluster: Any) -> None:
    with cluster.fresh_schema("jobs2") as url_two:
        two = replay(tmp_path, "two", [feeds["hl7"]], "--state", url_two, "--jobs", "2")
        one = one_job("hl7")  # what one job codes with no state (its summary does not name a state)
        assert (two.code, two.lines, two.rejects) == (one.code, one.lines, one.rejects), two.stderr
        again = replay(tmp_path, "again", [feeds["hl7"]], "--state", url_two, "--jobs", "2")
        assert again.code == 0 and again.lines == []
