"""Child processes of the bus benchmark: the raw pika loop (the ceiling) and the paced publisher.

``python -m benchmarks.bus_children pika-loop --queue Q --exchange X --routing-key K``
    consumes ``Q`` at ``--prefetch`` (100), publishes every body unchanged to ``X`` (persistent,
    same content type, id and headers) on the same confirm-mode channel, and acks the inputs
    (``multiple``) as soon as every publish up to them is confirmed. No work at all: the
    asynchronous ``SelectConnection`` shape of ``connector.bus.rabbitmq`` without ivpush.
    Prints ``consuming`` when the broker accepted the consumer, and its counts at SIGTERM.

``python -m benchmarks.bus_children offer --format hl7 --seed S --limit N --skip K --count M --rate R``
    regenerates the synthetic feed (deterministic by seed), skips its first ``K`` records and
    publishes the next ``M`` at a fixed rate of ``R`` messages/s (a few per 5 ms tick, with
    confirms), each stamped with its send time (``x-bench-sent-ns`` header, ``time.time_ns``).
    Prints ``[[message_id, sent_ns], ...]`` as JSON when done.

Both take the broker URL from ``IVPUSH_AMQP_URL``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import time
from itertools import islice
from typing import Any

import pika
from pika.adapters.select_connection import SelectConnection

SENT_HEADER = "x-bench-sent-ns"
TICK = 0.005


def message_id(body: bytes) -> str:
    """An input's id: the hash of its bytes (as ``ivpush publish`` does)."""
    return hashlib.sha256(body).hexdigest()[:32]


class PikaLoop:
    """Consume, republish with asynchronous confirms, ack once confirmed; nothing else."""

    def __init__(self, url: str, queue: str, exchange: str, routing_key: str, prefetch: int) -> None:
        self.queue, self.exchange, self.routing_key, self.prefetch = queue, exchange, routing_key, prefetch
        self.channel: Any = None
        self.pending: dict[int, int] = {}  # publish sequence → delivery tag, in publish order
        self.sequence = self.last_tag = self.acked = 0
        self.counts = {"received": 0, "confirmed": 0, "nacked": 0, "acks_sent": 0}
        self.connection = SelectConnection(pika.URLParameters(url), on_open_callback=self._on_open)

    def _on_open(self, connection: Any) -> None:
        connection.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: self._qos())

    def _qos(self) -> None:
        self.channel.basic_qos(prefetch_count=self.prefetch, callback=lambda _frame: self._consume())

    def _consume(self) -> None:
        self.channel.basic_consume(self.queue, self._on_message)
        print("consuming", flush=True)

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self.counts["received"] += 1
        outgoing = pika.BasicProperties(
            content_type=properties.content_type,
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=properties.message_id,
            headers=properties.headers,
        )
        channel.basic_publish(self.exchange, self.routing_key, body, properties=outgoing, mandatory=True)
        self.sequence += 1
        self.pending[self.sequence] = method.delivery_tag
        self.last_tag = method.delivery_tag

    def _on_confirm(self, frame: Any) -> None:
        tag, multiple = frame.method.delivery_tag, frame.method.multiple
        done = [s for s in self.pending if s <= tag] if multiple else [tag]
        for sequence in done:
            if self.pending.pop(sequence, None) is not None:
                self.counts["confirmed" if isinstance(frame.method, pika.spec.Basic.Ack) else "nacked"] += 1
        # Every delivery before the oldest unconfirmed publish is safe to ack.
        upto = next(iter(self.pending.values())) - 1 if self.pending else self.last_tag
        if upto > self.acked:
            self.channel.basic_ack(upto, multiple=True)
            self.acked = upto
            self.counts["acks_sent"] += 1

    def stop(self, *_args: object) -> None:
        """SIGTERM: close the connection; the I/O loop ends when it is closed."""
        self.connection.ioloop.add_callback_threadsafe(self._close)

    def _close(self) -> None:
        if self.connection.is_open:
            self.connection.close()
        self.connection.ioloop.stop()

    def run(self) -> None:
        """Run until stopped, then print the counts."""
        signal.signal(signal.SIGTERM, self.stop)
        self.connection.ioloop.start()
        print(json.dumps(self.counts), flush=True)


def offer(fmt: str, seed: int, limit: int, skip: int, count: int, rate: float, exchange: str) -> None:
    """Publish records ``skip..skip+count`` of a synthetic feed at ``rate``/s with send stamps."""
    # Imported here, not at the top: the pika loop must stay a bare pika program (and start fast).
    from connector.bus.base import Outgoing  # noqa: PLC0415
    from connector.bus.config import AmqpSettings  # noqa: PLC0415
    from connector.bus.inputs import CONTENT_TYPES, FORMAT_HEADER  # noqa: PLC0415
    from connector.bus.rabbitmq import RabbitBus  # noqa: PLC0415
    from connector.synth.render import records  # noqa: PLC0415

    bodies = list(islice(records(fmt, seed, limit=limit), skip, skip + count))
    bus = RabbitBus(AmqpSettings(url=os.environ["IVPUSH_AMQP_URL"], connection_name="ivpush bench offer"))
    sent: list[tuple[str, int]] = []
    started = time.monotonic()
    position = 0
    try:
        while position < len(bodies):
            due = min(len(bodies), int((time.monotonic() - started) * rate) + 1)
            batch = []
            for body in bodies[position:due]:
                ident = message_id(body)
                stamp = time.time_ns()
                headers = {FORMAT_HEADER: fmt, SENT_HEADER: stamp}
                batch.append(Outgoing(exchange, "bench", body, ident, CONTENT_TYPES[fmt], headers))
                sent.append((ident, stamp))
            if batch:
                report = bus.publish(batch, 30.0)
                if not report.complete:
                    raise SystemExit(f"offer: {len(batch) - len(report.confirmed)} inputs not confirmed")
                position = due
            next_at = started + position / rate
            time.sleep(max(0.0, min(TICK, next_at - time.monotonic())))
    finally:
        bus.close()
    print(json.dumps(sent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    loop = commands.add_parser("pika-loop", help="consume, republish with confirms, ack: no work")
    loop.add_argument("--queue", required=True)
    loop.add_argument("--exchange", required=True)
    loop.add_argument("--routing-key", required=True)
    loop.add_argument("--prefetch", type=int, default=100)
    paced = commands.add_parser("offer", help="publish part of a synthetic feed at a fixed rate")
    paced.add_argument("--format", dest="fmt", choices=("hl7", "fhir"), required=True)
    paced.add_argument("--seed", type=int, required=True)
    paced.add_argument("--limit", type=int, required=True)
    paced.add_argument("--skip", type=int, required=True)
    paced.add_argument("--count", type=int, required=True)
    paced.add_argument("--rate", type=float, required=True)
    paced.add_argument("--exchange", required=True)
    args = parser.parse_args()
    if args.command == "pika-loop":
        url = os.environ.get("IVPUSH_AMQP_URL")
        if not url:
            sys.exit("IVPUSH_AMQP_URL is not set")
        PikaLoop(url, args.queue, args.exchange, args.routing_key, args.prefetch).run()
    else:
        offer(args.fmt, args.seed, args.limit, args.skip, args.count, args.rate, args.exchange)


if __name__ == "__main__":
    main()
