"""Publishing with a confirm window on a ``RabbitConnection``: what ``RabbitBus.publish`` guarantees.

Waiting for each confirm before the next publish is what makes ``BlockingChannel`` slow, so up
to ``window`` messages are in flight and their confirms are matched back to them as they come.
A message counts as *confirmed* only on the broker's ack **without** a return before it:
``mandatory`` publishes that no queue takes come back as a return followed by an ack, and the
outbox must keep such a row. Everything not settled when the time is up or the connection is
lost is reported *unconfirmed*: its fate is unknown, so the caller treats it as not sent (the
relay publishes it again with the same ``message_id``).

``on_sent`` is called for each message after the I/O pump that wrote it, before its confirm is
matched: the relay always passes it (crash injection's ``after_publish`` point, a no-op unless
armed), so the code under test is the code that runs in production.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

import pika
import pika.exceptions

from connector.bus.base import Outgoing, PublishReport
from connector.bus.errors import BusUnavailable
from connector.bus.rabbitmq_connection import SLICE, RabbitConnection, describe


def publish(
    link: RabbitConnection,
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
    link.confirms.clear()
    link.returns.clear()
    written: list[Outgoing] = []  # handed to the connection since the last pump
    while queue or waiting:
        while queue and len(waiting) < window:
            message = queue.popleft()
            _send(link, message)
            waiting[link.publish_tag] = message
            sent_at[link.publish_tag] = time.monotonic()
            written.append(message)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            link.pump(min(remaining, SLICE))
        except BusUnavailable:
            report.unconfirmed.extend(m.ident for m in waiting.values())
            report.unconfirmed.extend(m.ident for m in queue)
            raise
        if on_sent is not None:
            for message in written:  # out on the socket; its confirm not yet matched
                on_sent(message)
        written.clear()
        _settle(link, waiting, returned, report, sent_at)
    report.unconfirmed.extend(m.ident for m in waiting.values())
    report.unconfirmed.extend(m.ident for m in queue)
    return report


def _send(link: RabbitConnection, message: Outgoing) -> None:
    properties = pika.BasicProperties(
        content_type=message.content_type,
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=message.message_id,
        headers=dict(message.headers) or None,
    )
    try:
        link.channel.basic_publish(
            message.exchange, message.routing_key, message.body, properties=properties, mandatory=True
        )
    except (pika.exceptions.AMQPError, OSError) as error:
        raise link.fail(BusUnavailable(f"basic.publish: {describe(error)}")) from error
    link.publish_tag += 1


def _settle(
    link: RabbitConnection,
    waiting: dict[int, Outgoing],
    returned: set[int],
    report: PublishReport,
    sent_at: dict[int, float],
) -> None:
    """Match returns and confirms to the messages waiting for them."""
    now = time.monotonic()
    for exchange, routing_key, message_id in link.returns:
        for tag in sorted(waiting):  # a return precedes its message's confirm: the oldest match
            m = waiting[tag]
            if tag not in returned and (m.exchange, m.routing_key, m.message_id) == (
                exchange,
                routing_key,
                message_id,
            ):
                returned.add(tag)
                break
    link.returns.clear()
    for delivery_tag, multiple, ack in link.confirms:
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
    link.confirms.clear()
