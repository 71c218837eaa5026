"""Prometheus metrics of one consumer process, in a registry of its own.

Every metric lives in the ``CollectorRegistry`` of one ``Metrics`` object (never the process-wide
default registry), so that tests and several consumers in one process stay isolated. The
consumer and the relay always record into a ``Metrics`` (a fresh one when none is given): there
is no "metrics off" branch in the hot path, only an HTTP endpoint that may or may not serve it.

Labels carry codes only (input type, outcome, reject code, CPT code, action, format, reason):
bounded sets, never an identifier or any value from a message. ``docs/operations.md`` lists
every metric.

The state the health endpoints read (loop heartbeat, broker connected, last store probe, the
oldest pending outbox row) is kept here too, as plain attributes written by the consumer thread
and read by the HTTP thread: single assignments of floats/bools, atomic under the GIL.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

INPUT_TYPES = ("hl7v2", "fhir", "unknown")
OUTCOMES = ("accepted", "duplicate", "parked")
FAILURE_REASONS = ("returned", "nacked", "unconfirmed")
# What the consumer logs at ERROR level (``Metrics.error``): a batch retried delivery by delivery,
# an idle sweep that failed, an encounter the sweep could not charge, a store probe that failed.
ERROR_KINDS = ("batch_failed", "sweep_failed", "encounter_not_charged", "store_probe_failed")
# Confirms take ~1–50 ms on a healthy node; seconds mean a blocked or flow-controlled broker.
CONFIRM_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A batch (≤ prefetch deliveries, one transaction, park, ack) takes ms to seconds.
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The consumer's counters, gauges and histograms, and the state behind ``/healthz``/``/readyz``.

    Args:
        registry: Where the metrics are registered (default: a new, private registry).
        clock: Monotonic seconds (heartbeat and outbox ages).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.clock = clock
        self.wall = wall
        self.started_at = clock()
        self.last_heartbeat: float | None = None
        self.broker_connected = False
        self.store_ok: bool | None = None  # None: not probed yet
        self.store_checked_at: float | None = None
        self.outbox_oldest_since: float | None = None
        r = self.registry
        self.inputs = Counter(
            "ivpush_inputs_total",
            "Input records by type (hl7v2, fhir, unknown) and outcome (accepted, duplicate, parked).",
            ["type", "outcome"],
            registry=r,
        )
        self.rejects = Counter(
            "ivpush_rejects_total", "Parked deliveries by reject code (x-ivpush-error).", ["code"], registry=r
        )
        self.lines = Counter(
            "ivpush_charge_lines_total",
            "Charge lines queued, by CPT/HCPCS code and action (charge, credit).",
            ["code", "action"],
            registry=r,
        )
        self.administrations = Counter(
            "ivpush_administrations_total",
            "Administration outcomes stored (coded, no_line, needs_review) by reason code, counted when an "
            "administration's outcome is first stored or changes.",
            ["outcome", "reason"],
            registry=r,
        )
        self.charge_messages = Counter(
            "ivpush_charge_messages_total", "Charge messages (encounter deltas) queued to the outbox.", registry=r
        )
        self.published = Counter(
            "ivpush_outbox_published_total", "Outbox rows confirmed by the broker, by format.", ["format"], registry=r
        )
        self.publish_failures = Counter(
            "ivpush_outbox_publish_failures_total",
            "Outbox rows not confirmed: returned (unroutable), nacked or unconfirmed (timeout/connection lost).",
            ["reason"],
            registry=r,
        )
        self.confirm_latency = Histogram(
            "ivpush_publish_confirm_seconds",
            "Seconds from publishing a message to the broker's confirm (charges and parked inputs).",
            buckets=CONFIRM_BUCKETS,
            registry=r,
        )
        self.batch_latency = Histogram(
            "ivpush_batch_processing_seconds",
            "Seconds from a batch of deliveries being received to its ack (parse, commit, park, ack).",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batches = Counter("ivpush_batches_total", "Batches of deliveries committed and acked.", registry=r)
        self.deliveries = Counter("ivpush_deliveries_total", "Deliveries acked (accepted or parked).", registry=r)
        self.reconnects = Counter(
            "ivpush_reconnects_total", "Connection losses or transient failures followed by a reconnect.", registry=r
        )
        self.connected = Gauge("ivpush_broker_connected", "1 while consuming on an open connection.", registry=r)
        self.outbox_pending = Gauge(
            "ivpush_outbox_pending_messages",
            "Unconfirmed outbox rows at the relay's last look (counted up to its read size).",
            registry=r,
        )
        self.outbox_age = Gauge(
            "ivpush_outbox_oldest_pending_age_seconds",
            "Seconds since this process first saw the oldest still-pending outbox row (0: none).",
            registry=r,
        )
        self.outbox_age.set_function(self.outbox_oldest_age)
        self.encounters_failed = Counter(
            "ivpush_encounters_failed_total",
            "Encounters the idle sweep could not code or render (coding_failed, render_failed): left open, "
            "marked failed, skipped until new input arrives.",
            ["code"],
            registry=r,
        )
        self.encounters_open = Gauge(
            "ivpush_encounters_open", "Encounters not closed (refreshed at connect and every idle sweep).", registry=r
        )
        self.errors = Counter(
            "ivpush_errors_total",
            "Errors the consumer logged (level ERROR), by kind: batch_failed, sweep_failed, encounter_not_charged, "
            "store_probe_failed.",
            ["kind"],
            registry=r,
        )
        self.last_error = Gauge(
            "ivpush_last_error_timestamp_seconds",
            "Wall-clock time of the last error counted in ivpush_errors_total (0: none since start).",
            registry=r,
        )
        self.heartbeat_age = Gauge(
            "ivpush_loop_heartbeat_age_seconds", "Seconds since the consumer loop last reported alive.", registry=r
        )
        self.heartbeat_age.set_function(self.seconds_since_heartbeat)
        for kind in INPUT_TYPES:  # series exist at 0 from the start: rates work from the first scrape
            for outcome in OUTCOMES:
                self.inputs.labels(kind, outcome)
        for reason in FAILURE_REASONS:
            self.publish_failures.labels(reason)
        for kind in ERROR_KINDS:
            self.errors.labels(kind)

    # --- the consumer loop -----------------------------------------------------------------------

    def heartbeat(self) -> None:
        """The consumer loop is alive (called every poll, reconnect attempt and back-off step)."""
        self.last_heartbeat = self.clock()

    def seconds_since_heartbeat(self) -> float:
        """Seconds since the last heartbeat (since start when there was none yet)."""
        return self.clock() - (self.last_heartbeat if self.last_heartbeat is not None else self.started_at)

    def set_connected(self, connected: bool) -> None:
        """The broker connection is consuming (True) or gone (False)."""
        self.broker_connected = connected
        self.connected.set(1 if connected else 0)

    def reconnecting(self) -> None:
        """A transient failure closed the connection: a reconnect follows."""
        self.set_connected(False)
        self.reconnects.inc()

    def error(self, kind: str) -> None:
        """The consumer logged an error of this kind (one of ``ERROR_KINDS``)."""
        self.errors.labels(kind).inc()
        self.last_error.set(self.wall())

    def store_probed(self, ok: bool) -> None:
        """A store operation (or probe) succeeded or failed."""
        self.store_ok = ok
        self.store_checked_at = self.clock()

    # --- batches --------------------------------------------------------------------------------

    def input_outcomes(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Add input records by (type, outcome)."""
        for (kind, outcome), count in counts.items():
            if count:
                self.inputs.labels(kind, outcome).inc(count)

    def rejected(self, code: str) -> None:
        """One delivery parked with this reject code."""
        self.rejects.labels(code).inc()

    def charges_queued(
        self, messages: int, lines: Mapping[str, int], outcomes: Mapping[tuple[str, str], int] | None = None
    ) -> None:
        """Charge messages, lines and administration outcomes queued by one service call.

        ``lines`` by ``action:code`` (``service.Outcome.lines``); ``outcomes`` by (outcome, reason)
        (``service.Outcome.administration_outcomes``).
        """
        for (outcome, reason), count in (outcomes or {}).items():
            self.administrations.labels(outcome, reason).inc(count)
        if messages:
            self.charge_messages.inc(messages)
        for key, count in lines.items():
            action, _, code = key.partition(":")
            self.lines.labels(code, action).inc(count)

    def batch_done(self, deliveries: int, seconds: float) -> None:
        """A batch was committed and acked."""
        self.batches.inc()
        self.deliveries.inc(deliveries)
        self.batch_latency.observe(seconds)

    def encounter_failed(self, code: str) -> None:
        """One encounter could not be coded or rendered at close (``coding_failed``/``render_failed``)."""
        self.encounters_failed.labels(code).inc()

    def encounters(self, open_count: int) -> None:
        """Encounters currently open."""
        self.encounters_open.set(open_count)

    # --- the outbox relay -----------------------------------------------------------------------

    def outbox(self, pending: int, oldest_since: float | None) -> None:
        """The relay's view of the outbox: rows pending and when it first saw the oldest of them."""
        self.outbox_pending.set(pending)
        self.outbox_oldest_since = oldest_since

    def outbox_oldest_age(self) -> float:
        """Seconds the oldest pending row has waited, as seen by this process (0 when none)."""
        since = self.outbox_oldest_since
        return 0.0 if since is None else max(0.0, self.clock() - since)

    def confirmed(self, by_format: Mapping[str, int], latencies: list[float]) -> None:
        """Rows confirmed (by format) and the confirm latencies the bus measured."""
        for fmt, count in by_format.items():
            self.published.labels(fmt).inc(count)
        self.observe_confirms(latencies)

    def observe_confirms(self, latencies: list[float]) -> None:
        """Confirm latencies of any publish (charges or parked inputs)."""
        for seconds in latencies:
            if math.isfinite(seconds):
                self.confirm_latency.observe(seconds)

    def publish_failed(self, reason: str, count: int = 1) -> None:
        """Rows returned, nacked or left unconfirmed."""
        if count:
            self.publish_failures.labels(reason).inc(count)

    # --- reading (tests, readiness) -------------------------------------------------------------

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value from the registry (0.0 when it has not been recorded)."""
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found
