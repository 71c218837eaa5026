"""The bus layer without a broker: topology, input formats, settings, and the consumer loop on the stub bus."""

import json
import os
import signal
import sqlite3
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from broker import expected_charges, hl7_feed, poison_samples
from click.testing import CliRunner

from connector.bootstrap import local_zone, renderers
from connector.bus.backoff import Backoff
from connector.bus.base import Delivery, Outgoing
from connector.bus.config import load_settings, redact
from connector.bus.consumer import Consumer, ConsumerSettings, Stop
from connector.bus.errors import BusUnavailable, ConfigError
from connector.bus.faults import Faults
from connector.bus.inputs import declared_format, parse_delivery, records
from connector.bus.parking import DETAIL_HEADER, ERROR_HEADER
from connector.bus.stub import StubBroker, StubMessage
from connector.bus.topology import Topology, definitions_json, policy_args
from connector.cli.consume import consume as consume_command
from connector.cli.topology import topology as topology_command
from connector.model import ParsedRecord
from connector.policy.model import Policy
from connector.service import Service, ServiceSettings
from connector.store.memory import MemoryStore

REPO = Path(__file__).resolve().parents[2]
FEEDS = REPO / "examples" / "feeds"


# --- topology -----------------------------------------------------------------------------------


def test_the_committed_definitions_file_is_what_topology_print_writes() -> None:
    result = CliRunner().invoke(topology_command, ["--print"])
    assert result.exit_code == 0, result.output
    assert result.output == (REPO / "deploy" / "rabbitmq" / "definitions.json").read_text()
    assert result.output == definitions_json(Topology())


def test_the_input_policy_limits_deliveries_and_dead_letters_at_least_once_on_310() -> None:
    topology = Topology()
    document = json.loads(definitions_json(topology))
    (policy,) = document["policies"]
    assert policy["apply-to"] == "queues"
    assert policy["definition"] == {
        "delivery-limit": 20,
        "dead-letter-exchange": "ivpush.dlx",
        "dead-letter-strategy": "at-least-once",
        "overflow": "reject-publish",
    }
    assert all(q["arguments"]["x-queue-type"] == "quorum" for q in document["queues"])
    assert policy_args(topology)[:5] == ["set_policy", "--vhost", "/", "--apply-to", "queues"]


def test_each_format_has_its_routing_key_and_queue() -> None:
    bindings = {(b.exchange, b.routing_key, b.queue) for b in Topology().bindings()}
    for fmt in ("json", "dft", "chargeitem"):
        assert ("ivpush.out", f"charge.{fmt}", f"ivpush.out.{fmt}") in bindings
    assert ("ivpush.dlx", "", "ivpush.parking") in bindings


def test_sharded_topology_hashes_the_encounter_header_over_single_active_consumer_queues() -> None:
    topology = Topology(shards=3)
    assert topology.exchanges()[0].type == "x-consistent-hash"
    assert topology.input_queues() == ["ivpush.in.0", "ivpush.in.1", "ivpush.in.2"]
    assert all(q.arguments.get("x-single-active-consumer") for q in topology.queues()[:3])


# --- input formats ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "headers", "expected"),
    [
        ("application/hl7-v2", {}, "hl7"),
        ("x-application/hl7-v2+er7; charset=utf-8", {}, "hl7"),
        ("application/fhir+json", {}, "fhir"),
        ("application/octet-stream", {"x-ivpush-format": "fhir"}, "fhir"),
        (None, {"x-ivpush-format": b"hl7"}, "hl7"),
        ("text/plain", {}, None),
        (None, {}, None),
    ],
)
def test_the_format_comes_from_the_content_type_or_header(
    content_type: str | None, headers: dict[str, object], expected: str | None
) -> None:
    assert declared_format(content_type, headers) == expected


def test_without_a_declared_format_the_first_bytes_decide() -> None:
    hl7 = (FEEDS / "ed-visit-2026-03-02.hl7").read_bytes()
    fhir = (FEEDS / "observation-stay-fhir.json").read_bytes()
    assert {r.format for r in records(Delivery(1, hl7))} == {"hl7"}
    assert len(records(Delivery(1, hl7))) > 1  # a file of several messages is several records
    assert [r.format for r in records(Delivery(2, fhir))] == ["fhir"]
    framed = b"\x0b" + hl7.split(b"MSH")[1].join([b"MSH", b""]) + b"\x1c\r"
    assert [r.format for r in records(Delivery(3, framed))] == ["hl7"]


def test_a_declared_format_wins_over_the_bytes(policy: Policy) -> None:
    fhir = (FEEDS / "observation-stay-fhir.json").read_bytes()
    with pytest.raises(Exception) as caught:
        parse_delivery(Delivery(1, fhir, content_type="application/hl7-v2"), policy, local_zone(None))
    assert getattr(caught.value, "code", None) == "not_hl7"


def test_an_empty_body_is_poison(policy: Policy) -> None:
    with pytest.raises(Exception) as caught:
        parse_delivery(Delivery(1, b""), policy, local_zone(None))
    assert getattr(caught.value, "code", None) == "not_hl7"


# --- settings -----------------------------------------------------------------------------------


def test_the_url_comes_from_the_environment_before_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "ivpush.toml"
    config.write_text('[amqp]\nurl = "amqp://file:pw@filehost/%2F"\nca_file = "/etc/ca.pem"\n')
    assert load_settings(config, {}).url == "amqp://file:pw@filehost/%2F"
    from_env = load_settings(config, {"IVPUSH_AMQP_URL": "amqps://env:secret@envhost:5671/v"})
    assert from_env.url.startswith("amqps://env") and from_env.ca_file == "/etc/ca.pem" and from_env.tls
    secret = tmp_path / "url"
    secret.write_text("amqp://s:s@secret-host/\n")
    assert load_settings(None, {"IVPUSH_AMQP_URL_FILE": str(secret)}).host == "secret-host"
    assert load_settings(None, {"IVPUSH_CONFIG": str(config)}).host == "filehost"


def test_missing_or_foreign_urls_are_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="IVPUSH_AMQP_URL"):
        load_settings(None, {})
    with pytest.raises(ConfigError, match="amqp or amqps"):
        load_settings(None, {"IVPUSH_AMQP_URL": "http://x"})


def test_passwords_never_reach_logs() -> None:
    assert redact("amqps://ivpush:s3cret@rabbit:5671/billing") == "amqps://ivpush:***@rabbit:5671/billing"
    assert redact("amqp://rabbit/") == "amqp://rabbit/"


def test_tls_verifies_the_chain_and_the_host_name() -> None:
    context = load_settings(None, {"IVPUSH_AMQP_URL": "amqps://u:p@rabbit.example.org/"}).ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    with pytest.raises(ConfigError):
        load_settings(None, {"IVPUSH_AMQP_URL": "amqps://h/", "IVPUSH_AMQP_CA_FILE": "/nonexistent.pem"}).ssl_context()


def test_fault_specs_are_checked_and_backoff_is_capped() -> None:
    assert Faults("after_commit:3").active and not Faults(None).active
    with pytest.raises(ValueError, match="IVPUSH_FAULT"):
        Faults("after_lunch:1")
    backoff = Backoff(base=0.5, cap=4.0)
    delays = [backoff.next_delay() for _ in range(10)]
    assert 0.25 <= delays[0] <= 0.5 and all(d <= 4.0 for d in delays) and delays[-1] >= 2.0
    backoff.reset()
    assert backoff.next_delay() <= 0.5


# --- the consumer loop on the stub bus ----------------------------------------------------------


class Harness:
    """A consumer over a stub broker and a memory store; stops when the input queue is empty."""

    def __init__(self, policy: Policy, formats: tuple[str, ...] = ("json",), **settings: object) -> None:
        self.broker = StubBroker()
        self.topology = Topology(prefix="stub", formats=formats)
        self.store = MemoryStore()
        self.service = Service(self.store, policy, ServiceSettings(renderers(formats)), clock=lambda: 1000.0)
        self.stop = Stop()
        self.broker.idle_hook = self.stop.request
        self.broker.connect().declare(self.topology)
        self.broker.apply_policy(self.topology)
        self.consumer = Consumer(
            self.broker.connect,
            self.service,
            self.parse,
            self.topology,
            ConsumerSettings(queue=self.topology.input_queue(), prefetch=16, batch_size=8, **settings),  # type: ignore[arg-type]
            self.stop,
        )
        self.consumer._backoff = Backoff(0.0, 0.0)
        self.policy = policy

    def parse(self, delivery: Delivery) -> list[ParsedRecord]:
        return parse_delivery(delivery, self.policy, local_zone(None))

    def publish(self, bodies: list[bytes]) -> None:
        for index, body in enumerate(bodies):
            self.broker.route(self.topology.input_exchange, StubMessage(body, "feed", message_id=f"in-{index}"))

    def output(self, fmt: str = "json") -> list[StubMessage]:
        return self.broker.messages(self.topology.output_queue(fmt))

    def run(self) -> None:
        self.stop.requested = False
        self.consumer.run()


def ids(messages: list[StubMessage]) -> list[str | None]:
    return [m.message_id for m in messages]


def test_good_inputs_are_charged_once_with_ids_headers_and_bytes_of_a_clean_run(policy: Policy) -> None:
    feed = hl7_feed(6)
    harness = Harness(policy, formats=("json", "dft"))
    harness.publish(feed)
    harness.run()
    expected = expected_charges(feed, ("json", "dft"))
    for fmt in ("json", "dft"):
        out = harness.output(fmt)
        assert {(m.message_id, fmt): m.body for m in out} == {k: v for k, v in expected.items() if k[1] == fmt}
        assert all(m.routing_key == f"charge.{fmt}" and m.headers["format"] == fmt for m in out)
        assert all(m.headers["encounter_key"] == "GENHOSP|" + m.headers["encounter_key"].split("|")[1] for m in out)
    assert harness.broker.messages(harness.topology.input_queue()) == []
    assert harness.store.pending() == []


def test_poison_is_parked_with_reason_headers_and_the_good_inputs_still_charged(policy: Policy) -> None:
    feed, poison = hl7_feed(4), poison_samples()
    mixed = [item for pair in zip(feed, poison, strict=False) for item in pair] + poison[len(feed) :]
    harness = Harness(policy)
    harness.publish(mixed)
    harness.run()
    parked = harness.broker.messages(harness.topology.parking_queue)
    assert len(parked) == len(poison)
    assert sorted(m.body for m in parked) == sorted(poison)
    assert all(m.headers[ERROR_HEADER] and DETAIL_HEADER in m.headers for m in parked)
    assert {(m.message_id, "json") for m in harness.output()} == set(expected_charges(feed))
    assert harness.broker.connects == 2  # the harness's declare + one consumer connection: never restarted


def test_an_unexpected_error_on_one_input_parks_only_that_input(policy: Policy) -> None:
    feed = hl7_feed(3)
    harness = Harness(policy)
    original = harness.service.handle_inputs

    def handle(inputs: list[list[ParsedRecord]]) -> object:
        if any(r.dedup_key.endswith("T1-2") for records in inputs for r in records):
            raise KeyError("a bug")
        return original(inputs)

    harness.service.handle_inputs = handle  # type: ignore[method-assign,assignment]
    harness.publish(feed)
    harness.run()
    (parked,) = harness.broker.messages(harness.topology.parking_queue)
    assert parked.headers[ERROR_HEADER] == "processing_error" and parked.headers[DETAIL_HEADER] == "KeyError"
    assert len(harness.output()) == 3  # encounter 1 lost one push, its charge differs; nobody else's


def test_a_broker_outage_mid_stream_loses_nothing(policy: Policy) -> None:
    feed = hl7_feed(8)
    harness = Harness(policy)
    harness.publish(feed)
    batches = 0
    original = harness.consumer.process

    def process(bus: object, deliveries: list[Delivery]) -> None:
        nonlocal batches
        batches += 1
        if batches == 3:
            harness.broker.fail()  # the broker goes away while a batch is in hand
            harness.broker.restore()
        original(bus, deliveries)  # type: ignore[arg-type]

    harness.consumer.process = process  # type: ignore[method-assign]
    harness.run()
    assert harness.broker.connects >= 3
    out = harness.output()
    assert set(ids(out)) == {k[0] for k in expected_charges(feed)}
    assert len(out) == len(set(ids(out)))


def test_unroutable_charges_stay_in_the_outbox_and_are_retried_until_routable(policy: Policy) -> None:
    feed = hl7_feed(3)
    harness = Harness(policy, retry_base=0.0, retry_cap=0.0)
    harness.broker.delete_queue(harness.topology.output_queue("json"))
    harness.publish(feed)
    harness.consumer.declare = False
    harness.run()
    assert harness.consumer.relay.stats.returned >= 3
    assert len(harness.store.pending()) == 3  # returned: not marked sent
    harness.broker.connect().declare(harness.topology)  # the queue is back
    harness.run()
    assert {m.message_id for m in harness.output()} == {k[0] for k in expected_charges(feed)}
    assert harness.store.pending() == []


def test_a_nacked_charge_is_retried(policy: Policy) -> None:
    feed = hl7_feed(2)
    harness = Harness(policy, retry_base=0.0, retry_cap=0.0)
    harness.broker.nack_next = 1
    harness.publish(feed)
    harness.run()
    harness.run()
    assert len(harness.output()) == 2 and harness.consumer.relay.stats.nacked == 1


def test_the_idle_sweep_closes_open_encounters_and_relays_their_charges(policy: Policy) -> None:
    feed = [body for body in hl7_feed(2) if b"ADT^A03" not in body]
    harness = Harness(policy, idle_seconds=60.0, sweep_every=0.0)
    harness.publish(feed)
    harness.run()
    assert harness.output() == []  # no discharge and not idle long enough yet
    harness.service.clock = lambda: 1000.0 + 3600
    harness.run()
    assert {m.message_id for m in harness.output()} == {k[0] for k in expected_charges(hl7_feed(2))}
    harness.run()
    assert len(harness.output()) == 2  # a second sweep (or another consumer's) emits nothing new


def test_a_locked_store_is_transient_reconnects_and_parks_nothing(policy: Policy) -> None:
    feed = hl7_feed(3)
    harness = Harness(policy)
    original = harness.service.handle_inputs
    failures = [sqlite3.OperationalError("database is locked")]

    def handle(inputs: list[list[ParsedRecord]]) -> object:
        if failures:
            raise failures.pop()
        return original(inputs)

    harness.service.handle_inputs = handle  # type: ignore[method-assign,assignment]
    harness.publish(feed)
    harness.run()
    assert harness.broker.connects == 3  # declare + first connection + the reconnect
    assert harness.broker.messages(harness.topology.parking_queue) == []
    assert {m.message_id for m in harness.output()} == {k[0] for k in expected_charges(feed)}


def test_consume_without_a_broker_url_says_so_and_exits_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("IVPUSH_AMQP_URL", "IVPUSH_AMQP_URL_FILE", "IVPUSH_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(consume_command, ["--state", str(tmp_path / "s.db")])
    assert result.exit_code == 2
    assert "no broker URL" in result.output
    assert "--url" not in CliRunner().invoke(consume_command, ["--help"]).output  # never on the command line


def test_graceful_stop_finishes_the_batch_in_hand_and_drains_the_outbox(policy: Policy) -> None:
    feed = hl7_feed(4)
    harness = Harness(policy)
    harness.publish(feed)
    original: Callable[..., None] = harness.consumer.process

    def process(bus: object, deliveries: list[Delivery]) -> None:
        harness.stop.request()  # SIGTERM arrives during the first batch
        original(bus, deliveries)

    harness.consumer.process = process  # type: ignore[method-assign]
    harness.consumer.run()
    unacked_back = harness.broker.messages(harness.topology.input_queue())
    assert len(unacked_back) == len(feed) - 16  # first batch + prefetched deliveries finished, the rest untouched
    assert harness.store.pending() == []


def test_a_publish_on_a_lost_connection_reports_every_message_unknown() -> None:
    broker = StubBroker()
    bus = broker.connect()
    bus.declare(Topology(prefix="x"))
    broker.fail()
    with pytest.raises(BusUnavailable):
        bus.publish([Outgoing("x.out", "charge.json", b"{}", "m1")], 1.0)


def test_the_first_signal_asks_to_stop_and_a_second_exits_at_once() -> None:
    pid = os.fork()
    if pid == 0:  # the child: a consumer process in miniature
        stop = Stop()
        stop.install()
        os.kill(os.getpid(), signal.SIGTERM)
        if not stop.requested:
            os._exit(1)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 128 + signal.SIGTERM
