"""The consumer on a real broker under trouble: broker restart, a flood of poison, an unroutable output."""

import threading
from itertools import cycle, islice
from pathlib import Path

import pytest
from broker import (
    ConsumerProcess,
    LocalBroker,
    declare,
    delete_topology,
    depth,
    drain,
    expected_charges,
    fresh_topology,
    hl7_feed,
    poison_samples,
    publish_inputs,
    record_figures,
    tally,
    wait_until,
)

from connector.bus.parking import DETAIL_HEADER, ERROR_HEADER, QUEUE_HEADER

pytestmark = pytest.mark.e2e


def charges(feed: list[bytes]) -> dict[str, bytes]:
    return {mid: body for (mid, _fmt), body in expected_charges(feed).items()}


def test_a_broker_restart_mid_stream_is_survived_by_the_consumer_and_loses_nothing(
    rabbit: LocalBroker, tmp_path: Path
) -> None:
    feed = hl7_feed(40, tag="R")
    expected = charges(feed)
    topology = fresh_topology("restart")
    declare(rabbit, topology)
    consumer = ConsumerProcess(rabbit, topology, tmp_path, args=("--prefetch", "20", "--batch-size", "10")).start()
    consumer.wait_for_log("connected (connection 1)")
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            publish_inputs(rabbit, topology, feed, chunk=5, pause=0.1)  # ~4 s of traffic, across the restart
        except BaseException as error:  # noqa: BLE001 - reported by the test thread
            errors.append(error)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        wait_until(lambda: depth(rabbit, topology.output_queue("json")) >= 3, 60, "the first charges")
        rabbit.stop()
        assert consumer.alive()
        rabbit.start()
        producer.join(240)
        assert not producer.is_alive() and not errors, errors
        out, source = topology.output_queue("json"), topology.input_queue()
        wait_until(
            lambda: depth(rabbit, out) >= len(expected) and depth(rabbit, source) == 0,
            120,
            "every charge after the restart",
        )
        assert consumer.alive(), consumer.log()[-3000:]  # recovered by itself: never exited
        assert consumer.terminate() == 0
    finally:
        consumer.kill()
        producer.join(5)
    log = consumer.log()
    assert "reconnecting in" in log and "connected (connection 2)" in log
    result = tally(drain(rabbit, topology.output_queue("json")), expected)
    record_figures(
        f"broker restart mid-stream: {len(feed)} inputs, {result.distinct}/{len(expected)} charges, "
        f"lost {result.lost}, duplicates {result.duplicates}, duplicate effects {result.duplicate_effects}, "
        f"reconnects {log.count('reconnecting in')}"
    )
    assert (result.lost, result.unexpected, result.duplicate_effects) == (0, 0, 0)
    delete_topology(rabbit, topology)


def test_a_thousand_poison_inputs_are_parked_with_reasons_and_never_restart_the_consumer(
    rabbit: LocalBroker, tmp_path: Path
) -> None:
    feed = hl7_feed(40, tag="P")
    poison = list(islice(cycle(poison_samples()), 1000))
    mixed: list[bytes] = []
    bad = iter(poison)
    for good in feed:
        mixed.append(good)
        mixed.extend(islice(bad, 5))
    mixed.extend(bad)
    topology = fresh_topology("poison")
    declare(rabbit, topology)
    publish_inputs(rabbit, topology, mixed)
    consumer = ConsumerProcess(rabbit, topology, tmp_path).start()
    try:
        wait_until(
            lambda: depth(rabbit, topology.parking_queue) >= 1000 and depth(rabbit, topology.input_queue()) == 0,
            120,
            "every poison input parked",
        )
        wait_until(lambda: depth(rabbit, topology.output_queue("json")) >= len(feed) // 5, 60, "the charges")
        assert consumer.alive()
        assert consumer.terminate() == 0
    finally:
        consumer.kill()
    log = consumer.log()
    assert "connected (connection 2)" not in log and "reconnecting" not in log  # never restarted
    parked = drain(rabbit, topology.parking_queue)
    assert len(parked) == 1000
    assert sorted(m.body for m in parked) == sorted(poison)
    codes = {m.headers[ERROR_HEADER] for m in parked}
    assert codes <= {
        "not_hl7",
        "invalid_fhir",
        "missing_field",
        "missing_encounter_key",
        "bad_timestamp",
        "unknown_status",
        "unsupported_message_type",
        "oversize_input",
    }
    assert all(isinstance(m.headers[DETAIL_HEADER], str) and m.headers[DETAIL_HEADER] for m in parked)
    assert all(m.headers[QUEUE_HEADER] == topology.input_queue() for m in parked)
    result = tally(drain(rabbit, topology.output_queue("json")), charges(feed))
    record_figures(
        f"poison: {len(feed)} good + {len(poison)} poison interleaved; parked {len(parked)} "
        f"({len(codes)} reason codes); charges {result.distinct}, lost {result.lost}; consumer restarts 0"
    )
    assert (result.lost, result.unexpected, result.duplicate_effects) == (0, 0, 0)
    delete_topology(rabbit, topology)


def test_an_unroutable_charge_is_detected_retried_and_delivered_once_the_queue_is_back(
    rabbit: LocalBroker, tmp_path: Path
) -> None:
    feed = hl7_feed(10, tag="U")
    expected = charges(feed)
    topology = fresh_topology("unroutable")
    consumer = ConsumerProcess(rabbit, topology, tmp_path).start()
    try:
        consumer.wait_for_log("connected (connection 1)")
        connection = rabbit.blocking()
        connection.channel().queue_delete(topology.output_queue("json"))  # an operator deletes the output queue
        connection.close()
        publish_inputs(rabbit, topology, feed)
        wait_until(lambda: consumer.log().count("unroutable") >= 2 * len(expected), 60, "returns, retried")
        assert consumer.alive()
        declare(rabbit, topology)  # the queue is back
        wait_until(lambda: depth(rabbit, topology.output_queue("json")) >= len(expected), 60, "the retried charges")
        assert consumer.terminate() == 0
    finally:
        consumer.kill()
    returned = consumer.log().count("unroutable")
    result = tally(drain(rabbit, topology.output_queue("json")), expected)
    record_figures(
        f"unroutable output: {len(expected)} charges returned {returned} times while the queue was missing; "
        f"after it came back: {result.distinct} delivered, lost {result.lost}"
    )
    assert (result.lost, result.unexpected, result.duplicate_effects) == (0, 0, 0)
    delete_topology(rabbit, topology)
