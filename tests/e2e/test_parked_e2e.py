"""``ivpush parked`` on a real broker (issue #14, item 5): re-driving a fixed input charges it once; filters; expiry.

The consumer runs on a thread of the test process (its counters are read directly); the
``ivpush parked`` commands run in-process through click, against the same node.
"""

from __future__ import annotations

import json
import shlex
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from broker import (
    LocalBroker,
    ThreadedConsumer,
    declare,
    delete_topology,
    depth,
    drain,
    expected_charges,
    fresh_topology,
    hl7_feed,
    publish_inputs,
    register_log,
    wait_until,
)
from click.testing import CliRunner, Result

from connector.bus.base import Delivery, Outgoing
from connector.bus.consumer import ConsumerSettings
from connector.bus.parked import Selector
from connector.bus.parking import DETAIL_HEADER, ERROR_HEADER, PARKED_AT_HEADER, QUEUE_HEADER
from connector.bus.rabbitmq_get import RabbitReader
from connector.bus.redrive import browse
from connector.bus.topology import Topology
from connector.cli.main import cli
from connector.forward.parking import ParkingTopology, Refusal, park
from connector.policy.model import Policy

pytestmark = pytest.mark.e2e
GOOD_STAMP, BAD_STAMP = b"20260302084000", b"notatime"


def running_consumer(rabbit: LocalBroker, policy: Policy, topology: Topology, path: Path) -> ThreadedConsumer:
    """A consumer of the topology with the shipped renderers, the wall clock and prefetch and batches of 10."""
    settings = ConsumerSettings(queue=topology.input_queue(), prefetch=10, batch_size=10)
    return ThreadedConsumer(rabbit, policy, topology, path, settings)


class Parked:
    """``ivpush parked …`` in-process, against one test topology; stderr kept for the PHI log scan."""

    def __init__(self, rabbit: LocalBroker, topology: Topology, log: Path) -> None:
        self.env = {"IVPUSH_AMQP_URL": rabbit.url, "IVPUSH_LOGGING__FORMAT": "json"}
        self.prefix, self.log = topology.prefix, log
        register_log(log)

    def __call__(self, *args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(cli, ["parked", *args, "--prefix", self.prefix], env=self.env)
        with self.log.open("a") as log:
            log.write(result.stderr)
        assert result.exit_code == code, result.output
        return result


def test_a_parked_input_exported_fixed_and_requeued_is_charged_exactly_once(
    rabbit: LocalBroker, policy: Policy, tmp_path: Path
) -> None:
    push, bad_push, discharge = hl7_feed(1, pushes=2, tag="R")
    fixed = bad_push
    bad_push = bad_push.replace(GOOD_STAMP, BAD_STAMP)
    assert bad_push != fixed
    expected = expected_charges([push, fixed, discharge])
    topology = fresh_topology("redrive")
    declare(rabbit, topology)
    parked = Parked(rabbit, topology, tmp_path / "parked.log")
    run = running_consumer(rabbit, policy, topology, tmp_path / "state.db")
    stats = run.consumer.stats
    try:
        publish_inputs(rabbit, topology, [push, bad_push])
        run.until(lambda: stats.deliveries == 2 and depth(rabbit, topology.parking_queue) == 1, "the bad push parked")
        listing = parked("list").stdout
        assert "bad_timestamp" in listing and "MSH" not in listing and "MRN" not in listing  # no payload
        export = tmp_path / "fix.ndjson"
        parked("export", "--code", "bad_timestamp", "--output", str(export))
        assert stat.S_IMODE(export.stat().st_mode) == 0o600
        (record,) = [json.loads(line) for line in export.read_text().splitlines()]
        assert record["code"] == "bad_timestamp" and record["body"] == bad_push.decode()
        record["body"] = record["body"].replace(BAD_STAMP.decode(), GOOD_STAMP.decode())  # the analyst's fix
        export.write_text(json.dumps(record) + "\n")
        assert depth(rabbit, topology.parking_queue) == 1  # reading and exporting took nothing

        first = parked("requeue", "--from", str(export)).stderr
        assert "requeued 1 of 1 to the input exchange; 1 parked copies removed" in first
        run.until(lambda: stats.deliveries == 3, "the fixed push applied")
        assert depth(rabbit, topology.parking_queue) == 0 and stats.duplicates == 0
        second = parked("requeue", "--from", str(export)).stderr  # again: a duplicate for the consumer
        assert "requeued 1 of 1 to the input exchange; 0 parked copies removed" in second
        run.until(lambda: stats.deliveries == 4, "the second requeue consumed")
        assert stats.duplicates == 1

        publish_inputs(rabbit, topology, [discharge])
        run.until(lambda: depth(rabbit, topology.output_queue("json")) >= len(expected), "the encounter charged")
        parked("requeue", "--from", str(export))  # after the charge went out: still a duplicate
        run.until(lambda: stats.deliveries == 6, "the third requeue consumed")
        assert stats.duplicates == 2 and depth(rabbit, topology.parking_queue) == 0
    finally:
        run.finish()
    charged = drain(rabbit, topology.output_queue("json"))
    assert {(m.message_id, "json"): m.body for m in charged} == expected and len(charged) == len(expected)
    logged = (tmp_path / "parked.log").read_text()
    assert '"action": "requeue from file"' in logged and "MRN" not in logged and "notatime" not in logged
    delete_topology(rabbit, topology)


def copy(topology: Topology, ident: str, code: str, ago: timedelta, routing_key: str, **headers: str) -> Outgoing:
    at = (datetime.now(UTC) - ago).strftime("%Y-%m-%dT%H:%M:%SZ")
    reason = {ERROR_HEADER: code, DETAIL_HEADER: "MSH-9 absent", QUEUE_HEADER: topology.input_queue()}
    body = f"MSH|^~\\&|{ident}|PID|1||MRN-SECRET-{ident}".encode()
    return Outgoing(
        topology.parking_exchange,
        routing_key,
        body,
        ident,
        "application/hl7-v2",
        reason | {PARKED_AT_HEADER: at} | headers,
    )


def test_filters_select_by_code_time_source_and_id_and_purge_takes_only_what_they_select(
    rabbit: LocalBroker, tmp_path: Path
) -> None:
    topology = fresh_topology("parked-filters")
    declare(rabbit, topology)
    copies = [
        copy(topology, "sha256:a", "not_hl7", timedelta(days=3), "hl7.ras.pump7"),
        copy(topology, "PYXIS|GENHOSP|B1", "bad_timestamp", timedelta(hours=1), "ivpush.input",
             **{"x-ivpush-source": "mllp", "x-ivpush-message-id": "in-b"}),
        copy(topology, "sha256:c", "bad_timestamp", timedelta(days=10), "fhir.ndjson"),
    ]  # fmt: skip
    bus = rabbit.bus()
    assert bus.publish(copies, 30).complete
    bus.close()
    parked = Parked(rabbit, topology, tmp_path / "parked.log")

    def ids(*filters: str) -> list[str]:
        lines = parked("list", "--json", *filters).stdout.splitlines()
        return sorted(json.loads(line)["id"] for line in lines)

    assert ids() == ["PYXIS|GENHOSP|B1", "sha256:a", "sha256:c"]
    assert ids("--code", "bad_timestamp") == ["PYXIS|GENHOSP|B1", "sha256:c"]
    assert ids("--since", "2d") == ["PYXIS|GENHOSP|B1"]
    assert ids("--older-than", "2d") == ["sha256:a", "sha256:c"]
    assert ids("--since", (datetime.now(UTC) - timedelta(days=5)).date().isoformat(), "--until", "2d") == ["sha256:a"]
    assert ids("--source", "mllp") == ["PYXIS|GENHOSP|B1"]
    assert ids("--source", "hl7.ras.*", "--source", "fhir.*") == ["sha256:a", "sha256:c"]
    assert ids("--id", "in-b") == ["PYXIS|GENHOSP|B1"]  # the sender's message id finds it too
    assert ids("--code", "bad_timestamp", "--older-than", "1d") == ["sha256:c"]
    table = parked("list").stdout
    assert "MRN-SECRET" not in table and "bad_timestamp" in table and "not_hl7" in table

    shown = parked("show", "PYXIS|GENHOSP|B1")
    assert "code:         bad_timestamp" in shown.stdout and "MRN-SECRET" not in shown.stdout
    with_payload = parked("show", "PYXIS|GENHOSP|B1", "--payload")
    assert "MRN-SECRET-PYXIS" in with_payload.stdout and "may contain PHI" in with_payload.stderr
    parked("show", "nope", code=1)

    assert "would purge 2 of 3" in parked("purge", "--older-than", "2d", "--dry-run").stderr
    assert depth(rabbit, topology.parking_queue) == 3
    assert "purged 1 of 3" in parked("purge", "--older-than", "7d").stderr
    assert ids() == ["PYXIS|GENHOSP|B1", "sha256:a"]
    assert "MRN-SECRET" not in (tmp_path / "parked.log").read_text()  # logs: counts and codes only
    delete_topology(rabbit, topology)


def test_the_printed_policy_expires_messages_parked_after_it_is_set(rabbit: LocalBroker, tmp_path: Path) -> None:
    topology = fresh_topology("parked-ttl")
    declare(rabbit, topology)
    command = Parked(rabbit, topology, tmp_path / "parked.log")("policy", "--days", "0.00000002").stdout  # 2 ms
    arguments = shlex.split(command)
    assert arguments[:2] == ["rabbitmqctl", "set_policy"]
    name = arguments[-3]
    assert rabbit.ctl(*arguments[1:]).returncode == 0
    reader = RabbitReader(rabbit.settings)
    try:
        wait_until(lambda: policy_of(rabbit, topology.parking_queue) == name, 30, "the policy in effect")
        assert reader.publish([copy(topology, "sha256:t", "not_hl7", timedelta(0), "k")], 30).complete
        wait_until(
            lambda: browse(reader, topology.parking_queue, Selector(), lambda _p: None).scanned == 0, 30, "expiry"
        )
    finally:
        reader.close()
        rabbit.ctl("clear_policy", "--vhost", "/", name)
    delete_topology(rabbit, topology)


def policy_of(rabbit: LocalBroker, queue: str) -> str:
    listed = rabbit.ctl("list_queues", "--vhost", "/", "--no-table-headers", "--quiet", "name", "policy").stdout
    return dict(line.split("\t", 1) for line in listed.splitlines() if "\t" in line).get(queue, "").strip()


def test_refused_dft_messages_are_sent_back_to_the_dft_queue(rabbit: LocalBroker, tmp_path: Path) -> None:
    topology = fresh_topology("parked-dft", formats=("dft",))
    declare(rabbit, topology)
    dft_queue = topology.output_queue("dft")
    parking = f"{dft_queue}.parking"
    bus = rabbit.bus()
    bus.declare(ParkingTopology(prefix=topology.prefix, parking_name=parking))
    refused = Delivery(1, b"MSH|^~\\&|IVPUSH|F|||20260302||DFT^P03|msg-1|P|2.5.1", None, {}, "msg-1", "charge.dft")
    park(bus, refused, Refusal("receiver_ae", "the receiver answered AE", "AE", "204"), parking, dft_queue)
    bus.close()
    parked = Parked(rabbit, topology, tmp_path / "parked.log")
    assert "receiver_ae" in parked("list", "--queue", "out.dft").stdout
    result = parked("requeue", "--queue", "out.dft", "--code", "receiver_ae")
    assert f"requeued 1 of 1 to the queue {dft_queue}; 1 parked copies removed" in result.stderr
    (sent,) = drain(rabbit, dft_queue)
    assert (sent.body, sent.message_id) == (refused.body, "msg-1")
    assert not {ERROR_HEADER, DETAIL_HEADER, "x-ivpush-ack-code", "x-ivpush-err-code"} & set(sent.headers)
    assert depth(rabbit, parking) == 0
    connection = rabbit.blocking()
    connection.channel().queue_delete(parking)
    connection.channel().exchange_delete(parking)
    connection.close()
    delete_topology(rabbit, topology)
