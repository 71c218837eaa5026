"""Parking poison inputs with their reason attached: publish a copy, wait for its confirm, then ack.

RabbitMQ's own dead-lettering (``basic.reject(requeue=False)``) cannot add headers, so the
consumer publishes each poison body to the parking exchange itself, with ``x-ivpush-error``
(code), ``x-ivpush-detail`` (no PHI) and ``x-ivpush-queue`` headers, and acks the original only
once every parked copy is confirmed. A copy the broker does not confirm raises
``BusUnavailable``: the batch stays unacked and comes back after the reconnect, so an input is
never dropped on its way to the parking queue.

A crash after the copies are confirmed but before the ack redelivers the batch, and its poison
is parked again. Every copy therefore carries a deterministic AMQP ``message_id``
(``parked_id``): the input's dedup key when the delivery was read as one record (an input whose
encounter could not be coded), else ``sha256:<hex digest of the body>``; the same input always
gets the same id, so re-driving tools and readers of the parking queue de-duplicate on it. The
sender's own ``message_id``, if any, moves to the ``x-ivpush-message-id`` header, and
``x-ivpush-parked-at`` records when it was parked (ISO 8601, UTC): ``ivpush parked`` filters on it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from connector.bus.base import Bus, Delivery, Outgoing
from connector.bus.control import ConsumerSettings
from connector.bus.errors import BusUnavailable
from connector.bus.topology import Topology
from connector.observability.metrics import Metrics

LOG = logging.getLogger("ivpush.bus")
ERROR_HEADER = "x-ivpush-error"
DETAIL_HEADER = "x-ivpush-detail"
QUEUE_HEADER = "x-ivpush-queue"
MESSAGE_ID_HEADER = "x-ivpush-message-id"
PARKED_AT_HEADER = "x-ivpush-parked-at"
MAX_ID_BYTES = 255  # an AMQP shortstr


@dataclass(frozen=True)
class Poison:
    """A delivery to park and why.

    Attributes:
        delivery: The input.
        code: Reject code (``x-ivpush-error``).
        detail: What is wrong, without PHI (``x-ivpush-detail``).
        dedup_key: The input's dedup key when it was read as one record, else None.
    """

    delivery: Delivery
    code: str
    detail: str
    dedup_key: str | None = None


def parked_id(poison: Poison) -> str:
    """The parked copy's ``message_id``: the dedup key (when one fits), else a digest of the body."""
    key = poison.dedup_key
    if key and len(key.encode("utf-8", "surrogatepass")) <= MAX_ID_BYTES and key.isprintable():
        return key
    return "sha256:" + hashlib.sha256(poison.delivery.body).hexdigest()


def park(bus: Bus, poison: list[Poison], topology: Topology, settings: ConsumerSettings, metrics: Metrics) -> None:
    """Publish poison bodies to the parking exchange with reason headers; wait for the confirms."""
    messages = [_copy(item, topology, settings) for item in poison]
    report = bus.publish(messages, settings.confirm_timeout, settings.publish_window)
    metrics.observe_confirms(report.confirm_seconds)
    if not report.complete:
        raise BusUnavailable(
            f"parking not confirmed ({len(report.returned)} returned, {len(report.nacked)} nacked, "
            f"{len(report.unconfirmed)} unknown)"
        )
    for item in poison:
        ident = item.delivery.message_id or f"tag {item.delivery.delivery_tag}"
        LOG.warning("parked input %s: %s", ident, item.code, extra={"input": ident, "code": item.code})


def _copy(poison: Poison, topology: Topology, settings: ConsumerSettings) -> Outgoing:
    delivery = poison.delivery
    headers = {**delivery.headers, ERROR_HEADER: poison.code, DETAIL_HEADER: poison.detail[:500]}
    headers[QUEUE_HEADER] = settings.queue
    headers[PARKED_AT_HEADER] = parked_at()
    if delivery.message_id is not None:
        headers[MESSAGE_ID_HEADER] = delivery.message_id
    return Outgoing(
        exchange=topology.parking_exchange,
        routing_key=delivery.routing_key,
        body=delivery.body,
        message_id=parked_id(poison),
        content_type=delivery.content_type,
        headers=headers,
        key=delivery.delivery_tag,
    )


def parked_at() -> str:
    """The ``x-ivpush-parked-at`` value for now: ``2026-03-02T10:04:05Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
