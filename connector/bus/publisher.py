"""Publishing archived inputs to the input exchange (``ivpush publish``, the live demo, tests)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from connector.adapters.archive import Record
from connector.bus.base import Bus, Outgoing, PublishReport
from connector.bus.inputs import CONTENT_TYPES, FORMAT_HEADER
from connector.bus.topology import Topology


def input_message(record: Record, topology: Topology, routing_key: str = "ivpush.input") -> Outgoing:
    """One record as an input message (content type by format; ``message_id`` = hash of the bytes)."""
    headers: dict[str, object] = {FORMAT_HEADER: record.format} if record.format in CONTENT_TYPES else {}
    return Outgoing(
        exchange=topology.input_exchange,
        routing_key=routing_key,
        body=record.data,
        message_id=hashlib.sha256(record.data).hexdigest()[:32],
        content_type=CONTENT_TYPES.get(record.format, "application/octet-stream"),
        headers=headers,
    )


def publish_all(
    bus: Bus,
    messages: Iterable[Outgoing],
    rate: float | None = None,
    chunk: int = 500,
    timeout: float = 30.0,
    interrupted: Callable[[], bool] | None = None,
) -> PublishReport:
    """Publish with confirms, at most ``rate`` messages a second (None: as fast as confirms allow)."""
    total = PublishReport()
    step = max(1, min(chunk, int(rate / 10))) if rate else chunk
    started = time.monotonic()
    sent = 0
    source: Iterator[Outgoing] = iter(messages)
    while batch := list(islice(source, step)):
        if interrupted is not None and interrupted():
            break
        report = bus.publish(batch, timeout)
        for name in ("confirmed", "returned", "nacked", "unconfirmed"):
            getattr(total, name).extend(getattr(report, name))
        sent += len(batch)
        if rate:
            ahead = started + sent / rate - time.monotonic()
            if ahead > 0:
                bus.sleep(ahead, interrupted)
    return total
