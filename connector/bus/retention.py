"""The consumer's periodic purge of old dedup keys and sent outbox rows (``retention.state_days``).

Every ``every`` seconds the consumer deletes, from the store, the dedup keys first seen and the
outbox rows confirmed more than ``keep_seconds`` ago (``Store.purge``), at most ``limit`` of
each per run, in small transactions, on the consumer's own thread (connections are not shared).
A run that hit the limit is followed by another at the next turn of the loop, after the
deliveries in hand, so a large backlog (the first purge of a store kept for years) is worked off
between batches rather than by stopping the consumer. A failed run is logged (the error's class
only) and retried at the next due time. ``ivpush state purge`` runs the same purge by hand.

Metrics (on the consumer's registry): ``ivpush_state_purged_rows_total{table}`` (``seen``,
``outbox``), ``ivpush_state_purges_total{outcome}`` (``ok``, ``failed``) and
``ivpush_state_purge_last_success_timestamp_seconds``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge

from connector.observability.metrics import Metrics
from connector.store.base import Purged, Store

LOG = logging.getLogger("ivpush.bus")
DEFAULT_LIMIT = 50_000  # rows of each kind per run


class RetentionMetrics:
    """The purge's metrics, registered on a ``Metrics`` registry."""

    def __init__(self, metrics: Metrics) -> None:
        registry = metrics.registry
        self.rows = Counter(
            "ivpush_state_purged_rows_total",
            "Rows deleted by the retention purge: seen (dedup keys), outbox (sent rows).",
            ["table"],
            registry=registry,
        )
        self.runs = Counter(
            "ivpush_state_purges_total",
            "Retention purges run, by outcome (ok, failed).",
            ["outcome"],
            registry=registry,
        )
        self.last = Gauge(
            "ivpush_state_purge_last_success_timestamp_seconds",
            "Wall-clock time of the last purge that completed (0: none yet).",
            registry=registry,
        )
        for table in ("seen", "outbox"):
            self.rows.labels(table)
        for outcome in ("ok", "failed"):
            self.runs.labels(outcome)

    def purged(self, found: Purged, at: float) -> None:
        """A purge run completed."""
        self.rows.labels("seen").inc(found.dedup_keys)
        self.rows.labels("outbox").inc(found.outbox_rows)
        self.runs.labels("ok").inc()
        self.last.set(at)

    def failed(self) -> None:
        """A purge run failed."""
        self.runs.labels("failed").inc()


class Retention:
    """When and how much to purge (see the module docstring).

    Args:
        store: The consumer's store.
        keep_seconds: Age beyond which rows are deleted.
        every: Seconds between runs.
        metrics: The consumer's metrics (the purge's own are registered on its registry).
        limit: Rows of each kind per run.
        clock: Wall-clock seconds (the cut-off).
        monotonic: Monotonic seconds (scheduling).
    """

    def __init__(
        self,
        store: Store,
        keep_seconds: float,
        every: float,
        metrics: Metrics,
        limit: int = DEFAULT_LIMIT,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.keep_seconds = keep_seconds
        self.every = every
        self.limit = limit
        self.metrics = RetentionMetrics(metrics)
        self._clock = clock
        self._monotonic = monotonic
        self._next = monotonic()  # the first run comes at start

    def due(self) -> bool:
        """Whether a run is due."""
        return self._monotonic() >= self._next

    def run(self) -> Purged | None:
        """Purge once (None: it failed and was logged)."""
        now = self._clock()
        try:
            found = self.store.purge(now - self.keep_seconds, self.limit)
        except Exception as error:  # noqa: BLE001 - a failed purge is retried at the next due time
            self.metrics.failed()
            self._next = self._monotonic() + self.every
            LOG.warning("state purge failed (%s); retried in %.0fs", error.__class__.__name__, self.every)
            return None
        self.metrics.purged(found, now)
        more = found.dedup_keys >= self.limit or found.outbox_rows >= self.limit
        self._next = self._monotonic() + (0.0 if more else self.every)
        if found.dedup_keys or found.outbox_rows:
            LOG.info(
                "state purge: %d dedup keys and %d sent outbox rows older than %.0f days deleted%s",
                found.dedup_keys, found.outbox_rows, self.keep_seconds / 86400, " (more to go)" if more else "",
                extra={"dedup_keys": found.dedup_keys, "outbox_rows": found.outbox_rows},
            )  # fmt: skip
        return found
