"""Where ``ivpush consume`` spends its time: py-spy on N preloaded synthetic inputs (not part of the run).

``python -m benchmarks.bus_profile hl7 10000`` preloads the inputs on a fresh topology (the
broker of ``bus_node.Node``), runs ``py-spy record --idle`` (wall time: waits count) around an
``ivpush consume --format json --emit-on change`` until every input is committed and every
charge message confirmed, then prints the share of the samples inside ``Consumer._loop`` per
step. Needs ``py-spy`` (``pip install py-spy`` into the virtualenv: not a project dependency).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from itertools import islice
from pathlib import Path

from benchmarks.bus_check import Parsed, outbox_counts
from benchmarks.bus_node import ROOT, Node, child_env, delete, preload, topology_for, wait_for_text
from benchmarks.replay_bench import _ivpush
from connector.synth.render import records

ZONE_NAME = "America/New_York"
SEEDS = {"hl7": 401, "fhir": 402}
STEPS = (  # first match wins: (label, substrings of a sampled stack: any of them; all of them for "waiting")
    ("relay: waiting for confirms", ("Relay.drain", "PollPoller.poll")),
    ("parse (parse_delivery)", ("parse_delivery",)),
    ("handle: store get", ("SqliteTransaction.get ",)),
    ("handle: store put", ("SqliteTransaction.put ",)),
    ("handle: with_administrations", ("with_administrations",)),
    ("handle: evaluate", ("evaluate (",)),
    ("handle: render", ("render (",)),
    ("handle: seen keys", ("is_seen", "mark_seen")),
    ("handle: emitted lines / enqueue", ("emitted (", "set_emitted", "enqueue")),
    ("handle: commit", ("transaction (", "__exit__", "commit")),
    ("handle: other", ("Service.handle",)),
    ("relay: outbox pending / mark_sent", ("SqliteStore.pending", "mark_sent")),
    ("relay: publishing, confirms", ("Relay.drain",)),
    ("ack", ("RabbitBus.ack",)),
    ("poll: waiting for deliveries", ("RabbitBus.poll",)),
)


def _matches(name: str, keys: tuple[str, ...], stack: str) -> bool:
    return all(k in stack for k in keys) if "waiting" in name else any(k in stack for k in keys)


def shares(raw: Path) -> tuple[int, list[tuple[str, float]]]:
    """Samples inside the consume loop, and each step's share of them (py-spy ``--format raw``)."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if "Consumer._loop" not in stack:
            continue
        label = next((name for name, keys in STEPS if _matches(name, keys, stack)), "other")
        counts[label] += int(number)
    total = sum(counts.values())
    return total, [(name, 100 * n / max(total, 1)) for name, n in counts.most_common()]


def profile(fmt: str, count: int, rate: int) -> None:
    """Preload, consume under py-spy, print the rate and the shares."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    node = Node()
    scratch = Path(tempfile.mkdtemp(prefix="ivpush-bench-profile-"))
    topology = topology_for(f"profile-{fmt}")
    try:
        bodies = list(islice(records(fmt, SEEDS[fmt], limit=count + 1), count))
        target = Parsed(fmt, bodies, ZONE_NAME).distinct_inputs(count)
        preload(node, topology, fmt, bodies)
        state, log, raw = scratch / "state.db", scratch / "consume.log", scratch / "py-spy.txt"
        command = [
            spy, "record", "--idle", "-r", str(rate), "--format", "raw", "-o", str(raw), "--",
            *_ivpush(), "consume", "--prefix", topology.prefix, "--state", str(state), "--format", "json",
            "--emit-on", "change", "--zone", ZONE_NAME,
        ]  # fmt: skip
        with log.open("wb") as sink:
            recorder = subprocess.Popen(
                command, stdout=sink, stderr=subprocess.STDOUT, env=child_env(node.url), cwd=ROOT
            )
        started = wait_for_text(log, "consuming", recorder)
        while True:
            seen, total, unsent = outbox_counts(state)
            if seen >= target and unsent == 0:
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        for pid in Path(f"/proc/{recorder.pid}/task/{recorder.pid}/children").read_text().split():
            os.kill(int(pid), signal.SIGTERM)  # the consumer; py-spy writes its file when it exits
        recorder.wait(120)
        samples, table = shares(raw)
        print(f"{fmt}: {count} inputs in {seconds:.1f} s ({count / seconds:.0f}/s under py-spy), {total} charges")
        print(f"{samples} samples inside Consumer._loop:")
        for name, share in table:
            print(f"  {share:5.1f} %  {name}")
    finally:
        delete(node, topology)
        node.close()
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("format", choices=("hl7", "fhir"))
    parser.add_argument("count", type=int)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    args = parser.parse_args()
    profile(args.format, args.count, args.rate)


if __name__ == "__main__":
    main()
