"""kill -9 at every step of the delivery contract, again and again, then restart: nothing lost, no changed effect.

For each crash point a consumer process is started with ``IVPUSH_FAULT=<point>:<N>`` (N drawn
from 1–3, seeded) and ``os._exit(137)``s there; this repeats ``RUNS`` times on the same queue and
state file, then a clean run finishes the stream. The charge messages on the output queue must
be exactly the clean set: every expected id present (lost = 0), no other id, and every
repeated id byte-identical to the first (duplicate effects = 0); duplicates are re-publications
that downstream de-duplicates by ``message_id``. The four points run side by side, each on
its own topology and state file; the consumer processes are forked from the warm test process
(``ForkedConsumer``) so that 44 process starts cost seconds, not minutes.
"""

import os
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from broker import (
    ForkedConsumer,
    LocalBroker,
    declare,
    delete_topology,
    depth,
    drain,
    expected_charges,
    fresh_topology,
    hl7_feed,
    publish_inputs,
    record_figures,
    tally,
    wait_until,
)

from connector.bus.faults import EXIT_CODE
from connector.bus.topology import Topology
from connector.policy.model import Policy

pytestmark = pytest.mark.e2e
POINTS = ("after_receive", "after_commit", "after_publish", "after_confirm")
RUNS = int(os.environ.get("IVPUSH_FAULT_RUNS", "10"))
# x (4 pushes + 1 discharge) inputs: more than RUNS crashes can consume (≤ 3 batches of 8 a run),
# so every run reaches its crash point
ENCOUNTERS = max(40, 6 * RUNS)


@dataclass
class Lane:
    point: str
    topology: Topology
    consumer: ForkedConsumer
    crashes: int = 0


def test_kill_9_at_each_contract_step_loses_nothing_and_changes_no_effect(
    rabbit: LocalBroker, policy: Policy, tmp_path: Path
) -> None:
    feed = hl7_feed(ENCOUNTERS, tag="F")
    expected = {mid: body for (mid, _fmt), body in expected_charges(feed).items()}
    lanes = []
    for point in POINTS:
        topology = fresh_topology(point.replace("_", "-"))
        declare(rabbit, topology)
        publish_inputs(rabbit, topology, feed)
        args = ("--prefetch", "16", "--batch-size", "8")
        lanes.append(Lane(point, topology, ForkedConsumer(rabbit, topology, tmp_path / point, policy, args)))
    rng = random.Random(2026)
    try:
        for _ in range(RUNS):
            for lane in lanes:
                lane.consumer.start(IVPUSH_FAULT=f"{lane.point}:{rng.randint(1, 3)}")
            for lane in lanes:
                code = lane.consumer.wait(90)
                assert code == EXIT_CODE, f"{lane.point}: exit {code}, not a crash:\n{lane.consumer.log()[-3000:]}"
                lane.crashes += 1
        for lane in lanes:
            lane.consumer.start()
        for lane in lanes:
            out, source = lane.topology.output_queue("json"), lane.topology.input_queue()
            wait_until(
                lambda out=out, source=source: depth(rabbit, out) >= len(expected) and depth(rabbit, source) == 0,
                120,
                f"{lane.point}: every charge after the restart",
            )
            assert lane.consumer.terminate() == 0, lane.consumer.log()[-3000:]
    finally:
        for lane in lanes:
            lane.consumer.kill()
    tallies = {lane.point: tally(drain(rabbit, lane.topology.output_queue("json")), expected) for lane in lanes}
    rows = [f"fault injection: {len(feed)} inputs, {ENCOUNTERS} expected charge messages per crash point"]
    header = ("point", "kill -9 runs", "messages", "distinct", "lost", "dups", "effects")
    rows.append("{:<14} {:>12} {:>9} {:>9} {:>5} {:>5} {:>8}".format(*header))
    for lane in lanes:
        t = tallies[lane.point]
        rows.append(
            f"{lane.point:<14} {lane.crashes:>12} {t.messages:>9} {t.distinct:>9} {t.lost:>5} {t.duplicates:>5} "
            f"{t.duplicate_effects:>8}"
        )
    record_figures("\n".join(rows))
    for lane in lanes:
        assert lane.crashes == RUNS
        t = tallies[lane.point]
        assert (t.lost, t.unexpected, t.duplicate_effects, t.distinct) == (0, 0, 0, ENCOUNTERS), (lane.point, t)
        delete_topology(rabbit, lane.topology)
