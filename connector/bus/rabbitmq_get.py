"""``basic.get`` and ``basic.nack(requeue)`` on a ``RabbitBus``: reading a queue without taking from it.

``ivpush parked`` reads the parking queues message by message (``get``), keeps every message it
does not act on unacknowledged until it is done, then hands them all back with one
``basic.nack(multiple, requeue)`` (``release``). Holding them until the end is what makes a
scan finite: a message handed back at once would be the next one ``basic.get`` returns. A
``nack`` rather than a ``reject``: from RabbitMQ 4.3 a ``basic.reject`` with requeue counts
towards a quorum queue's delivery limit and a ``basic.nack`` does not (nor is a reader's look
a failed delivery). If the connection is lost instead, the broker returns them all by itself.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pika.exceptions
import pika.spec

from connector.bus.base import Delivery
from connector.bus.config import AmqpSettings
from connector.bus.errors import BusUnavailable
from connector.bus.rabbitmq import RabbitBus
from connector.bus.rabbitmq_connection import CONNECT_TIMEOUT, RPC_TIMEOUT, delivery_of, describe


class RabbitReader(RabbitBus):
    """A ``RabbitBus`` that can also get single messages and hand unacknowledged ones back."""

    def __init__(self, settings: AmqpSettings, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        super().__init__(settings, connect_timeout)
        self._answer: list[Delivery | None] = []
        self._link.channel.add_callback(self._on_empty, [pika.spec.Basic.GetEmpty], one_shot=False)

    def get(self, queue: str) -> Delivery | None:
        """The next ready message of ``queue``, unacknowledged; None when there is none.

        Raises:
            TopologyError: The queue does not exist (404).
            BusUnavailable: The connection was lost.
        """
        answer: list[Delivery | None] = []
        self._answer = answer
        try:
            self._link.channel.basic_get(queue, partial(self._on_get, answer), auto_ack=False)
        except (pika.exceptions.AMQPError, OSError) as error:
            raise BusUnavailable(f"basic.get: {describe(error)}") from error
        self._link.wait(lambda: bool(answer), RPC_TIMEOUT, f"basic.get {queue}")
        found: Delivery | None = answer[0]
        return found

    def release(self, delivery_tag: int, multiple: bool = True) -> None:
        """Hand unacknowledged messages back to their queue (``basic.nack`` with requeue)."""
        self._link.raise_pending()
        try:
            self._link.channel.basic_nack(delivery_tag, multiple=multiple, requeue=True)
        except (pika.exceptions.AMQPError, OSError) as error:
            raise BusUnavailable(f"basic.nack: {describe(error)}") from error
        self._link.pump(0)

    def _on_get(self, answer: list[Delivery | None], _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        answer.append(delivery_of(method, properties, body))

    def _on_empty(self, _frame: Any) -> None:
        self._answer.append(None)
