"""Hostile input on the bus without a broker (issue #12): one encounter's failure stays its own,
parked copies have deterministic ids, start-up errors end the consumer instead of retrying.

The renderer that fails is registered for the test and raises for one encounter key: the
adapters now refuse the identifiers that made the ChargeItem renderer raise, and what is tested
here is the consumer's handling of *any* failure to code or render one encounter.
"""

import logging
from pathlib import Path

import pytest
from broker import BrokenFor, expected_charges, hl7_feed, poison_samples
from click.testing import CliRunner

from connector.bootstrap import local_zone, renderers
from connector.bus.backoff import Backoff
from connector.bus.base import Bus, Outgoing, PublishReport
from connector.bus.config import AmqpSettings, check_url, redact
from connector.bus.consumer import Consumer, ConsumerSettings, Stop
from connector.bus.errors import AccessRefused, BusUnavailable, ConfigError
from connector.bus.faults import Faults
from connector.bus.inputs import parse_delivery
from connector.bus.parking import DETAIL_HEADER, ERROR_HEADER, MESSAGE_ID_HEADER
from connector.bus.rabbitmq_connection import parameters
from connector.bus.relay import Relay
from connector.bus.stub import StubBroker, StubMessage
from connector.bus.topology import Topology
from connector.cli.consume import consume as consume_command
from connector.policy.model import Policy
from connector.service import Service, ServiceSettings
from connector.store.base import OutboxRow
from connector.store.memory import MemoryStore

BAD = "GENHOSP|V00002"  # hl7_feed's third encounter


class Harness:
    """A consumer over a stub broker and a memory store; stops when the input queue is empty."""

    def __init__(self, policy: Policy, renderer: BrokenFor, **settings: object) -> None:
        self.broker = StubBroker()
        self.topology = Topology(prefix="iso", formats=("json",))
        self.store = MemoryStore()
        self.now = 1000.0
        self.service = Service(self.store, policy, ServiceSettings({"json": renderer}), clock=lambda: self.now)
        self.stop = Stop()
        self.broker.idle_hook = self.stop.request
        self.broker.connect().declare(self.topology)
        self.broker.apply_policy(self.topology)
        self.policy = policy
        self.consumer = Consumer(
            self.broker.connect,
            self.service,
            lambda delivery: parse_delivery(delivery, policy, local_zone(None)),
            self.topology,
            ConsumerSettings(queue=self.topology.input_queue(), prefetch=16, batch_size=8, **settings),  # type: ignore[arg-type]
            self.stop,
        )
        self.consumer._backoff = Backoff(0.0, 0.0)

    def publish(self, bodies: list[bytes], first: int = 0) -> None:
        for index, body in enumerate(bodies, start=first):
            self.broker.route(self.topology.input_exchange, StubMessage(body, "feed", message_id=f"in-{index}"))

    def run(self) -> None:
        self.stop.requested = False
        self.consumer.run()

    def charged(self) -> set[str | None]:
        return {m.message_id for m in self.broker.messages(self.topology.output_queue("json"))}

    def parked(self) -> list[StubMessage]:
        return self.broker.messages(self.topology.parking_queue)


def of(feed: list[bytes], *visits: str) -> list[bytes]:
    """The inputs of these encounters (visit numbers ``V0000n``)."""
    return [body for body in feed if any(visit.encode() in body for visit in visits)]


def test_an_input_whose_encounter_cannot_be_rendered_is_parked_and_the_rest_is_charged(policy: Policy) -> None:
    feed = hl7_feed(4)
    harness = Harness(policy, BrokenFor(BAD))
    harness.publish(feed)
    harness.run()
    good = of(feed, "V00000", "V00001", "V00003")
    assert harness.charged() == {mid for mid, _ in expected_charges(good)}
    parked = harness.parked()
    assert parked and all(b"V00002" in m.body for m in parked)  # only the bad encounter's inputs
    assert any(b"ADT^A03" in m.body for m in parked)  # the discharge that made it render
    for message in parked:
        assert (message.headers[ERROR_HEADER], message.headers[DETAIL_HEADER]) == (
            "render_failed",
            "json renderer: ValueError",  # the step and the class: never the exception's text
        )
    (discharge,) = [m for m in parked if b"ADT^A03" in m.body]
    assert discharge.message_id == "ADT|GENHOSP|T2-A03"  # its dedup key
    assert str(discharge.headers[MESSAGE_ID_HEADER]).startswith("in-")  # the sender's id, kept
    assert harness.broker.connects == 2 and harness.consumer.metrics.value(
        "ivpush_rejects_total", code="render_failed"
    ) == len(parked)


def test_the_idle_sweep_charges_every_other_encounter_and_marks_the_one_it_cannot_render(
    policy: Policy, caplog: pytest.LogCaptureFixture
) -> None:
    feed = [body for body in hl7_feed(4) if b"ADT^A03" not in body]  # closed by idleness only
    renderer = BrokenFor(BAD)
    harness = Harness(policy, renderer, idle_seconds=60.0, sweep_every=0.0)
    harness.publish(feed)
    harness.run()
    assert harness.charged() == set()
    harness.now += 3600
    with caplog.at_level(logging.ERROR, logger="ivpush.bus"):
        harness.run()
    good = of(hl7_feed(4), "V00000", "V00001", "V00003")
    assert harness.charged() == {mid for mid, _ in expected_charges(good)}
    assert harness.consumer.metrics.value("ivpush_encounters_failed_total", code="render_failed") == 1
    assert f"encounter {BAD} not charged: render_failed" in caplog.text
    with harness.store.transaction() as tx:
        marked = tx.get(BAD)
    assert marked is not None and marked.failed == "render_failed" and not marked.encounter.closed
    attempts = renderer.attempts
    harness.now += 3600
    harness.run()  # later sweeps skip it until new input arrives
    assert renderer.attempts == attempts
    assert harness.parked() == []  # its inputs were acked long ago: marked, not parked


def test_a_parked_copy_has_the_same_id_each_time_the_same_input_is_parked(policy: Policy) -> None:
    poison = poison_samples()[:5]
    harness = Harness(policy, BrokenFor("none"))
    harness.publish(poison)
    harness.run()
    harness.publish(poison, first=100)  # the same inputs again (a redelivery after a crash)
    harness.run()
    parked = harness.parked()
    assert len(parked) == 10
    first, again = parked[:5], parked[5:]
    assert [m.message_id for m in first] == [m.message_id for m in again]
    assert all(str(m.message_id).startswith("sha256:") for m in first)  # unreadable: a digest of the body
    assert len({m.message_id for m in first}) == len({m.body for m in first})
    assert [m.headers[MESSAGE_ID_HEADER] for m in again] == [f"in-{n}" for n in range(100, 105)]


class Recorder:
    """A bus that confirms everything and calls ``on_sent`` as a broker bus does."""

    def __init__(self) -> None:
        self.hooks: list[object] = []

    def publish(self, messages: list[Outgoing], timeout: float, window: int = 500, on_sent: object = None) -> object:
        self.hooks.append(on_sent)
        for message in messages:
            assert callable(on_sent)
            on_sent(message)
        return PublishReport(confirmed=[m.ident for m in messages])


def test_the_relay_publishes_the_same_way_whether_a_fault_is_armed_or_not() -> None:
    hooks = []
    for faults in (Faults(), Faults("after_publish:1000")):
        store = MemoryStore()
        with store.transaction() as tx:
            for n in range(3):
                tx.enqueue(OutboxRow(f"m{n}", "E", "json", b"x"))
        bus = Recorder()
        assert Relay(store, Topology(prefix="t"), faults).drain(bus) == 3  # type: ignore[arg-type]
        hooks.append(bus.hooks)
    assert [len(h) for h in hooks] == [1, 1] and all(h[0] is not None for h in hooks)  # no branch on faults


def refusing(error: Exception, calls: list[int]) -> object:
    def connect() -> Bus:
        calls.append(1)
        raise error

    return connect


def consumer(connect: object, **settings: object) -> Consumer:
    built = Consumer(
        connect,  # type: ignore[arg-type]
        Service(MemoryStore(), None, ServiceSettings(renderers(("json",))), clock=lambda: 0.0),  # type: ignore[arg-type]
        lambda _d: [],
        Topology(prefix="t"),
        ConsumerSettings(queue="q", **settings),  # type: ignore[arg-type]
    )
    built._backoff = Backoff(0.0, 0.0)
    return built


def test_the_broker_refusing_the_credentials_ends_the_run_after_the_configured_attempts() -> None:
    calls: list[int] = []
    refused = AccessRefused("cannot connect: ProbableAuthenticationError: (403) 'ACCESS_REFUSED'")
    with pytest.raises(AccessRefused, match="refused access 3 times in a row"):
        consumer(refusing(refused, calls), auth_attempts=3).run()
    assert len(calls) == 3


def test_a_refusal_count_restarts_after_a_successful_connection() -> None:
    attempts: list[str] = []
    script = ["refuse", "refuse", "down", "ok", "refuse", "refuse", "refuse"]
    broker = StubBroker()

    def connect() -> Bus:
        step = script[len(attempts)]
        attempts.append(step)
        if step == "refuse":
            raise AccessRefused("cannot connect: (403) 'ACCESS_REFUSED'")
        if step == "down":
            raise BusUnavailable("connection refused")
        bus = broker.connect()
        bus.declare(Topology(prefix="t"))
        broker.fail()  # the connection breaks at once: reconnect
        broker.restore()
        return bus

    with pytest.raises(AccessRefused, match="3 times in a row"):
        consumer(connect, auth_attempts=3).run()
    assert attempts == script  # 2 refusals, an outage (not a refusal), a connection, then 3 refusals


def test_a_configuration_error_at_connect_is_not_retried() -> None:
    calls: list[int] = []
    with pytest.raises(ConfigError):
        consumer(refusing(ConfigError("the broker URL amqp://u:***@h/ is malformed"), calls)).run()
    assert calls == [1]


@pytest.mark.parametrize(
    "url",
    [
        "amqp://ivpush:s3cr/et@rabbit:5672/billing",  # an unencoded / cuts the password: the port is 's3cr'
        "amqp://ivpush:s3cret@rabbit:56x2/billing",
        "amqp://ivpush:s3cret@rabbit:99999/billing",
    ],
)
def test_a_malformed_port_is_a_configuration_error_with_the_password_redacted(
    url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="is not a number from 1 to 65535") as raised:
        check_url(url)
    assert "s3cr" not in str(raised.value) and "ivpush:***@" in str(raised.value)
    monkeypatch.setenv("IVPUSH_AMQP_URL", url)
    result = CliRunner().invoke(consume_command, ["--state", str(tmp_path / "s.db"), "--metrics-port", "0"])
    assert result.exit_code == 2
    assert "s3cr" not in result.output and "Traceback" not in result.output
    assert "amqp.url: the port of amqp://ivpush:***@" in result.output


def test_a_url_pika_cannot_read_is_a_configuration_error_without_its_text() -> None:
    settings = AmqpSettings(url="amqp://ivpush:s3cret@rabbit:5672/%2F?heartbeat=s3cret")
    with pytest.raises(ConfigError, match=r"amqp://ivpush:\*\*\*@rabbit:5672/%2F\?heartbeat=s3cret is malformed"):
        parameters(settings)  # pika's own message ("Invalid heartbeat value 's3cret'") is not repeated


def test_redaction_masks_the_password_even_in_a_url_that_does_not_parse() -> None:
    assert redact("amqp://u:pa/ss@host:5672/v") == "amqp://u:***@host:5672/v"
    assert redact("amqp://u:p@ss@host/v") == "amqp://u:***@host/v"
    assert redact("amqp://u@host/v") == "amqp://u@host/v"
    assert redact("amqp://host/v") == "amqp://host/v"


def test_a_delivery_of_several_records_is_parked_whole(policy: Policy) -> None:
    """None of its records is committed, and its parked copy's id is a digest of the body."""
    feed = hl7_feed(3)
    bad = [body for body in feed if b"V00002" in body]
    batch = b"\r\n".join(bad)  # one delivery: the bad encounter's RAS messages and discharge
    harness = Harness(policy, BrokenFor(BAD))
    harness.publish([*[body for body in feed if b"V00002" not in body], batch])
    harness.run()
    (parked,) = harness.parked()
    assert parked.body == batch and parked.message_id is not None and parked.message_id.startswith("sha256:")
    with harness.store.transaction() as tx:
        assert tx.get(BAD) is None
