"""pika's ``SelectConnection`` pumped from the calling thread: the I/O half of ``rabbitmq.RabbitBus``.

pika's ``BlockingChannel`` waits for each publisher confirm (~300–500 msg/s here); the
asynchronous connection with a confirm window reaches 5–11k msg/s (rabbitmq-notes.md). To keep
the simple, synchronous shape of ``base.Bus`` on top of it, every bus operation pumps the
connection's I/O loop (``ioloop.poll`` + ``process_timeouts``, what ``BlockingConnection`` does
internally) until its condition holds. There is no background thread: the thread that created
the connection receives, acks and publishes (pika connections are not thread-safe).

pika's callbacks only *record* what arrives (deliveries, confirms, returns, the first error);
the bus and the publisher read those records between pumps. pika has no automatic recovery: on
any connection or channel loss the next pump raises ``BusUnavailable`` and the caller
reconnects with a new bus. pika's exceptions are translated here and never leave the
``rabbitmq*`` modules.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
from pika.adapters.select_connection import IOLoop, SelectConnection

from connector.bus.base import Delivery
from connector.bus.config import AmqpSettings
from connector.bus.errors import AccessRefused, BusError, BusUnavailable, ConfigError, TopologyError

LOG = logging.getLogger("ivpush.bus")
CONNECT_TIMEOUT = 30.0
RPC_TIMEOUT = 30.0
SLICE = 0.2  # longest single wait, so interruption (signals) is noticed quickly
TOPOLOGY_CODES = (403, 404, 406)  # access refused, not found, precondition failed
# Login refused (403 ACCESS_REFUSED at connection open) or virtual host refused (530 NOT_ALLOWED)
REFUSED = (
    pika.exceptions.ProbableAuthenticationError,
    pika.exceptions.AuthenticationError,
    pika.exceptions.ProbableAccessDeniedError,
)


def parameters(settings: AmqpSettings) -> Any:
    """The pika connection parameters for the settings (TLS verified when ``amqps``).

    Raises:
        ConfigError: pika cannot read the URL (its text may quote the password: not repeated).
    """
    try:
        params = pika.URLParameters(settings.url)
    except (ValueError, TypeError, KeyError) as error:
        raise ConfigError(f"the broker URL {settings.redacted()} is malformed ({error.__class__.__name__})") from None
    if settings.tls:
        params.ssl_options = pika.SSLOptions(settings.ssl_context(), settings.server_hostname or settings.host)
    params.client_properties = {"connection_name": settings.connection_name, "product": "ivpush"}
    if "heartbeat" not in settings.url:
        params.heartbeat = 30
    if "blocked_connection_timeout" not in settings.url:
        params.blocked_connection_timeout = 60
    params.connection_attempts = 1
    return params


class RabbitConnection:
    """One connection and one confirm-mode channel, pumped by its caller (see the module docstring).

    Attributes:
        channel: The pika channel (confirm mode, ``on_return`` and ``on_close`` callbacks set).
        deliveries: Deliveries received by ``on_message`` and not yet taken.
        confirms: Confirms received: (delivery tag, multiple, ack?).
        returns: Returned (unroutable) messages: (exchange, routing key, message id).
        publish_tag: The channel's last publish sequence number (the tag its confirm will carry).
    """

    def __init__(self, settings: AmqpSettings, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self._error: BusError | None = None
        self.deliveries: deque[Delivery] = deque()
        self.publish_tag = 0
        self.confirms: list[tuple[int, bool, bool]] = []  # (delivery tag, multiple, ack?)
        self.returns: list[tuple[str, str, str | None]] = []  # (exchange, routing key, message id)
        self._opened = False
        self._closed = False
        self.channel: Any = None
        params = parameters(settings)
        ioloop = IOLoop()
        ioloop.activate_poller()  # driven by ``pump`` (poll + process_timeouts), never ``start()``
        try:
            self._connection = SelectConnection(
                params,
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
        self.wait(lambda: self._opened, connect_timeout, "connection open")
        opened: list[bool] = []
        try:
            self.channel = self._connection.channel(on_open_callback=lambda _ch: opened.append(True))
            self.wait(lambda: bool(opened), RPC_TIMEOUT, "channel open")
            self.channel.add_on_close_callback(self._on_channel_close)
            self.channel.add_on_return_callback(self._on_return)
            selected: list[bool] = []
            self.channel.confirm_delivery(self._on_confirm, callback=lambda _frame: selected.append(True))
        except (pika.exceptions.AMQPError, OSError) as error:
            raise BusUnavailable(f"channel: {describe(error)}") from error
        self.wait(lambda: bool(selected), RPC_TIMEOUT, "confirm select")

    # --- connection callbacks (run inside ``pump``) --------------------------------------------

    def _on_open(self, _connection: Any) -> None:
        self._opened = True

    def _on_open_error(self, _connection: Any, error: BaseException) -> None:
        refused = any(isinstance(cause, REFUSED) for cause in _causes(error))
        self._error = (AccessRefused if refused else BusUnavailable)(f"cannot connect: {describe(error)}")

    def _on_close(self, _connection: Any, reason: BaseException) -> None:
        if self._error is None:
            self._error = BusUnavailable(f"connection closed: {describe(reason)}")

    def _on_channel_close(self, _channel: Any, reason: BaseException) -> None:
        code = getattr(reason, "reply_code", 0)
        if code in TOPOLOGY_CODES:
            self._error = TopologyError(f"channel closed by broker: {describe(reason)}")
        elif self._error is None:
            self._error = BusUnavailable(f"channel closed: {describe(reason)}")

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        ack = isinstance(method, pika.spec.Basic.Ack)
        self.confirms.append((method.delivery_tag, bool(method.multiple), ack))

    def _on_return(self, _channel: Any, method: Any, properties: Any, _body: bytes) -> None:
        self.returns.append((method.exchange, method.routing_key, properties.message_id))

    def on_message(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        """``basic_consume`` callback: record the delivery for ``RabbitBus.poll``."""
        self.deliveries.append(delivery_of(method, properties, body))

    # --- the I/O pump ------------------------------------------------------------------------

    def pump(self, wait: float) -> None:
        """Run the I/O loop once: wait up to ``wait`` seconds for I/O, dispatch callbacks and timers."""
        self.raise_pending()
        ioloop = self._connection.ioloop
        timer = ioloop.call_later(max(wait, 0.0), _nothing)
        try:
            ioloop.poll()
            ioloop.process_timeouts()
        except (pika.exceptions.AMQPError, OSError) as error:
            self.fail(BusUnavailable(f"I/O failed: {describe(error)}"))
        finally:
            ioloop.remove_timeout(timer)
        self.raise_pending()

    def fail(self, error: BusError) -> BusError:
        """Record ``error`` unless one is already pending; the pending one (raised by the next pump)."""
        self._error = self._error or error
        return self._error

    def raise_pending(self) -> None:
        """Raise the error a callback or an earlier operation recorded, if any."""
        if self._error is not None:
            raise self._error

    def wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Pump until ``done()``; after ``timeout`` seconds the connection is unusable (``BusUnavailable``)."""
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._error = BusUnavailable(f"timed out waiting for {what}")
                raise self._error
            self.pump(min(remaining, SLICE))

    def call(self, start: Callable[..., None], what: str) -> Any:
        """Start an RPC (``start(callback=...)``) and wait for its answer frame."""
        answers: list[Any] = []
        try:
            start(callback=answers.append)
        except (pika.exceptions.AMQPError, OSError) as error:
            raise BusUnavailable(f"{what}: {describe(error)}") from error
        self.wait(lambda: bool(answers), RPC_TIMEOUT, what)
        return answers[0]

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


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and the causes pika's connection workflow wraps in it (refused, TLS, …), outermost first."""
    chain = [error]
    for _ in range(5):
        inner = getattr(error, "exceptions", None) or []
        cause = inner[-1] if inner else getattr(error, "exception", None)
        if not isinstance(cause, BaseException):
            break
        error = cause
        chain.append(error)
    return chain


def delivery_of(method: Any, properties: Any, body: bytes) -> Delivery:
    """A ``Delivery`` from what pika hands a ``basic.deliver`` or ``basic.get-ok`` callback."""
    return Delivery(
        delivery_tag=method.delivery_tag,
        body=body,
        content_type=properties.content_type,
        headers=dict(properties.headers or {}),
        message_id=properties.message_id,
        routing_key=method.routing_key,
        redelivered=bool(method.redelivered),
    )


def describe(error: BaseException) -> str:
    """Exception class and broker reply text (names of exchanges/queues, never message content).

    pika's connection workflow wraps the real cause (refused, TLS verification, …): unwrap it.
    """
    error = _causes(error)[-1]
    text = str(error)
    return f"{error.__class__.__name__}: {text}" if text else error.__class__.__name__
