"""RabbitBus against the local RabbitMQ node: confirms, returns, batching, dead-lettering, errors."""

import time

import pytest
from broker import (
    LocalBroker,
    delete_topology,
    depth,
    drain,
    fresh_topology,
    record_figures,
    wait_until,
)

from connector.bus.base import Outgoing
from connector.bus.config import AmqpSettings
from connector.bus.errors import BusUnavailable, TopologyError
from connector.bus.rabbitmq import RabbitBus
from connector.bus.topology import Topology, policy_args

pytestmark = pytest.mark.integration


def test_windowed_confirms_confirm_every_message_and_the_queue_holds_each_once(rabbit: LocalBroker) -> None:
    topology = fresh_topology("confirms")
    bus = rabbit.bus()
    try:
        bus.declare(topology)
        messages = [Outgoing(topology.input_exchange, "any.key", b"x" * 1024, f"m{i}") for i in range(3000)]
        started = time.monotonic()
        report = bus.publish(messages, timeout=60, window=500)
        elapsed = time.monotonic() - started
    finally:
        bus.close()
    assert report.complete and sorted(report.confirmed) == sorted(f"m{i}" for i in range(3000))
    assert depth(rabbit, topology.input_queue()) == 3000
    assert sorted(m.message_id or "" for m in drain(rabbit, topology.input_queue())) == sorted(report.confirmed)
    # reported, never asserted: a timing threshold in a test fails on a busy machine, not on a bug
    record_figures(f"async confirms: 3000 x 1 KiB persistent in {elapsed:.2f}s ({3000 / elapsed:,.0f} msg/s)")
    delete_topology(rabbit, topology)


def test_the_sent_hook_sees_each_message_once_in_order_through_a_small_window(rabbit: LocalBroker) -> None:
    """The relay always passes this hook (crash injection's ``after_publish``): one path, faults or not."""
    topology = fresh_topology("hook")
    seen: list[str | None] = []
    bus = rabbit.bus()
    try:
        bus.declare(topology)
        messages = [Outgoing(topology.input_exchange, "k", b"x", f"m{i}") for i in range(50)]
        report = bus.publish(messages, timeout=30, window=8, on_sent=lambda m: seen.append(m.message_id))
    finally:
        bus.close()
    assert report.complete and seen == [f"m{i}" for i in range(50)]
    assert depth(rabbit, topology.input_queue()) == 50
    delete_topology(rabbit, topology)


def test_a_mandatory_publish_to_nowhere_is_returned_not_lost(rabbit: LocalBroker) -> None:
    topology = fresh_topology("returns")
    bus = rabbit.bus()
    try:
        bus.declare(topology)
        report = bus.publish(
            [
                Outgoing(topology.output_exchange, "charge.json", b"a", "routed"),
                Outgoing(topology.output_exchange, "charge.nowhere", b"b", "unroutable"),
                Outgoing(topology.output_exchange, "charge.json", b"c", "routed-too"),
            ],
            timeout=10,
        )
    finally:
        bus.close()
    assert report.confirmed == ["routed", "routed-too"]
    assert report.returned == ["unroutable"]
    delete_topology(rabbit, topology)


def test_poll_batches_by_count_then_by_time_and_multiple_ack_settles_the_batch(rabbit: LocalBroker) -> None:
    topology = fresh_topology("poll")
    bus = rabbit.bus()
    try:
        bus.declare(topology)
        bus.publish([Outgoing(topology.input_exchange, "k", b"%d" % i, f"m{i}") for i in range(250)], 30)
        bus.consume(topology.input_queue(), prefetch=200)
        first = bus.poll(100, timeout=5, linger=1.0)
        assert len(first) == 100 and [d.body for d in first[:3]] == [b"0", b"1", b"2"]
        bus.ack(first[-1].delivery_tag, multiple=True)
        rest: list[object] = []
        while len(rest) < 150:
            batch = bus.poll(100, timeout=5, linger=0.05)
            assert batch
            bus.ack(batch[-1].delivery_tag, multiple=True)
            rest.extend(batch)
        started = time.monotonic()
        assert bus.poll(100, timeout=0.3) == []
        assert time.monotonic() - started >= 0.25
    finally:
        bus.close()
    assert depth(rabbit, topology.input_queue()) == 0
    delete_topology(rabbit, topology)


def test_unacked_deliveries_come_back_redelivered_after_the_connection_closes(rabbit: LocalBroker) -> None:
    topology = fresh_topology("redeliver")
    bus = rabbit.bus()
    bus.declare(topology)
    bus.publish([Outgoing(topology.input_exchange, "k", b"one", "m1")], 10)
    bus.consume(topology.input_queue(), 10)
    (delivery,) = bus.poll(10, timeout=5)
    assert not delivery.redelivered
    bus.close()
    again = rabbit.bus()
    try:
        again.consume(topology.input_queue(), 10)
        (redelivered,) = again.poll(10, timeout=5)
        assert redelivered.redelivered and redelivered.body == b"one"
        again.ack(redelivered.delivery_tag)
    finally:
        again.close()
    delete_topology(rabbit, topology)


def test_with_the_policy_a_rejected_input_is_dead_lettered_to_the_parking_queue(rabbit: LocalBroker) -> None:
    topology = fresh_topology("dlx")
    result = rabbit.ctl(*policy_args(topology))
    assert result.returncode == 0, result.stderr
    bus = rabbit.bus()
    try:
        bus.declare(topology)
        bus.publish([Outgoing(topology.input_exchange, "k", b"bad", "m1")], 10)
        bus.consume(topology.input_queue(), 10)
        (delivery,) = bus.poll(10, timeout=5)
        bus.reject(delivery.delivery_tag, requeue=False)
        bus.sleep(0.2)
    finally:
        bus.close()
    wait_until(lambda: depth(rabbit, topology.parking_queue) == 1, 10, "the dead-lettered input")
    (parked,) = drain(rabbit, topology.parking_queue)
    assert parked.body == b"bad" and parked.headers["x-first-death-reason"] == "rejected"
    rabbit.ctl("clear_policy", topology.policy_name)
    delete_topology(rabbit, topology)


def test_declaring_an_existing_queue_with_other_arguments_is_a_topology_error(rabbit: LocalBroker) -> None:
    topology = fresh_topology("mismatch")
    connection = rabbit.blocking()
    connection.channel().queue_declare(topology.input_queue(), durable=True)  # a classic queue
    connection.close()
    bus = rabbit.bus()
    try:
        with pytest.raises(TopologyError, match="PRECONDITION_FAILED"):
            bus.declare(topology)
    finally:
        bus.close()
    delete_topology(rabbit, topology)


def test_an_unreachable_broker_is_bus_unavailable_not_a_pika_error() -> None:
    with pytest.raises(BusUnavailable):
        RabbitBus(AmqpSettings(url="amqp://guest:guest@127.0.0.1:9/%2F"), connect_timeout=5)


def test_sharded_topology_declares_with_the_consistent_hash_plugin(rabbit: LocalBroker) -> None:
    topology = Topology(prefix=fresh_topology("shards").prefix, shards=2, formats=("json",))
    bus = rabbit.bus()
    try:
        bus.declare(topology)
        messages = [
            Outgoing(topology.input_exchange, "1", b"x", f"m{i}", headers={"encounter_id": f"V{i}"}) for i in range(40)
        ]
        assert bus.publish(messages, 10).complete
    finally:
        bus.close()
    counts = [depth(rabbit, q) for q in topology.input_queues()]
    assert sum(counts) == 40 and all(counts)
    delete_topology(rabbit, topology)
