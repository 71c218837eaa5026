"""The RabbitMQ bus: ``base.Bus`` on one pika connection driven from the calling thread.

The consumer, the relay and the CLI speak ``base.Bus``; this class gives them RabbitMQ's
semantics in that synchronous shape. The asynchronous plumbing it stands on lives apart so
that each operation here reads as the AMQP it performs: ``rabbitmq_connection`` pumps pika's
``SelectConnection`` (no background thread; pika connections are not thread-safe, so the thread
that created the bus receives, acks and publishes) and ``rabbitmq_publish`` keeps the confirm
window. pika has no automatic recovery: on any connection or channel loss the bus raises
``BusUnavailable`` and the caller reconnects with a new bus.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial

import pika.exceptions

from connector.bus import rabbitmq_publish
from connector.bus.base import Delivery, Outgoing, PublishReport
from connector.bus.config import AmqpSettings
from connector.bus.errors import BusUnavailable
from connector.bus.rabbitmq_connection import CONNECT_TIMEOUT, SLICE, RabbitConnection, describe
from connector.bus.topology import Topology


class RabbitBus:
    """One connection and one confirm-mode channel to RabbitMQ (see the module docstring)."""

    def __init__(self, settings: AmqpSettings, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self._consumer_tag: str | None = None
        self._link = RabbitConnection(settings, connect_timeout)

    def declare(self, topology: Topology) -> None:
        """Declare the exchanges, queues and bindings (idempotent).

        A binding's source may be a site's exchange that ivpush does not declare: it must exist
        (else ``TopologyError``, NOT_FOUND).
        """
        ch = self._link.channel
        for ex in topology.exchanges():
            start = partial(ch.exchange_declare, ex.name, ex.type, durable=True, arguments=ex.arguments or None)
            self._link.call(start, f"declare exchange {ex.name}")
        for queue in topology.queues():
            start = partial(ch.queue_declare, queue.name, durable=True, arguments=queue.arguments)
            self._link.call(start, f"declare queue {queue.name}")
        for b in topology.bindings():
            if b.destination_type == "exchange":  # exchange-to-exchange (a site's exchange to the input)
                start = partial(ch.exchange_bind, b.queue, b.exchange, routing_key=b.routing_key)
            else:
                start = partial(ch.queue_bind, b.queue, b.exchange, routing_key=b.routing_key)
            self._link.call(start, f"bind {b.queue} to {b.exchange}")

    def purge(self, queue: str) -> int:
        """Drop every ready message of a queue."""
        frame = self._link.call(partial(self._link.channel.queue_purge, queue), f"purge {queue}")
        return int(frame.method.message_count)

    def consume(self, queue: str, prefetch: int) -> None:
        """Start receiving deliveries with at most ``prefetch`` unacked."""
        self._link.call(partial(self._link.channel.basic_qos, prefetch_count=prefetch), "basic.qos")
        try:
            self._consumer_tag = self._link.channel.basic_consume(queue, self._link.on_message)
        except (pika.exceptions.AMQPError, OSError) as error:
            raise BusUnavailable(f"basic.consume: {describe(error)}") from error

    def cancel(self) -> None:
        """Stop receiving; deliveries already received stay available."""
        if self._consumer_tag is None:
            return
        tag, self._consumer_tag = self._consumer_tag, None
        self._link.call(partial(self._link.channel.basic_cancel, tag), "basic.cancel")

    def poll(
        self, max_count: int, timeout: float, linger: float = 0.0, interrupted: Callable[[], bool] | None = None
    ) -> list[Delivery]:
        """Deliveries received so far: wait ``timeout`` for a first one, then ``linger`` for a full batch."""
        deliveries = self._link.deliveries
        now = time.monotonic()
        deadline = now + timeout
        first_at = now if deliveries else None
        while len(deliveries) < max_count:
            now = time.monotonic()
            if deliveries:
                first_at = first_at if first_at is not None else now
                remaining = first_at + linger - now
            else:
                remaining = deadline - now
            if remaining <= 0 or (interrupted is not None and interrupted()):
                break
            self._link.pump(min(remaining, SLICE))
        count = min(max_count, len(deliveries))
        return [deliveries.popleft() for _ in range(count)]

    def ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """Acknowledge (flushed to the socket before returning)."""
        self._link.raise_pending()
        try:
            self._link.channel.basic_ack(delivery_tag, multiple=multiple)
        except (pika.exceptions.AMQPError, OSError) as error:
            raise BusUnavailable(f"basic.ack: {describe(error)}") from error
        self._link.pump(0)

    def reject(self, delivery_tag: int, requeue: bool = False) -> None:
        """Reject: requeue, or dead-letter when ``requeue`` is false."""
        self._link.raise_pending()
        try:
            self._link.channel.basic_reject(delivery_tag, requeue=requeue)
        except (pika.exceptions.AMQPError, OSError) as error:
            raise BusUnavailable(f"basic.reject: {describe(error)}") from error
        self._link.pump(0)

    def publish(
        self,
        messages: Sequence[Outgoing],
        timeout: float,
        window: int = 500,
        on_sent: Callable[[Outgoing], None] | None = None,
    ) -> PublishReport:
        """Publish with ``mandatory``, persistent, keeping at most ``window`` unconfirmed."""
        return rabbitmq_publish.publish(self._link, messages, timeout, window, on_sent)

    def sleep(self, seconds: float, interrupted: Callable[[], bool] | None = None) -> None:
        """Wait while servicing the connection."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if interrupted is not None and interrupted():
                return
            self._link.pump(min(remaining, SLICE))

    def close(self) -> None:
        """Close the connection (unacked deliveries return to their queue); never raises."""
        self._link.close()
