"""Metrics recorded by the consumer and the relay (stub broker, memory store: no I/O), and the health logic."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from broker import SAMPLES, hl7_feed
from prometheus_client import REGISTRY

from connector.bootstrap import local_zone, renderers
from connector.bus.backoff import Backoff
from connector.bus.base import Delivery, Outgoing, PublishReport
from connector.bus.consumer import Consumer, ConsumerSettings, Stop, TransientError, _own_text
from connector.bus.errors import BusUnavailable
from connector.bus.inputs import input_kind, parse_delivery
from connector.bus.relay import Relay
from connector.bus.stub import StubBroker, StubMessage
from connector.bus.topology import Topology
from connector.model import ParsedRecord
from connector.observability.metrics import Metrics
from connector.observability.server import HealthLimits, liveness, readiness
from connector.policy.model import Policy
from connector.service import Service, ServiceSettings
from connector.store.base import OutboxRow
from connector.store.memory import MemoryStore


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Run:
    """A consumer over a stub broker and a memory store that stops when the input queue is empty."""

    def __init__(self, policy: Policy, **settings: object) -> None:
        self.broker = StubBroker()
        self.topology = Topology(prefix="m", formats=("json",))
        self.store = MemoryStore()
        self.metrics = Metrics()
        self.policy = policy
        stop = Stop()
        self.broker.idle_hook = stop.request
        self.broker.connect().declare(self.topology)
        service = Service(self.store, policy, ServiceSettings(renderers(("json",))), clock=lambda: 1000.0)
        self.consumer = Consumer(
            self.broker.connect,
            service,
            self.parse,
            self.topology,
            ConsumerSettings(queue=self.topology.input_queue(), prefetch=16, batch_size=8, **settings),  # type: ignore[arg-type]
            stop,
            metrics=self.metrics,
        )
        self.consumer._backoff = Backoff(0.0, 0.0)

    def parse(self, delivery: Delivery) -> list[ParsedRecord]:
        return parse_delivery(delivery, self.policy, local_zone(None))

    def publish(self, bodies: list[bytes]) -> None:
        for index, body in enumerate(bodies):
            self.broker.route(self.topology.input_exchange, StubMessage(body, "feed", message_id=f"in-{index}"))

    def run(self) -> None:
        self.consumer.stop.requested = False
        self.consumer.run()


def test_inputs_by_type_and_outcome_rejects_lines_batches_and_confirms_are_counted(policy: Policy) -> None:
    feed = hl7_feed(3)  # 3 encounters x (4 pushes + a discharge)
    fhir = (SAMPLES / "fhir" / "paired" / "paired-01.json").read_bytes()
    run = Run(policy)
    run.publish([*feed, feed[0], feed[1], fhir, b"not a message", b'{"resourceType": "Patient", "id": "p"}'])
    run.run()
    m = run.metrics
    assert m.value("ivpush_inputs_total", type="hl7v2", outcome="accepted") == 15
    assert m.value("ivpush_inputs_total", type="hl7v2", outcome="duplicate") == 2
    assert m.value("ivpush_inputs_total", type="fhir", outcome="accepted") >= 1
    assert m.value("ivpush_inputs_total", type="fhir", outcome="parked") == 1
    assert m.value("ivpush_inputs_total", type="unknown", outcome="parked") == 1
    assert m.value("ivpush_rejects_total", code="not_hl7") == 1
    assert sum(m.value("ivpush_rejects_total", code=c) for c in ("invalid_fhir", "unsupported_message_type")) == 1
    assert m.value("ivpush_deliveries_total") == 20
    assert m.value("ivpush_batches_total") == m.value("ivpush_batch_processing_seconds_count") >= 3
    messages = len(run.broker.messages(run.topology.output_queue("json")))
    assert m.value("ivpush_charge_messages_total") == messages >= 3
    assert m.value("ivpush_outbox_published_total", format="json") == messages
    lines = {
        (s.labels["code"], s.labels["action"]): s.value
        for metric in m.registry.collect()
        if metric.name == "ivpush_charge_lines"
        for s in metric.samples
        if s.name == "ivpush_charge_lines_total"
    }
    assert lines and all(action == "charge" for _, action in lines)
    assert lines[("96376", "charge")] >= 3  # every hl7_feed encounter repeats a push of the same drug
    assert m.value("ivpush_outbox_pending_messages") == 0 and m.value("ivpush_outbox_oldest_pending_age_seconds") == 0
    assert m.store_ok is True and m.last_heartbeat is not None
    assert not m.broker_connected and m.value("ivpush_broker_connected") == 0  # stopped


def test_the_open_encounters_gauge_follows_the_store_at_each_sweep(policy: Policy) -> None:
    run = Run(policy, sweep_every=0.0)
    run.publish([body for body in hl7_feed(4) if b"ADT^A03" not in body])  # nobody discharged
    run.run()
    assert run.metrics.value("ivpush_encounters_open") == 4
    run.publish([body for body in hl7_feed(4) if b"ADT^A03" in body][:3])
    run.run()
    assert run.metrics.value("ivpush_encounters_open") == 1


def test_a_lost_connection_counts_a_reconnect(policy: Policy) -> None:
    run = Run(policy)
    run.publish(hl7_feed(2))
    original = run.consumer.process
    calls: list[int] = []

    def process(bus: object, deliveries: list[Delivery]) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise BusUnavailable("connection lost")
        original(bus, deliveries)  # type: ignore[arg-type]

    run.consumer.process = process  # type: ignore[method-assign]
    run.run()
    assert run.metrics.value("ivpush_reconnects_total") == 1
    assert run.metrics.value("ivpush_inputs_total", type="hl7v2", outcome="accepted") == 10


class ReturningBus:
    """Returns every message until told to confirm; reports fixed confirm latencies."""

    def __init__(self) -> None:
        self.confirm = False
        self.published: list[Outgoing] = []

    def publish(
        self, messages: list[Outgoing], timeout: float, window: int = 500, on_sent: object = None
    ) -> PublishReport:
        self.published.extend(messages)
        idents = [m.ident for m in messages]
        if self.confirm:
            return PublishReport(confirmed=idents, confirm_seconds=[0.004] * len(idents))
        return PublishReport(returned=idents)


def test_the_outbox_depth_and_the_age_of_its_oldest_row_come_from_what_the_relay_saw() -> None:
    clock = Clock()
    metrics = Metrics(clock=clock)
    store = MemoryStore()
    with store.transaction() as tx:
        for n in range(3):
            tx.enqueue(OutboxRow(f"msg-{n}", "GENHOSP|V1", "json", b"{}"))
    relay = Relay(
        store, Topology(prefix="m", formats=("json",)), retry_base=10, retry_cap=10, clock=clock, metrics=metrics
    )
    bus = ReturningBus()
    relay.drain(bus)  # type: ignore[arg-type]
    assert metrics.value("ivpush_outbox_pending_messages") == 3
    assert metrics.value("ivpush_outbox_publish_failures_total", reason="returned") == 3
    clock.now += 42.5  # the age is read at scrape time: it grows while nothing drains
    assert metrics.value("ivpush_outbox_oldest_pending_age_seconds") == 42.5
    with store.transaction() as tx:
        tx.enqueue(OutboxRow("msg-new", "GENHOSP|V2", "json", b"{}"))
    clock.now += 10
    bus.confirm = True
    relay.drain(bus)  # type: ignore[arg-type]
    assert metrics.value("ivpush_outbox_published_total", format="json") == 4
    assert metrics.value("ivpush_outbox_pending_messages") == 0
    assert metrics.value("ivpush_outbox_oldest_pending_age_seconds") == 0
    assert metrics.value("ivpush_publish_confirm_seconds_count") == 4
    assert metrics.value("ivpush_publish_confirm_seconds_bucket", le="0.005") == 4


def test_each_metrics_object_has_its_own_registry_never_the_global_one() -> None:
    first, second = Metrics(), Metrics()
    first.rejected("not_hl7")
    assert first.value("ivpush_rejects_total", code="not_hl7") == 1
    assert second.value("ivpush_rejects_total", code="not_hl7") == 0
    assert not [m for m in REGISTRY.collect() if m.name.startswith("ivpush_")]
    names = {m.name for m in first.registry.collect()}
    assert all(name.startswith("ivpush_") for name in names)


def test_liveness_and_readiness_say_which_check_failed() -> None:
    clock = Clock()
    metrics = Metrics(clock=clock)
    limits = HealthLimits(heartbeat_stale=10, store_stale=10, outbox_stuck=60)
    ok, checks = readiness(metrics, limits)
    assert not ok and not checks["broker"]["ok"] and not checks["store"]["ok"] and checks["loop"]["ok"]
    metrics.heartbeat()
    metrics.set_connected(True)
    metrics.store_probed(ok=True)
    assert readiness(metrics, limits)[0]
    metrics.outbox(1, clock.now)
    clock.now += 9
    metrics.heartbeat()
    metrics.store_probed(ok=True)
    assert readiness(metrics, limits)[0]
    clock.now += 60
    ok, checks = readiness(metrics, limits)
    assert not ok and not checks["outbox"]["ok"] and "waited 69s" in checks["outbox"]["detail"]
    assert not checks["loop"]["ok"] and not liveness(metrics, limits)[0]
    assert "no store probe for 60s" in checks["store"]["detail"]
    metrics.heartbeat()
    metrics.store_probed(ok=False)
    metrics.outbox(0, None)
    ok, checks = readiness(metrics, limits)
    assert liveness(metrics, limits)[0] and not ok and checks["store"]["detail"] == "the last store probe failed"


def test_the_input_type_comes_from_the_properties_or_the_first_bytes() -> None:
    assert input_kind(Delivery(1, b"MSH|^~\\&|x")) == "hl7v2"
    assert input_kind(Delivery(1, b"\x0bMSH|^~\\&|x\x1c\r")) == "hl7v2"
    assert input_kind(Delivery(1, b'  {"resourceType": "Bundle"}')) == "fhir"
    assert input_kind(Delivery(1, b"garbage", content_type="application/fhir+json")) == "fhir"
    assert input_kind(Delivery(1, b"garbage")) == "unknown"


def test_reconnect_warnings_quote_only_our_own_error_texts() -> None:
    assert _own_text(BusUnavailable("channel closed: 320")) == "channel closed: 320"
    assert _own_text(TransientError("store: OperationalError")) == "store: OperationalError"
    leaky = sqlite3.OperationalError("near 'SMITH^JOHN': syntax error")
    assert _own_text(leaky) == "OperationalError"
    assert _own_text(OSError(2, "No such file", str(Path("/feeds/SMITH.hl7")))) == "FileNotFoundError"
