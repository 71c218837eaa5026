"""The outbox relay: publish unsent charge messages with confirms; mark a row sent only on its confirm.

A row the broker returns (unroutable: ``mandatory``) or nacks stays unsent and is retried
with capped exponential back-off; each such event is logged at WARNING (the alert). A lost
connection leaves every unconfirmed row unsent: it is published again after the reconnect with
the same ``message_id`` (downstream de-duplicates on it).

Metrics: rows confirmed (by format), returned/nacked/unconfirmed, confirm latency, and the
outbox depth and the age of its oldest row. Rows carry no timestamp, so the age is measured
from when this relay first saw the row pending (``_first_seen``); a restart starts it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from connector.bus.backoff import Backoff
from connector.bus.base import Bus, Outgoing
from connector.bus.errors import BusUnavailable
from connector.bus.faults import Faults
from connector.bus.topology import CONTENT_TYPES, SCHEMAS, Topology
from connector.observability.metrics import Metrics
from connector.store.base import OutboxRow, Store

LOG = logging.getLogger("ivpush.bus")
Key = tuple[str, str]


@dataclass
class RelayStats:
    """Counts since start (no PHI)."""

    published: int = 0
    returned: int = 0
    nacked: int = 0


def outgoing(row: OutboxRow, topology: Topology) -> Outgoing:
    """The AMQP message for an outbox row (id, encounter key, format and schema in headers)."""
    return Outgoing(
        exchange=topology.output_exchange,
        routing_key=topology.routing_key(row.format),
        body=row.body,
        message_id=row.message_id,
        content_type=CONTENT_TYPES.get(row.format),
        headers={"encounter_key": row.encounter_key, "format": row.format, "schema": SCHEMAS.get(row.format, "")},
        key=(row.message_id, row.format),
    )


class Relay:
    """Drains a store's outbox to the output exchange."""

    def __init__(
        self,
        store: Store,
        topology: Topology,
        faults: Faults | None = None,
        window: int = 500,
        confirm_timeout: float = 30.0,
        batch: int = 1000,
        retry_base: float = 1.0,
        retry_cap: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.topology = topology
        self.faults = faults or Faults()
        self.window = window
        self.confirm_timeout = confirm_timeout
        self.batch = batch
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.clock = clock
        self.stats = RelayStats()
        self.metrics = metrics if metrics is not None else Metrics(clock=clock)
        self._retry: dict[Key, tuple[Backoff, float]] = {}
        self._first_seen: dict[Key, float] = {}  # pending row → when this relay first saw it

    def due(self) -> bool:
        """Some returned/nacked row's back-off has passed."""
        now = self.clock()
        return any(at <= now for _, at in self._retry.values())

    @property
    def waiting(self) -> int:
        """Rows waiting for a retry after a return or nack."""
        return len(self._retry)

    def drain(self, bus: Bus, deadline: float | None = None) -> int:
        """Publish every due unsent row; the count confirmed.

        Args:
            bus: The connection to publish on.
            deadline: ``clock()`` time to stop at (graceful shutdown); None: until done.

        Raises:
            BusUnavailable: The connection was lost or confirms did not arrive in time.
        """
        confirmed_total = 0
        while True:
            now = self.clock()
            self.metrics.heartbeat()  # a long backlog drains in many rounds: the loop is alive
            pending = self.store.pending(self.batch + len(self._retry))
            self._seen_pending(pending)
            rows = [row for row in pending if self._retry.get((row.message_id, row.format), (None, 0.0))[1] <= now][
                : self.batch
            ]
            if not rows:
                return confirmed_total
            timeout = self.confirm_timeout if deadline is None else max(0.1, min(self.confirm_timeout, deadline - now))
            messages = [outgoing(row, self.topology) for row in rows]
            try:  # the hook is always passed: armed faults only decide whether it exits (production's path)
                report = bus.publish(messages, timeout, self.window, self._on_sent)
            except BusUnavailable:
                self.metrics.publish_failed("unconfirmed", len(rows))
                raise
            confirmed = [key for key in report.confirmed if isinstance(key, tuple)]
            if confirmed:
                self.faults.hit("after_confirm")
                self.store.mark_sent(confirmed)
                for key in confirmed:
                    self._retry.pop(key, None)
                confirmed_total += len(confirmed)
                self.stats.published += len(confirmed)
            self._count_confirmed(confirmed, report.confirm_seconds, len(pending))
            for ident in report.returned:
                self.stats.returned += 1
                self._schedule(ident, "unroutable (returned by the broker)")
            for ident in report.nacked:
                self.stats.nacked += 1
                self._schedule(ident, "refused (nack)")
            self.metrics.publish_failed("returned", len(report.returned))
            self.metrics.publish_failed("nacked", len(report.nacked))
            self.metrics.publish_failed("unconfirmed", len(report.unconfirmed))
            if report.unconfirmed:
                raise BusUnavailable(f"{len(report.unconfirmed)} charge messages not confirmed in {timeout:.0f}s")
            if not confirmed or (deadline is not None and self.clock() >= deadline):
                return confirmed_total

    def _seen_pending(self, pending: list[OutboxRow]) -> None:
        """Remember when each pending row was first seen (on the metrics' clock); publish depth and age."""
        now = self.metrics.clock()
        first = self._first_seen
        self._first_seen = {(row.message_id, row.format): now for row in pending}
        for key in self._first_seen.keys() & first.keys():
            self._first_seen[key] = first[key]
        self.metrics.outbox(len(pending), min(self._first_seen.values(), default=None))

    def _count_confirmed(self, confirmed: list[Key], latencies: list[float], pending: int) -> None:
        by_format: dict[str, int] = {}
        for key in confirmed:
            self._first_seen.pop(key, None)
            by_format[key[1]] = by_format.get(key[1], 0) + 1
        self.metrics.confirmed(by_format, latencies)
        self.metrics.outbox(pending - len(confirmed), min(self._first_seen.values(), default=None))

    def _on_sent(self, _message: Outgoing) -> None:
        self.faults.hit("after_publish")

    def _schedule(self, key: object, why: str) -> None:
        if not isinstance(key, tuple):
            return
        backoff, _ = self._retry.get(key, (Backoff(self.retry_base, self.retry_cap), 0.0))
        delay = backoff.next_delay()
        self._retry[key] = (backoff, self.clock() + delay)
        LOG.warning(
            "charge message %s (%s) %s; attempt %d, retry in %.1fs", key[0], key[1], why, backoff.attempt, delay
        )
