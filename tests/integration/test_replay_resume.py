"""``ivpush replay --state S --out F`` interrupted and run again loses no charge; the state file is private.

The interrupted run reads the feed from a pipe: the test writes the first 2.5 MiB (the write
returns once the replay has read all but the pipe's 64 KiB: it has processed two 1 MiB read
chunks and waits for the third, which never completes), waits until the kernel shows it
asleep in that read (``/proc/PID/wchan``), and interrupts it there. No timing decides
anything: the signal always lands while the replay is blocked on its input, with part of the
output written and the rest of the feed unread. (A SIGINT landing between two reads is handled
by CPython only at its next check, after the next read returns: waiting for the block makes
the test deterministic.) The second run is the same command over the whole feed.
"""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connector.store.sqlite import SqliteStore
from connector.synth.render import write_feed

IVPUSH = Path(sys.executable).parent / "ivpush"
FIRST_PART = 5 << 19  # 2.5 MiB: two whole read chunks and half of the third


@pytest.fixture(scope="module")
def feed() -> bytes:
    """A synthetic HL7 feed of 300 encounters (3.7 MiB), discharges and corrections included."""
    out = io.BytesIO()
    write_feed(out, "hl7", 5, encounters=300)
    assert len(out.getvalue()) > FIRST_PART + (1 << 20)
    return out.getvalue()


def command(state: Path, out: Path, *extra: str) -> list[str]:
    return [str(IVPUSH), "replay", "-", "--state", str(state), "--out", str(out), "--batch-size", "50", *extra]


def net(path: Path) -> dict[str, tuple[str, int, str]]:
    """Net charge lines by line id: charges minus credits, in file order (every line must parse)."""
    current: dict[str, tuple[str, int, str]] = {}
    for text in path.read_bytes().split(b"\n")[:-1] if path.exists() else []:
        message = json.loads(text)
        for line in message["lines"]:
            if line["action"] == "charge":
                current[line["line_id"]] = (line["code"], line["units"], message["encounter"]["id"])
            else:
                current.pop(line["line_id"], None)
    return current


def uninterrupted(tmp_path: Path, feed: bytes) -> dict[str, tuple[str, int, str]]:
    out = tmp_path / "baseline.ndjson"
    done = subprocess.run(command(tmp_path / "baseline.db", out), input=feed, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    return net(out)


def interrupt(state: Path, out: Path, feed: bytes, how: signal.Signals) -> int:
    """Start the replay, feed it the first part, wait for output, send ``how``; its exit status."""
    process = subprocess.Popen(
        command(state, out),
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509 - a background job ignores it
    )
    assert process.stdin is not None and process.stderr is not None
    try:
        process.stdin.write(feed[:FIRST_PART])
        process.stdin.flush()
        wchan = Path(f"/proc/{process.pid}/wchan")
        while "pipe" not in wchan.read_text() and process.poll() is None:
            time.sleep(0.05)  # polling for a state (asleep reading its input), not a timing assertion
        assert process.poll() is None, "the replay ended before its input did"
        assert out.stat().st_size  # charges of the first two chunks were written
        process.send_signal(how)
        status = process.wait(timeout=120)
    finally:
        process.kill()
        process.stdin.close()
    assert b"Traceback" not in process.stderr.read()
    return status


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_an_interrupted_replay_run_again_gives_the_net_charges_of_an_uninterrupted_one(
    how: signal.Signals, feed: bytes, tmp_path: Path
) -> None:
    baseline = uninterrupted(tmp_path, feed)
    state, out = tmp_path / "state.db", tmp_path / "charges.ndjson"

    status = interrupt(state, out, feed, how)

    assert status == (1 if how == signal.SIGINT else -signal.SIGKILL)  # click's "Aborted!", or killed
    first = net(out)
    assert first and len(first) < len(baseline)  # some charges written, many still to come
    again = subprocess.run(command(state, out), input=feed, capture_output=True, check=False)
    assert again.returncode == 0, again.stderr
    assert net(out) == baseline


def test_a_second_run_with_new_input_appends_to_the_file(feed: bytes, tmp_path: Path) -> None:
    baseline = uninterrupted(tmp_path, feed)
    state, out = tmp_path / "state.db", tmp_path / "charges.ndjson"
    cut = feed.index(b"MSH|", len(feed) // 2)
    for part in (feed[:cut], feed[cut:]):  # e.g. yesterday's archive, then today's
        done = subprocess.run(command(state, out, "--no-close"), input=part, capture_output=True, check=False)
        assert done.returncode == 0, done.stderr
    done = subprocess.run(command(state, out), input=b"", capture_output=True, check=False)  # close the rest
    assert done.returncode == 0, done.stderr
    assert net(out) == baseline


def test_a_line_cut_short_by_a_killed_run_is_removed_before_appending(feed: bytes, tmp_path: Path) -> None:
    baseline = uninterrupted(tmp_path, feed)
    state, out = tmp_path / "state.db", tmp_path / "charges.ndjson"
    whole = (tmp_path / "baseline.ndjson").read_bytes().split(b"\n")
    out.write_bytes(b'{"schema":"ivpush.charge/1","message_id":"msg-')  # a torn write, never marked sent
    done = subprocess.run(command(state, out), input=feed, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().split(b"\n") == whole
    assert net(out) == baseline


def test_without_a_state_the_output_file_is_replaced(feed: bytes, tmp_path: Path) -> None:
    out = tmp_path / "charges.ndjson"
    out.write_bytes(b"an older run's output\n")
    head = feed[: feed.index(b"MSH|", 1 << 16)]
    done = subprocess.run([str(IVPUSH), "replay", "-", "--out", str(out)], input=head, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    assert b"older" not in out.read_bytes() and net(out)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_state_file_and_its_wal_and_shm_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, which would give 0644
    try:
        store = SqliteStore(tmp_path / "state.db")
        try:
            store.mark_sent([])  # a write transaction: the WAL and shared-memory files exist now
            files = sorted(p.name for p in tmp_path.iterdir())
            assert files == ["state.db", "state.db-shm", "state.db-wal"]
            assert {name: mode(tmp_path / name) for name in files} == dict.fromkeys(files, 0o600)
        finally:
            store.close()
    finally:
        os.umask(old)


def test_replay_creates_its_state_file_private_and_leaves_an_existing_ones_mode(tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[1] / "samples" / "hl7" / "epic-ras-o17-one-push.hl7"
    fresh, existing = tmp_path / "fresh.db", tmp_path / "existing.db"
    existing.touch(mode=0o640)
    existing.chmod(0o640)
    for state in (fresh, existing):
        done = subprocess.run(
            [str(IVPUSH), "replay", str(sample), "--state", str(state), "--out", str(tmp_path / "o")],
            capture_output=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert (mode(fresh), mode(existing)) == (0o600, 0o640)
