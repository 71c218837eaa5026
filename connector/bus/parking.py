"""Parking poison inputs with their reason attached: publish a copy, wait for its confirm, then ack.

RabbitMQ's own dead-lettering (``basic.reject(requeue=False)``) cannot add headers, so the
consumer publishes each poison body to the parking exchange itself, with ``x-ivpush-error``
(code), ``x-ivpush-detail`` (no PHI) and ``x-ivpush-queue`` headers, and acks the original only
once every parked copy is confirmed. A copy the broker does not confirm raises
``BusUnavailable``: the batch stays unacked and comes back after the reconnect, so an input is
never dropped on its way to the parking queue.
"""

from __future__ import annotations

import logging

from connector.bus.base import Bus, Delivery, Outgoing
from connector.bus.control import ConsumerSettings
from connector.bus.errors import BusUnavailable
from connector.bus.topology import Topology
from connector.observability.metrics import Metrics

LOG = logging.getLogger("ivpush.bus")
ERROR_HEADER = "x-ivpush-error"
DETAIL_HEADER = "x-ivpush-detail"
QUEUE_HEADER = "x-ivpush-queue"
Poison = tuple[Delivery, str, str]  # (delivery, reject code, detail without PHI)


def park(bus: Bus, poison: list[Poison], topology: Topology, settings: ConsumerSettings, metrics: Metrics) -> None:
    """Publish poison bodies to the parking exchange with reason headers; wait for the confirms."""
    messages = [
        Outgoing(
            exchange=topology.parking_exchange,
            routing_key=delivery.routing_key,
            body=delivery.body,
            message_id=delivery.message_id,
            content_type=delivery.content_type,
            headers={
                **delivery.headers,
                ERROR_HEADER: code,
                DETAIL_HEADER: detail[:500],
                QUEUE_HEADER: settings.queue,
            },
            key=delivery.delivery_tag,
        )
        for delivery, code, detail in poison
    ]
    report = bus.publish(messages, settings.confirm_timeout, settings.publish_window)
    metrics.observe_confirms(report.confirm_seconds)
    if not report.complete:
        raise BusUnavailable(
            f"parking not confirmed ({len(report.returned)} returned, {len(report.nacked)} nacked, "
            f"{len(report.unconfirmed)} unknown)"
        )
    for delivery, code, _detail in poison:
        ident = delivery.message_id or f"tag {delivery.delivery_tag}"
        LOG.warning("parked input %s: %s", ident, code, extra={"input": ident, "code": code})
