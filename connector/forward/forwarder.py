"""The forward loop: each DFT^P03 of the output queue to the receiver, in queue order, one at a time.

**Order and flow.** One broker connection consumes the queue with prefetch 1 and one MLLP
connection carries one message at a time: the next delivery is not even received before the
current one is settled, so the receiver sees the queue's order, which is the order the
consumer emitted each encounter's messages in. This is the simplest design that keeps order
per encounter; its throughput is one ACK round trip per message.

**Outcomes.** ``AA``/``CA`` → the delivery is acked. ``AE``/``AR``/``CE``/``CR`` → the message is
parked with the receiver's codes (``parking``), then acked. A connect failure, no ACK within
``ack_timeout``, a lost connection, an oversize or unusable ACK (not HL7, no MSA, an unknown
code, MSA-2 naming another message) → the MLLP connection is closed and the *same* message is
sent again on a new one after a capped exponential back-off with jitter (``retry_base`` …
``retry_max``), while the delivery stays unacked and later messages wait: order is kept. With
``max_attempts`` > 0 a message that exhausts them is parked as ``no_ack``; with 0 (the default)
it is retried until the receiver answers, so a receiver outage delays messages, never drops or
reorders them.

**Delivery is at least once.** A message whose ACK was lost is sent again with the same MSH-10
(the deterministic charge message id): receivers de-duplicate on it. A broker connection lost
while a message is out also brings it back (unacked) after the reconnect.

**Stop.** SIGTERM/SIGINT (``Stop``) end the loop between messages or during a back-off; the
message in hand, if any, is left unacked and returns to the queue. Logs carry message ids,
codes and counts only, never message content or the receiver's texts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from connector.bus.backoff import Backoff
from connector.bus.base import Bus, Delivery
from connector.bus.control import Stop
from connector.bus.errors import BusError
from connector.forward.ack import Ack, BadAck, control_id, parse_ack
from connector.forward.metrics import ForwardMetrics
from connector.forward.mllp import MllpClient, MllpError
from connector.forward.parking import ParkingTopology, Refusal, park
from connector.forward.settings import ForwardSettings
from connector.observability.metrics import Metrics

LOG = logging.getLogger("ivpush.forward")
IDLE_PUMP = 0.01  # seconds of broker I/O between slices of an ACK wait (heartbeats)
BEAT = 5.0  # longest pause without a loop heartbeat


@dataclass
class ForwardStats:
    """Counts since start (no PHI)."""

    connects: int = 0
    sent: int = 0
    acked: int = 0
    parked: int = 0
    retries: int = 0


class Forwarder:
    """Forwards the queue to the receiver (see the module docstring).

    Args:
        connect: Opens a broker connection (``RabbitBus`` in production).
        client: The MLLP client for the receiver.
        settings: Queues, timeouts and retry bounds.
        stop: The shutdown flag (signals).
        metrics: Where to count (a fresh ``Metrics`` when none is given).
    """

    def __init__(
        self,
        connect: Callable[[], Bus],
        client: MllpClient,
        settings: ForwardSettings,
        stop: Stop | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.connect = connect
        self.client = client
        self.settings = settings
        self.stop = stop or Stop()
        self.metrics = metrics if metrics is not None else Metrics()
        self.counts = ForwardMetrics(self.metrics)
        self.stats = ForwardStats()
        self._reconnect = Backoff(0.5, settings.reconnect_max)

    def run(self) -> ForwardStats:
        """Forward until stopped, reconnecting to the broker after failures."""
        s = self.settings
        while not self.stop.requested:
            bus: Bus | None = None
            self.metrics.heartbeat()
            try:
                bus = self.connect()
                self.stats.connects += 1
                bus.declare(ParkingTopology(parking_name=s.parking_queue))
                bus.consume(s.queue, 1)
                self.metrics.set_connected(True)
                LOG.info("forwarding %s to %s (parking %s)", s.queue, s.receiver, s.parking_queue)
                self._loop(bus)
            except BusError as error:
                self.metrics.reconnecting()
                self._disconnect_receiver()  # an answer to a message in hand must not meet the next one
                if self.stop.requested:
                    break
                delay = self._reconnect.next_delay()
                LOG.warning(
                    "broker: %s; reconnecting in %.1fs", error, delay,
                    extra={"error": error.__class__.__name__, "delay_seconds": round(delay, 3)},
                )  # fmt: skip
                self._pause(delay)
            finally:
                if bus is not None:
                    bus.close()
        self.metrics.set_connected(False)
        self._disconnect_receiver()
        st = self.stats
        LOG.info("stopped: %d sent, %d acked, %d parked, %d retries", st.sent, st.acked, st.parked, st.retries)
        return st

    def _loop(self, bus: Bus) -> None:
        while not self.stop.requested:
            self.metrics.heartbeat()
            for delivery in bus.poll(1, self.settings.poll_timeout, 0.0, lambda: self.stop.requested):
                self.forward(bus, delivery)
                self._reconnect.reset()

    def forward(self, bus: Bus, delivery: Delivery) -> None:
        """Send one delivery until the receiver answers (or attempts run out), then settle it."""
        s = self.settings
        ident = delivery.message_id or f"tag {delivery.delivery_tag}"
        expected = control_id(delivery.body)
        backoff = Backoff(s.retry_base, s.retry_max)
        attempts = 0
        while True:
            attempts += 1
            answer = self._attempt(bus, delivery.body, expected)
            if isinstance(answer, Ack):
                if answer.accepted:
                    bus.ack(delivery.delivery_tag)
                    self._settled("acked")
                else:
                    self._park(bus, delivery, Refusal.of(answer))
                return
            self.stats.retries += 1
            self.counts.retry(answer)
            if s.max_attempts and attempts >= s.max_attempts:
                self._park(bus, delivery, Refusal.no_ack(attempts, answer))
                return
            delay = backoff.next_delay()
            LOG.warning(
                "%s: no usable ACK (%s), attempt %d; sending again in %.1fs", ident, answer, attempts, delay,
                extra={"message_id": ident, "reason": answer, "attempt": attempts, "delay_seconds": round(delay, 3)},
            )  # fmt: skip
            self._pause(delay, bus)
            if self.stop.requested:
                return  # unacked: back to the queue when the connection closes

    def _attempt(self, bus: Bus, body: bytes, expected: str) -> Ack | str:
        """One send and wait: the ACK, or the reason (a code) to try again."""
        try:
            if not self.client.connected:
                self.client.connect()
                self.counts.receiver.set(1)
            started = time.monotonic()
            self.client.send(body)
            self.stats.sent += 1
            self.counts.sent.inc()
            data = self.client.receive(self.settings.ack_timeout, idle=lambda: bus.sleep(IDLE_PUMP))
        except MllpError as error:
            self.counts.receiver.set(0)
            return error.reason
        try:
            ack = parse_ack(data, expected)
        except BadAck as error:
            LOG.warning("unusable ACK (%s)", error.reason, extra={"reason": error.reason})
            self._disconnect_receiver()
            return "bad_ack"
        self.counts.answered(ack.code, time.monotonic() - started)
        return ack

    def _park(self, bus: Bus, delivery: Delivery, refusal: Refusal) -> None:
        park(bus, delivery, refusal, self.settings.parking_queue, self.settings.queue)
        bus.ack(delivery.delivery_tag)
        self._settled("parked")

    def _settled(self, outcome: str) -> None:
        if outcome == "acked":
            self.stats.acked += 1
        else:
            self.stats.parked += 1
        self.counts.settled(outcome)

    def _disconnect_receiver(self) -> None:
        self.client.close()
        self.counts.receiver.set(0)

    def _pause(self, seconds: float, bus: Bus | None = None) -> None:
        """Wait (servicing the broker connection when there is one), beating the heartbeat."""
        deadline = time.monotonic() + seconds
        while not self.stop.requested and (remaining := deadline - time.monotonic()) > 0:
            self.metrics.heartbeat()
            if bus is None:
                self.stop.wait(min(remaining, BEAT))
            else:
                bus.sleep(min(remaining, BEAT), lambda: self.stop.requested)
