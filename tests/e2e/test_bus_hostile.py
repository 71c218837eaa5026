"""Hostile input on a real broker (issue #12): one unrenderable encounter, parking twice, start-up errors."""

import hashlib
import re
from functools import partial
from pathlib import Path

import pytest
from broker import (
    BrokenFor,
    ConsumerProcess,
    ForkedConsumer,
    LocalBroker,
    Received,
    ThreadedConsumer,
    declare,
    delete_topology,
    depth,
    drain,
    expected_charges,
    fresh_topology,
    hl7_feed,
    poison_samples,
    publish_inputs,
    wait_until,
)

from connector.bus.consumer import ConsumerSettings
from connector.bus.faults import EXIT_CODE
from connector.bus.inputs import parse_delivery
from connector.bus.parking import DETAIL_HEADER, ERROR_HEADER, MESSAGE_ID_HEADER
from connector.bus.topology import Topology
from connector.policy.model import Policy
from connector.store.sqlite import SqliteStore

pytestmark = pytest.mark.e2e
BAD_VISIT = "V00005"
BAD = f"GENHOSP|{BAD_VISIT}"


class UnrenderableConsumer(ThreadedConsumer):
    """The consumer under test: JSON rendering broken for ``BAD``, one delivery one fate, the test's clock."""

    def __init__(self, rabbit: LocalBroker, policy: Policy, topology: Topology, path: Path, **settings: float) -> None:
        self.now = 1000.0
        chosen = ConsumerSettings(queue=topology.input_queue(), **settings)  # type: ignore[arg-type]
        broken = {"json": BrokenFor(BAD)}
        super().__init__(rabbit, policy, topology, path, chosen, render=broken, clock=self.clock, read=parse_delivery)

    def clock(self) -> float:
        return self.now  # moved on by the test


def test_one_encounter_that_cannot_be_rendered_among_ten_good_ones_with_idle_sweeping_on(
    rabbit: LocalBroker, policy: Policy, tmp_path: Path
) -> None:
    feed = hl7_feed(11, tag="H")
    discharges = {body for body in feed if b"ADT^A03" in body}
    bad_discharge = next(body for body in discharges if BAD_VISIT.encode() in body)
    pushes = [body for body in feed if body not in discharges]  # the ten good ones close by idleness
    expected = {mid for mid, _ in expected_charges([body for body in feed if BAD_VISIT.encode() not in body])}
    topology = fresh_topology("unrenderable")
    declare(rabbit, topology)
    out, parking = topology.output_queue("json"), topology.parking_queue
    run = UnrenderableConsumer(
        rabbit, policy, topology, tmp_path / "state.db", prefetch=20, batch_size=10, idle_seconds=60, sweep_every=0.2
    )
    try:
        publish_inputs(rabbit, topology, pushes)
        run.until(lambda: run.consumer.stats.deliveries == len(pushes), "every push applied")
        assert depth(rabbit, out) == 0  # nothing closed yet: not idle long enough
        run.now += 3600  # an hour later: the sweep closes all eleven encounters, one of which fails
        run.until(lambda: depth(rabbit, out) >= len(expected), "the ten good encounters charged")
        failed = partial(run.consumer.metrics.value, "ivpush_encounters_failed_total", code="render_failed")
        run.until(lambda: failed() == 1, "the bad encounter counted")
        publish_inputs(rabbit, topology, [bad_discharge])  # its discharge: rendering it fails again
        run.until(lambda: depth(rabbit, parking) == 1, "the bad encounter's discharge parked")
    finally:
        run.finish()
    assert sorted(m.message_id or "" for m in drain(rabbit, out)) == sorted(expected)  # the ten, each once
    (parked,) = drain(rabbit, parking)
    assert parked.body == bad_discharge and parked.message_id == "ADT|GENHOSP|H5-A03"  # id: its dedup key
    reason = (parked.headers[ERROR_HEADER], parked.headers[DETAIL_HEADER])
    assert reason == ("render_failed", "json renderer: ValueError")  # no value from the exception
    store = SqliteStore(str(tmp_path / "state.db"))
    with store.transaction() as tx:
        state = tx.get(BAD)
    store.close()
    assert state is not None and state.failed == "render_failed" and not state.encounter.closed
    assert run.consumer.stats.connects == 1  # never restarted by the bad encounter
    delete_topology(rabbit, topology)


def by_body(received: list[Received]) -> dict[bytes, set[str | None]]:
    ids: dict[bytes, set[str | None]] = {}
    for message in received:
        ids.setdefault(message.body, set()).add(message.message_id)
    return ids


def test_poison_parked_again_after_a_kill_9_before_the_ack_carries_the_same_message_id(
    rabbit: LocalBroker, policy: Policy, tmp_path: Path
) -> None:
    poison = poison_samples()[:6]
    feed = hl7_feed(4, tag="K")
    inputs = [item for pair in zip(feed, poison, strict=False) for item in pair] + feed[len(poison) :]
    topology = fresh_topology("park-twice")
    declare(rabbit, topology)
    publish_inputs(rabbit, topology, inputs)
    args = ("--prefetch", "40", "--batch-size", "40", "--batch-wait", "1")
    consumer = ForkedConsumer(rabbit, topology, tmp_path, policy, args)
    try:
        assert consumer.start(IVPUSH_FAULT="after_park:1").wait(90) == EXIT_CODE, consumer.log()[-3000:]
        first = depth(rabbit, topology.parking_queue)  # parked, then killed before the ack
        assert first >= 1
        consumer.start()
        wait_until(lambda: depth(rabbit, topology.input_queue()) == 0, 90, "the batch redelivered and finished")
        assert consumer.terminate() == 0, consumer.log()[-3000:]
    finally:
        consumer.kill()
    parked = drain(rabbit, topology.parking_queue)
    assert len(parked) == len(poison) + first  # those of the killed batch parked twice ...
    ids = by_body(parked)
    assert set(ids) == set(poison) and all(len(found) == 1 for found in ids.values())  # ... under one id
    assert all(next(iter(found)) == f"sha256:{_digest(body)}" for body, found in ids.items())
    assert {str(m.headers[MESSAGE_ID_HEADER]) for m in parked} <= {f"in-{n}" for n in range(len(inputs))}
    delete_topology(rabbit, topology)


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def test_wrong_credentials_end_consume_with_one_error_line_after_the_configured_attempts(
    rabbit: LocalBroker, tmp_path: Path
) -> None:
    wrong = re.sub(r"://([^:/@]+):[^@]*@", r"://\1:not-the-password@", rabbit.url)
    assert wrong != rabbit.url
    topology = fresh_topology("refused")
    consumer = ConsumerProcess(rabbit, topology, tmp_path, args=("--reconnect-max", "0.2"))
    consumer.start(IVPUSH_AMQP_URL=wrong, IVPUSH_AMQP__AUTH_ATTEMPTS="3", IVPUSH_LOG_FORMAT="text")
    assert consumer.wait(90) == 3, consumer.log()[-3000:]
    log = consumer.log().split("\n", 1)[1]  # after the harness's own "--- run" line (it lists the env)
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "refused access 3 times in a row" in errors[0], log[-3000:]
    assert "ACCESS_REFUSED" in errors[0] and ":***@" in errors[0]
    assert "not-the-password" not in log and "Traceback" not in log
    assert log.count("; reconnecting in") == 2  # the two refusals retried before giving up, each logged


def test_a_malformed_port_in_the_url_exits_2_naming_it_with_the_password_redacted(
    rabbit: LocalBroker, tmp_path: Path
) -> None:
    broken = re.sub(r"@([^:/]+):(\d+)", r"@\1:\2x", rabbit.url)
    assert broken != rabbit.url
    consumer = ConsumerProcess(rabbit, fresh_topology("bad-port"), tmp_path)
    consumer.start(IVPUSH_AMQP_URL=broken)
    assert consumer.wait(60) == 2, consumer.log()[-3000:]
    log = consumer.log().split("\n", 1)[1]  # after the harness's own "--- run" line (it lists the env)
    password = re.search(r"://[^:/@]+:([^@]*)@", rabbit.url)
    assert password is not None and f":{password.group(1)}@" not in log
    assert "is not a number from 1 to 65535" in log and ":***@" in log and "Traceback" not in log
