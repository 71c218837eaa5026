"""An in-memory broker for unit tests (like dramatiq's ``brokers/stub.py``).

``StubBroker`` holds exchanges, quorum-like queues, bindings and dead-letter settings;
``StubBroker.connect()`` returns a ``StubBus`` (one "connection") that implements
``base.Bus`` with RabbitMQ's semantics that matter to the delivery contract: unacked
deliveries come back (``redelivered``) when a connection closes or the broker goes down,
``mandatory`` publishes to nowhere are returned, ``reject(requeue=False)`` dead-letters,
confirms can be refused (``nack_next``), and ``fail()`` makes every connection unusable.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from connector.bus.base import Delivery, Outgoing, PublishReport
from connector.bus.errors import BusUnavailable, TopologyError
from connector.bus.topology import HASH_HEADER, Topology


@dataclass(frozen=True)
class StubMessage:
    """A message stored in a stub queue."""

    body: bytes
    routing_key: str = ""
    content_type: str | None = None
    headers: Mapping[str, object] = field(default_factory=dict)
    message_id: str | None = None
    redelivered: bool = False
    delivery_count: int = 0


def _topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` zero or more."""
    words, parts = pattern.split("."), key.split(".") if key else []

    def match(i: int, j: int) -> bool:
        if i == len(words):
            return j == len(parts)
        if words[i] == "#":
            return any(match(i + 1, k) for k in range(j, len(parts) + 1))
        return j < len(parts) and words[i] in ("*", parts[j]) and match(i + 1, j + 1)

    return match(0, 0)


def _key_matches(kind: str, key: str, routing_key: str) -> bool:
    """Whether a binding with ``key`` on an exchange of type ``kind`` takes ``routing_key``."""
    direct = kind == "direct" and key == routing_key
    return _topic_matches(key, routing_key) if kind == "topic" else kind == "fanout" or direct


class StubBroker:
    """Exchanges, queues and bindings in process memory."""

    def __init__(self) -> None:
        self.exchanges: dict[str, tuple[str, dict[str, object]]] = {}
        self.queues: dict[str, deque[StubMessage]] = {}
        self.bindings: list[tuple[str, str, str]] = []
        self.exchange_bindings: list[tuple[str, str, str]] = []  # (source, destination exchange, key)
        self.dead_letter: dict[str, str] = {}  # queue → exchange (what the policy sets on RabbitMQ)
        self.delivery_limit: dict[str, int] = {}
        self.down = False
        self.nack_next = 0
        self.connects = 0
        self.idle_hook: Callable[[], None] | None = None
        self._buses: list[StubBus] = []

    def connect(self) -> StubBus:
        """A new connection.

        Raises:
            BusUnavailable: The broker is down.
        """
        if self.down:
            raise BusUnavailable("stub broker is down")
        self.connects += 1
        bus = StubBus(self)
        self._buses.append(bus)
        return bus

    def apply_policy(self, topology: Topology) -> None:
        """What ``rabbitmqctl set_policy`` does for the input queues."""
        for queue in topology.input_queues():
            self.dead_letter[queue] = topology.parking_exchange
            self.delivery_limit[queue] = topology.delivery_limit

    def fail(self) -> None:
        """The broker goes away: every connection breaks and its unacked deliveries return."""
        self.down = True
        for bus in list(self._buses):
            bus.drop()

    def restore(self) -> None:
        """The broker is back."""
        self.down = False

    def messages(self, queue: str) -> list[StubMessage]:
        """Ready messages of a queue, in order."""
        return list(self.queues.get(queue, ()))

    def delete_queue(self, name: str) -> None:
        """Delete a queue and its bindings."""
        self.queues.pop(name, None)
        self.bindings = [b for b in self.bindings if b[1] != name]

    def bind(self, exchange: str, queue: str, routing_key: str) -> None:
        """Bind (idempotent)."""
        if (exchange, queue, routing_key) not in self.bindings:
            self.bindings.append((exchange, queue, routing_key))

    def route(self, exchange: str, message: StubMessage) -> list[str]:
        """Queues the message goes to (it is appended to each)."""
        kind, arguments = self.exchanges.get(exchange, ("", {}))
        if exchange not in self.exchanges:
            raise TopologyError(f"NOT_FOUND - no exchange '{exchange}'")
        bound = [(q, key) for ex, q, key in self.bindings if ex == exchange and q in self.queues]
        if kind == "x-consistent-hash" and bound:
            header = str(arguments.get("hash-header", HASH_HEADER))
            value = str(message.headers.get(header, message.routing_key)).encode()
            targets = [sorted(q for q, _ in bound)[int(hashlib.sha256(value).hexdigest(), 16) % len(bound)]]
        else:
            targets = [q for q, key in bound if _key_matches(kind, key, message.routing_key)]
        routed = list(dict.fromkeys(targets))
        for queue in routed:
            self.queues[queue].append(message)
        for source, destination, key in self.exchange_bindings:  # exchange-to-exchange
            if source == exchange and destination in self.exchanges and _key_matches(kind, key, message.routing_key):
                routed.extend(q for q in self.route(destination, message) if q not in routed)
        return routed

    def dead_letter_message(self, queue: str, message: StubMessage, reason: str) -> None:
        """Dead-letter to the queue's dead-letter exchange (dropped when it has none)."""
        exchange = self.dead_letter.get(queue)
        if exchange is not None and exchange in self.exchanges:
            headers = {**message.headers, "x-first-death-queue": queue, "x-first-death-reason": reason}
            self.route(exchange, replace(message, headers=headers, redelivered=False))


class StubBus:
    """One connection to a ``StubBroker`` (see the module docstring)."""

    def __init__(self, broker: StubBroker) -> None:
        self.broker = broker
        self._queue: str | None = None
        self._prefetch = 0
        self._tag = 0
        self._unacked: dict[int, tuple[str, StubMessage]] = {}
        self._received: deque[Delivery] = deque()
        self._broken = False
        self.acks = 0
        self.rejects = 0

    def _check(self) -> None:
        if self._broken or self.broker.down:
            raise BusUnavailable("stub connection lost")

    def drop(self) -> None:
        """Break the connection: unacked deliveries go back to the front of their queue."""
        if self._broken:
            return
        self._broken = True
        for _tag, (queue, message) in sorted(self._unacked.items(), reverse=True):
            if queue in self.broker.queues:
                again = replace(message, redelivered=True, delivery_count=message.delivery_count + 1)
                limit = self.broker.delivery_limit.get(queue)
                if limit is not None and again.delivery_count > limit:
                    self.broker.dead_letter_message(queue, again, "delivery_limit")
                else:
                    self.broker.queues[queue].appendleft(again)
        self._unacked.clear()
        self._received.clear()
        self._queue = None
        if self in self.broker._buses:
            self.broker._buses.remove(self)

    def declare(self, topology: Topology) -> None:
        """Declare exchanges, queues and bindings."""
        self._check()
        for ex in topology.exchanges():
            self.broker.exchanges.setdefault(ex.name, (ex.type, dict(ex.arguments)))
        for q in topology.queues():
            self.broker.queues.setdefault(q.name, deque())
            if "x-dead-letter-exchange" in q.arguments:  # what the queue arguments set on RabbitMQ
                self.broker.dead_letter[q.name] = str(q.arguments["x-dead-letter-exchange"])
            if "x-delivery-limit" in q.arguments:
                self.broker.delivery_limit[q.name] = int(q.arguments["x-delivery-limit"])
        for b in topology.bindings():
            if b.exchange not in self.broker.exchanges:
                raise TopologyError(f"NOT_FOUND - no exchange '{b.exchange}'")
            found = self.broker.exchange_bindings if b.destination_type == "exchange" else self.broker.bindings
            if (b.exchange, b.queue, b.routing_key) not in found:
                found.append((b.exchange, b.queue, b.routing_key))

    def purge(self, queue: str) -> int:
        """Drop ready messages."""
        self._check()
        found = self.broker.queues.get(queue, deque())
        count = len(found)
        found.clear()
        return count

    def consume(self, queue: str, prefetch: int) -> None:
        """Start receiving."""
        self._check()
        if queue not in self.broker.queues:
            raise TopologyError(f"NOT_FOUND - no queue '{queue}'")
        self._queue, self._prefetch = queue, prefetch

    def cancel(self) -> None:
        """Stop receiving (already received deliveries stay)."""
        self._check()
        self._queue = None

    def _fill(self) -> None:
        if self._queue is None:
            return
        source = self.broker.queues.get(self._queue)
        while source and len(self._unacked) < self._prefetch:
            message = source.popleft()
            self._tag += 1
            self._unacked[self._tag] = (self._queue, message)
            self._received.append(
                Delivery(
                    self._tag,
                    message.body,
                    message.content_type,
                    dict(message.headers),
                    message.message_id,
                    message.routing_key,
                    message.redelivered,
                )
            )

    def poll(
        self, max_count: int, timeout: float, linger: float = 0.0, interrupted: Callable[[], bool] | None = None
    ) -> list[Delivery]:
        """Deliveries available now (never waits; calls the broker's ``idle_hook`` when there are none)."""
        self._check()
        self._fill()
        if not self._received and self.broker.idle_hook is not None:
            self.broker.idle_hook()
        count = min(max_count, len(self._received))
        return [self._received.popleft() for _ in range(count)]

    def ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """Acknowledge."""
        self._check()
        tags = [t for t in self._unacked if t <= delivery_tag] if multiple else [delivery_tag]
        for tag in tags:
            if self._unacked.pop(tag, None) is not None:
                self.acks += 1

    def reject(self, delivery_tag: int, requeue: bool = False) -> None:
        """Requeue at the back (quorum queue), or dead-letter."""
        self._check()
        queue, message = self._unacked.pop(delivery_tag)
        self.rejects += 1
        if requeue:
            self.broker.queues[queue].append(replace(message, redelivered=True))
        else:
            self.broker.dead_letter_message(queue, message, "rejected")

    def publish(
        self,
        messages: Sequence[Outgoing],
        timeout: float,
        window: int = 500,
        on_sent: Callable[[Outgoing], None] | None = None,
    ) -> PublishReport:
        """Route each message; unroutable ones are returned, ``nack_next`` ones nacked."""
        report = PublishReport()
        for index, message in enumerate(messages):
            if self._broken or self.broker.down:
                report.unconfirmed.extend(m.ident for m in messages[index:])
                raise BusUnavailable("stub connection lost")
            stored = StubMessage(
                message.body, message.routing_key, message.content_type, dict(message.headers), message.message_id
            )
            if self.broker.nack_next > 0:
                self.broker.nack_next -= 1
                report.nacked.append(message.ident)
                continue
            routed = self.broker.route(message.exchange, stored)
            if on_sent is not None:
                on_sent(message)
            (report.confirmed if routed else report.returned).append(message.ident)
        return report

    def sleep(self, seconds: float, interrupted: Callable[[], bool] | None = None) -> None:
        """Nothing to service in memory."""
        self._check()

    def close(self) -> None:
        """Close: unacked deliveries return to their queue."""
        self.drop()
