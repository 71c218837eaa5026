"""The RabbitMQ bus: pika's ``SelectConnection`` driven from the calling thread.

pika's ``BlockingChannel`` waits for each publisher confirm (~300–500 msg/s here); the
asynchronous connection with a confirm window reaches 5–11k msg/s (rabbitmq-notes.md). This
class keeps the simple, synchronous shape of ``base.Bus`` on top of the asynchronous
connection: every method pumps the connection's I/O loop (``ioloop.poll`` +
``process_timeouts``, what ``BlockingConnection`` does internally) until its condition holds.
There is no background thread: the thread that created the bus receives, acks and publishes
(pika connections are not thread-safe). pika has no automatic recovery: on any connection or
channel loss the bus raises ``BusUnavailable`` and the caller reconnects with a new bus.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import pika
import pika.exceptions
from pika.adapters.select_connection import IOLoop, SelectConnection

from connector.bus.base import Delivery, Outgoing, PublishReport
from connector.bus.config import AmqpSettings
from connector.bus.errors import BusError, BusUnavailable, TopologyError
from connector.bus.topology import Topology

LOG = logging.getLogger("ivpush.bus")
CONNECT_TIMEOUT = 30.0
RPC_TIMEOUT = 30.0
SLICE = 0.2  # longest single wait, so interruption (signals) is noticed quickly
TOPOLOGY_CODES = (403, 404, 406)  # access refused, not found, precondition failed


def parameters(settings: AmqpSettings) -> Any:
    """The pika connection parameters for the settings (TLS verified when ``amqps``)."""
    params = pika.URLParameters(settings.url)
    if settings.tls:
        params.ssl_options = pika.SSLOptions(settings.ssl_context(), settings.server_hostname or settings.host)
    params.client_properties = {"connection_name": settings.connection_name, "product": "ivpush"}
    if "heartbeat" not in settings.url:
        params.heartbeat = 30
    if "blocked_connection_timeout" not in settings.url:
        params.blocked_connection_timeout = 60
    params.connection_attempts = 1
    return params


class RabbitBus:
    """One connection and one confirm-mode channel to RabbitMQ (see the module docstring)."""

    def __init__(self, settings: AmqpSettings, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self._error: BusError | None = None
        self._deliveries: deque[Delivery] = deque()
        self._consumer_tag: str | None = None
        self._publish_tag = 0
        self._confirms: list[tuple[int, bool, bool]] = []  # (delivery tag, multiple, ack?)
        self._returns: list[tuple[str, str, str | None]] = []  # (exchange, routing key, message id)
        self._opened = False
        self._closed = False
        self._channel: Any = None
        ioloop = IOLoop()
        ioloop.activate_poller()  # driven by ``_pump`` (poll + process_timeouts), never ``start()``
        try:
            self._connection = SelectConnection(
                parameters(settings),
                on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_close,
                custom_ioloop=ioloop,
            )
        except (pika.exceptions.AMQPError, OSError) as error:
            ioloop.close()
            raise BusUnavailable(f"cannot connect: {error.__class__.__name__}") from error
        try:
            self._open_channel(connect_timeout)
        except BusError:
            self.close()
            raise

    def _open_channel(self, connect_timeout: float) -> None:
        self._wait(lambda: self._opened, connect_timeout, "connection open")
        opened: list[bool] = []
        try:
            self._channel = self._connection.channel(on_open_callback=lambda _ch: opened.append(True))
            self._wait(lambda: bool(opened), RPC_TIMEOUT, "channel open")
            self._channel.add_on_close_callback(self._on_channel_close)
            self._channel.add_on_return_callback(self._on_return)
            selected: list[bool] = []
            self._channel.confirm_delivery(self._on_confirm, callback=lambda _frame: selected.append(True))
        except (pika.exceptions.AMQPError, OSError) as error:
            raise BusUnavailable(f"channel: {_describe(error)}") from error
        self._wait(lambda: bool(selected), RPC_TIMEOUT, "confirm select")

    # --- connection callbacks (run inside ``_pump``) -------------------------------------------

    def _on_open(self, _connection: Any) -> None:
        self._opened = True

    def _on_open_error(self, _connection: Any, error: BaseException) -> None:
        self._error = BusUnavailable(f"cannot connect: {_describe(error)}")

    def _on_close(self, _connection: Any, reason: BaseException) -> None:
        if self._error is None:
            self._error = BusUnavailable(f"connection closed: {_describe(reason)}")

    def _on_channel_close(self, _channel: Any, reason: BaseException) -> None:
        code = getattr(reason, "reply_code", 0)
        if code in TOPOLOGY_CODES:
            self._error = TopologyError(f"channel closed by broker: {_describe(reason)}")
        elif self._error is None:
            self._error = BusUnavailable(f"channel closed: {_describe(reason)}")

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        ack = isinstance(method, pika.spec.Basic.Ack)
        self._confirms.append((method.delivery_tag, bool(method.multiple), ack))

    def _on_return(self, _channel: Any, method: Any, properties: Any, _body: bytes) -> None:
        self._returns.append((method.exchange, method.routing_key, properties.message_id))

    def _on_message(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self._deliveries.append(
            Delivery(
                delivery_tag=method.delivery_tag,
                body=body,
                content_type=properties.content_type,
                headers=dict(properties.headers or {}),
                message_id=properties.message_id,
                routing_key=method.routing_key,
                redelivered=bool(method.redelivered),
            )
        )

    # --- the I/O pump ------------------------------------------------------------------------

    def _pump(self, wait: float) -> None:
        """Run the I/O loop once: wait up to ``wait`` seconds for I/O, dispatch callbacks and timers."""
        self._raise_pending()
        ioloop = self._connection.ioloop
        timer = ioloop.call_later(max(wait, 0.0), _nothing)
        try:
            ioloop.poll()
            ioloop.process_timeouts()
        except (pika.exceptions.AMQPError, OSError) as error:
            self._error = self._error or BusUnavailable(f"I/O failed: {_describe(error)}")
        finally:
            ioloop.remove_timeout(timer)
        self._raise_pending()

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._error = BusUnavailable(f"timed out waiting for {what}")
                raise self._error
            self._pump(min(remaining, SLICE))

    def _call(self, start: Callable[..., None], what: str) -> Any:
        """Start an RPC (``start(callback=...)``) and wait for its answer frame."""
        answers: list[Any] = []
        try:
            start(callback=answers.append)
        except (pika.exceptions.AMQPError, OSError) as error:
            raise BusUnavailable(f"{what}: {_describe(error)}") from error
        self._wait(lambda: bool(answers), RPC_TIMEOUT, what)
        return answers[0]

    # --- base.Bus ----------------------------------------------------------------------------

    def declare(self, topology: Topology) -> None:
        """Declare the exchanges, queues and bindings (idempotent)."""
        ch = self._channel
        for ex in topology.exchanges():
            start = partial(ch.exchange_declare, ex.name, ex.type, durable=True, arguments=ex.arguments or None)
            self._call(start, f"declare exchange {ex.name}")
        for queue in topology.queues():
            start = partial(ch.queue_declare, queue.name, durable=True, arguments=queue.arguments)
            self._call(start, f"declare queue {queue.name}")
        for b in topology.bindings():
            start = partial(ch.queue_bind, b.queue, b.exchange, routing_key=b.routing_key)
            self._call(start, f"bind {b.queue}")

    def purge(self, queue: str) -> int:
        """Drop every ready message of a queue."""
        frame = self._call(partial(self._channel.queue_purge, queue), f"purge {queue}")
        return int(frame.method.message_count)

    def consume(self, queue: str, prefetch: int) -> None:
        """Start receiving deliveries with at most ``prefetch`` unacked."""
        self._call(partial(self._channel.basic_qos, prefetch_count=prefetch), "basic.qos")
        try:
            self._consumer_tag = self._channel.basic_consume(queue, self._on_message)
        except (pika.exceptions.AMQPError, OSError) as error:
            raise BusUnavailable(f"basic.consume: {_describe(error)}") from error

    def cancel(self) -> None:
        """Stop receiving; deliveries already received stay available."""
        if self._consumer_tag is None:
            return
        tag, self._consumer_tag = self._consumer_tag, None
        self._call(partial(self._channel.basic_cancel, tag), "basic.cancel")

    def poll(
        self, max_count: int, timeout: float, linger: float = 0.0, interrupted: Callable[[], bool] | None = None
    ) -> list[Delivery]:
        """Deliveries received so far: wait ``timeout`` for a first one, then ``linger`` for a full batch."""
        now = time.monotonic()
        deadline = now + timeout
        first_at = now if self._deliveries else None
        while len(self._deliveries) < max_count:
            now = time.monotonic()
            if self._deliveries:
                first_at = first_at if first_at is not None else now
                remaining = first_at + linger - now
            else:
                remaining = deadline - now
            if remaining <= 0 or (interrupted is not None and interrupted()):
                break
            self._pump(min(remaining, SLICE))
        count = min(max_count, len(self._deliveries))
        return [self._deliveries.popleft() for _ in range(count)]

    def ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """Acknowledge (flushed to the socket before returning)."""
        self._raise_pending()
        try:
            self._channel.basic_ack(delivery_tag, multiple=multiple)
        except (pika.exceptions.AMQPError, OSError) as error:
            raise BusUnavailable(f"basic.ack: {_describe(error)}") from error
        self._pump(0)

    def reject(self, delivery_tag: int, requeue: bool = False) -> None:
        """Reject: requeue, or dead-letter when ``requeue`` is false."""
        self._raise_pending()
        try:
            self._channel.basic_reject(delivery_tag, requeue=requeue)
        except (pika.exceptions.AMQPError, OSError) as error:
            raise BusUnavailable(f"basic.reject: {_describe(error)}") from error
        self._pump(0)

    def publish(
        self,
        messages: Sequence[Outgoing],
        timeout: float,
        window: int = 500,
        on_sent: Callable[[Outgoing], None] | None = None,
    ) -> PublishReport:
        """Publish with ``mandatory``, persistent, keeping at most ``window`` unconfirmed."""
        report = PublishReport()
        waiting: dict[int, Outgoing] = {}
        sent_at: dict[int, float] = {}  # publish tag → monotonic send time (confirm latency)
        returned: set[int] = set()
        queue = deque(messages)
        deadline = time.monotonic() + timeout
        self._confirms.clear()
        self._returns.clear()
        while queue or waiting:
            while queue and len(waiting) < window:
                message = queue.popleft()
                self._send(message)
                waiting[self._publish_tag] = message
                sent_at[self._publish_tag] = time.monotonic()
                if on_sent is not None:
                    self._pump(0)
                    on_sent(message)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                self._pump(min(remaining, SLICE))
            except BusUnavailable:
                report.unconfirmed.extend(m.ident for m in waiting.values())
                report.unconfirmed.extend(m.ident for m in queue)
                raise
            self._settle(waiting, returned, report, sent_at)
        report.unconfirmed.extend(m.ident for m in waiting.values())
        report.unconfirmed.extend(m.ident for m in queue)
        return report

    def _send(self, message: Outgoing) -> None:
        properties = pika.BasicProperties(
            content_type=message.content_type,
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message.message_id,
            headers=dict(message.headers) or None,
        )
        try:
            self._channel.basic_publish(
                message.exchange, message.routing_key, message.body, properties=properties, mandatory=True
            )
        except (pika.exceptions.AMQPError, OSError) as error:
            self._error = self._error or BusUnavailable(f"basic.publish: {_describe(error)}")
            raise self._error from error
        self._publish_tag += 1

    def _settle(
        self, waiting: dict[int, Outgoing], returned: set[int], report: PublishReport, sent_at: dict[int, float]
    ) -> None:
        """Match returns and confirms to the messages waiting for them."""
        now = time.monotonic()
        for exchange, routing_key, message_id in self._returns:
            for tag in sorted(waiting):  # a return precedes its message's confirm: the oldest match
                m = waiting[tag]
                if tag not in returned and (m.exchange, m.routing_key, m.message_id) == (
                    exchange,
                    routing_key,
                    message_id,
                ):
                    returned.add(tag)
                    break
        self._returns.clear()
        for delivery_tag, multiple, ack in self._confirms:
            tags = [t for t in waiting if t <= delivery_tag] if multiple else [delivery_tag]
            for tag in tags:
                message = waiting.pop(tag, None)
                if message is None:
                    continue
                if tag in returned:
                    returned.discard(tag)
                    report.returned.append(message.ident)
                elif ack:
                    report.confirmed.append(message.ident)
                    report.confirm_seconds.append(now - sent_at.pop(tag, now))
                else:
                    report.nacked.append(message.ident)
        self._confirms.clear()

    def sleep(self, seconds: float, interrupted: Callable[[], bool] | None = None) -> None:
        """Wait while servicing the connection."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if interrupted is not None and interrupted():
                return
            self._pump(min(remaining, SLICE))

    def close(self) -> None:
        """Close the connection (unacked deliveries return to their queue); never raises."""
        if self._closed:
            return
        self._closed = True
        connection = self._connection
        try:
            if connection.is_open:
                connection.close()
                deadline = time.monotonic() + 5.0
                while not connection.is_closed and time.monotonic() < deadline:
                    connection.ioloop.poll()
                    connection.ioloop.process_timeouts()
        except Exception as error:  # noqa: BLE001 - closing must never raise; the socket is dropped anyway
            LOG.debug("close: %s", error.__class__.__name__)
        finally:
            with contextlib.suppress(Exception):  # best effort after the connection is gone
                connection.ioloop.close()


def _nothing() -> None:
    """Timer callback that only bounds a poll."""


def _describe(error: BaseException) -> str:
    """Exception class and broker reply text (names of exchanges/queues, never message content).

    pika's connection workflow wraps the real cause (refused, TLS verification, …): unwrap it.
    """
    for _ in range(5):
        inner = getattr(error, "exceptions", None) or []
        cause = inner[-1] if inner else getattr(error, "exception", None)
        if not isinstance(cause, BaseException):
            break
        error = cause
    text = str(error)
    return f"{error.__class__.__name__}: {text}" if text else error.__class__.__name__
