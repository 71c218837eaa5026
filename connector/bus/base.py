"""The bus contract: what the consumer, the relay and the CLI need from a broker connection.

One ``Bus`` is one connection with one channel, used from one thread (the thread that made
it): deliveries are received, acked and published there. Implementations: ``rabbitmq.RabbitBus``
(pika) and ``stub.StubBus`` (in memory, for tests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from connector.bus.topology import Topology

HeaderValue = str | int | float | bool | bytes | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message received from a queue.

    Attributes:
        delivery_tag: The channel's tag for ack/reject.
        body: The message bytes.
        content_type: The ``content_type`` property, if any.
        headers: The ``headers`` table (empty when none).
        message_id: The ``message_id`` property, if any.
        routing_key: The routing key it was published with.
        redelivered: The broker delivered it before (to this or another consumer).
    """

    delivery_tag: int
    body: bytes
    content_type: str | None = None
    headers: Mapping[str, object] = field(default_factory=dict)
    message_id: str | None = None
    routing_key: str = ""
    redelivered: bool = False


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to publish: always persistent, ``mandatory``, with publisher confirms.

    Attributes:
        exchange: Target exchange.
        routing_key: Routing key.
        body: The message bytes.
        message_id: The ``message_id`` property (deterministic: downstream de-duplicates on it).
        content_type: The ``content_type`` property.
        headers: The ``headers`` table.
        key: Caller's identity for the message in reports (defaults to the message id).
    """

    exchange: str
    routing_key: str
    body: bytes
    message_id: str | None
    content_type: str | None = None
    headers: Mapping[str, object] = field(default_factory=dict)
    key: object = None

    @property
    def ident(self) -> object:
        """The identity reported back in a ``PublishReport``."""
        return self.key if self.key is not None else self.message_id


@dataclass
class PublishReport:
    """The fate of each message of one ``publish`` call (by ``Outgoing.ident``).

    Attributes:
        confirmed: Routed and confirmed by the broker: safe to forget.
        returned: Unroutable (``mandatory``): the broker returned it; retry later.
        nacked: The broker refused it (``basic.nack``); retry later.
        unconfirmed: No answer before the deadline or the connection was lost: unknown.
        confirm_seconds: Seconds from publish to confirm of each confirmed message, when the
            bus measures it (metrics only; empty otherwise).
    """

    confirmed: list[object] = field(default_factory=list)
    returned: list[object] = field(default_factory=list)
    nacked: list[object] = field(default_factory=list)
    unconfirmed: list[object] = field(default_factory=list)
    confirm_seconds: list[float] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every message was confirmed."""
        return not (self.returned or self.nacked or self.unconfirmed)


class Bus(Protocol):
    """One broker connection and channel (publisher confirms on)."""

    def declare(self, topology: Topology) -> None:
        """Declare the exchanges, queues and bindings (idempotent).

        Raises:
            TopologyError: The broker refused a declaration (e.g. different arguments).
            BusUnavailable: The connection was lost.
        """
        ...

    def purge(self, queue: str) -> int:
        """Drop every ready message of a queue; the count dropped."""
        ...

    def consume(self, queue: str, prefetch: int) -> None:
        """Start receiving deliveries from ``queue`` with at most ``prefetch`` unacked."""
        ...

    def cancel(self) -> None:
        """Stop receiving; deliveries already received stay available to ``poll``."""
        ...

    def poll(
        self, max_count: int, timeout: float, linger: float = 0.0, interrupted: Callable[[], bool] | None = None
    ) -> list[Delivery]:
        """Deliveries received so far, waiting for them.

        Waits up to ``timeout`` seconds for a first delivery, then up to ``linger`` more for
        ``max_count`` (a batch by count or time); returns early when ``interrupted()`` is true.
        """
        ...

    def ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """Acknowledge a delivery (and every earlier one with ``multiple``)."""
        ...

    def reject(self, delivery_tag: int, requeue: bool = False) -> None:
        """Reject a delivery: back to the queue, or dead-lettered when ``requeue`` is false."""
        ...

    def publish(
        self,
        messages: Sequence[Outgoing],
        timeout: float,
        window: int = 500,
        on_sent: Callable[[Outgoing], None] | None = None,
    ) -> PublishReport:
        """Publish with ``mandatory`` and confirms, keeping at most ``window`` unconfirmed.

        ``on_sent`` is called for each message once it was written out and before its confirm
        is matched (the relay's crash-injection point; it does nothing unless armed).

        Raises:
            BusUnavailable: The connection was lost (every unconfirmed message is unknown).
        """
        ...

    def sleep(self, seconds: float, interrupted: Callable[[], bool] | None = None) -> None:
        """Wait while servicing the connection (heartbeats)."""
        ...

    def close(self) -> None:
        """Close the connection; unacked deliveries return to their queue."""
        ...
