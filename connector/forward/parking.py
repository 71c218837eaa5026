"""Parking what the receiver refused: a copy with reason headers, confirmed, then the ack.

Refused DFT messages go to a queue of their own (``forward.parking_queue``, default
``<prefix>.out.dft.parking``; a fanout exchange of the same name feeds it), not to the parking
queue of *inputs*: they are outputs, and re-driving one means sending it to the receiver again,
not coding it again. ``ivpush forward`` declares both at connect.

Headers (no PHI): ``x-ivpush-error`` (``receiver_ae``, ``receiver_ar``, ``receiver_ce``,
``receiver_cr``, or ``no_ack`` after ``max_attempts``), ``x-ivpush-ack-code`` (MSA-1),
``x-ivpush-err-code`` (ERR-3.1 when it is a code), ``x-ivpush-detail`` (a fixed sentence),
``x-ivpush-queue`` (where it came from), ``x-ivpush-parked-at`` (when, ISO 8601 UTC), plus the
message's own headers. The receiver's MSA-3 and ERR-8 texts are not kept: a receiver may quote
the patient in them. ``ivpush parked --queue out.dft`` lists, exports, re-sends and purges them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from connector.bus.base import Bus, Delivery, Outgoing
from connector.bus.errors import BusUnavailable
from connector.bus.parking import DETAIL_HEADER, ERROR_HEADER, PARKED_AT_HEADER, QUEUE_HEADER, parked_at
from connector.bus.topology import QUORUM, BindingSpec, ExchangeSpec, QueueSpec, Topology
from connector.forward.ack import Ack

LOG = logging.getLogger("ivpush.forward")
ACK_CODE_HEADER = "x-ivpush-ack-code"
ERR_CODE_HEADER = "x-ivpush-err-code"
NO_ACK = "no_ack"
CONFIRM_TIMEOUT = 30.0


@dataclass(frozen=True)
class ParkingTopology(Topology):
    """Only the forwarder's parking exchange and queue (what ``Bus.declare`` is given)."""

    parking_name: str = ""

    def exchanges(self) -> list[ExchangeSpec]:
        """The fanout exchange named like the queue."""
        return [ExchangeSpec(self.parking_name, "fanout")]

    def queues(self) -> list[QueueSpec]:
        """The quorum queue."""
        return [QueueSpec(self.parking_name, dict(QUORUM))]

    def bindings(self) -> list[BindingSpec]:
        """The queue bound to its exchange."""
        return [BindingSpec(self.parking_name, self.parking_name, "")]


@dataclass(frozen=True)
class Refusal:
    """Why a message is parked: codes and a fixed sentence only."""

    code: str
    detail: str
    ack_code: str = ""
    err_code: str = ""

    @classmethod
    def of(cls, ack: Ack) -> Refusal:
        """The refusal an ``AE``/``AR``/``CE``/``CR`` ACK means."""
        return cls(f"receiver_{ack.code.lower()}", f"the receiver answered {ack.code}", ack.code, ack.error_code)

    @classmethod
    def no_ack(cls, attempts: int, reason: str) -> Refusal:
        """Out of attempts without a usable ACK (``reason``: the last failure's code)."""
        return cls(NO_ACK, f"no usable ACK after {attempts} attempts (last: {reason})")


def park(bus: Bus, delivery: Delivery, refusal: Refusal, parking_name: str, source_queue: str) -> None:
    """Publish the refused message to the parking exchange and wait for the confirm.

    Raises:
        BusUnavailable: Not confirmed (the delivery stays unacked and comes back).
    """
    headers: dict[str, object] = {
        **delivery.headers,
        ERROR_HEADER: refusal.code,
        DETAIL_HEADER: refusal.detail,
        QUEUE_HEADER: source_queue,
        PARKED_AT_HEADER: parked_at(),
    }
    if refusal.ack_code:
        headers[ACK_CODE_HEADER] = refusal.ack_code
    if refusal.err_code:
        headers[ERR_CODE_HEADER] = refusal.err_code
    message = Outgoing(
        exchange=parking_name,
        routing_key=delivery.routing_key,
        body=delivery.body,
        message_id=delivery.message_id,
        content_type=delivery.content_type,
        headers=headers,
        key=delivery.delivery_tag,
    )
    report = bus.publish([message], CONFIRM_TIMEOUT, 1)
    if not report.complete:
        raise BusUnavailable(f"parking in {parking_name} not confirmed")
    ident = delivery.message_id or f"tag {delivery.delivery_tag}"
    LOG.warning(
        "parked %s in %s: %s", ident, parking_name, refusal.code,
        extra={"message_id": ident, "code": refusal.code, "ack_code": refusal.ack_code},  # ERR-3.1: headers only
    )  # fmt: skip
