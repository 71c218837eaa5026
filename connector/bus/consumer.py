"""The consumer loop: the delivery contract of rabbitmq-notes.md, batch by batch.

For each batch of deliveries (up to ``batch_size``, or what arrived within ``batch_wait`` of
the first one): parse, commit in one store transaction, park the poison, ack
(``batch.BatchProcessor``, with ``parking``), then relay the outbox (``relay.Relay``):
confirmed rows are marked sent. This module owns what surrounds the batches (connecting,
relaying, sweeping, reconnecting, stopping) so that every failure ends in a reconnect or a
parked input and the consumer never dies on an input.

A crash anywhere loses nothing: before the ack the batch is redelivered and its dedup keys make
the committed part an ack-only; the outbox is relayed again after a restart. The broker's
``delivery-limit`` policy is the last resort for anything else that keeps failing.

Transient failures (broker gone, channel closed, confirms missing, store locked) close the
connection and reconnect with capped exponential back-off and jitter; unacked deliveries
come back. Two start-up failures are not retried for ever: a ``ConfigError`` (a URL pika cannot
read, TLS files) is raised at once, and a broker that refuses the credentials or the virtual
host ``auth_attempts`` times in a row raises ``AccessRefused`` (``ivpush consume`` exits 2
and 3).

A periodic sweep closes encounters idle for ``idle_seconds`` (``Service.close``) and relays
what that emitted: idempotent, so several consumers may sweep the same store. An
encounter the sweep cannot code or render stays open, marked failed in the store (logged with
its key and code, counted in ``ivpush_encounters_failed_total``); the others close, and later
sweeps skip it until new input arrives for it. With ``retention`` (``retention.state_days``),
old dedup keys and sent outbox rows are purged between batches (``bus.retention``).

Metrics (``observability.Metrics``, always recorded): inputs by type and outcome, rejects by
code, lines by code and action, batches and their latency, reconnects, encounters open; the
loop heartbeat, connection state and a periodic store probe (run here, on the consumer's
thread: connections are not shared with the HTTP thread) feed ``/healthz`` and ``/readyz``.

Shutdown (``Stop``): the first SIGTERM/SIGINT stops consuming, finishes the batch in hand
(commit, park, ack), relays the outbox until ``shutdown_deadline`` and closes: exit 0. A
second signal exits at once (everything unacked is redelivered).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from connector.bus.backoff import Backoff
from connector.bus.base import Bus, Delivery
from connector.bus.batch import BatchProcessor, Parse
from connector.bus.control import TRANSIENT, ConsumerSettings, ConsumerStats, Stop, TransientError, is_transient
from connector.bus.errors import AccessRefused, BusError, BusUnavailable, ConfigError
from connector.bus.faults import Faults
from connector.bus.relay import Relay
from connector.bus.retention import Retention
from connector.bus.topology import Topology
from connector.observability.metrics import Metrics
from connector.service import Service

__all__ = ["Consumer", "ConsumerSettings", "ConsumerStats", "Stop", "TransientError", "is_transient"]

LOG = logging.getLogger("ivpush.bus")
STORE_PROBE_EVERY = 5.0  # seconds between store probes while idle (readiness)


class Consumer:
    """Consumes the input queue under the delivery contract (see the module docstring)."""

    def __init__(
        self,
        connect: Callable[[], Bus],
        service: Service,
        parse: Parse,
        topology: Topology,
        settings: ConsumerSettings,
        stop: Stop | None = None,
        faults: Faults | None = None,
        declare: bool = True,
        metrics: Metrics | None = None,
        retention: Retention | None = None,
    ) -> None:
        self.connect = connect
        self.retention = retention  # periodic purge of old dedup keys and sent outbox rows
        self.service = service
        self.topology = topology
        self.settings = settings
        self.stop = stop or Stop()
        self.faults = faults or Faults()
        self.declare = declare
        self.stats = ConsumerStats()
        self.metrics = metrics if metrics is not None else Metrics()
        self.relay = Relay(
            service.store,
            topology,
            self.faults,
            window=settings.publish_window,
            confirm_timeout=settings.confirm_timeout,
            retry_base=settings.retry_base,
            retry_cap=settings.retry_cap,
            metrics=self.metrics,
        )
        self.batches = BatchProcessor(service, parse, topology, settings, self.faults, self.stats, self.metrics)
        self._backoff = Backoff(settings.reconnect_base, settings.reconnect_cap)
        self._refused = 0  # connection attempts the broker refused in a row

    def run(self) -> ConsumerStats:
        """Consume until stopped, reconnecting after transient failures."""
        while not self.stop.requested:
            bus: Bus | None = None
            self.metrics.heartbeat()
            try:
                bus = self.connect()
                self._refused = 0
                self.stats.connects += 1
                if self.declare:
                    bus.declare(self.topology)
                LOG.info(
                    "connected (connection %d); consuming %s, prefetch %d, batch %d",
                    self.stats.connects,
                    self.settings.queue,
                    self.settings.prefetch,
                    self.settings.batch_size,
                )
                self.relay.drain(bus)  # what a previous run left unconfirmed
                bus.consume(self.settings.queue, self.settings.prefetch)
                self.metrics.set_connected(True)
                self._count_open()
                self._loop(bus)
                self._finish(bus)
                bus = None
            except ConfigError:
                raise  # the settings will not change by retrying: ``ivpush consume`` exits 2
            except TRANSIENT as error:
                if bus is not None:
                    bus.close()
                self.metrics.reconnecting()
                self._give_up_when_refused(error)
                if self.stop.requested:
                    break
                delay = self._backoff.next_delay()
                LOG.warning(
                    "%s: %s; reconnecting in %.1fs", error.__class__.__name__, _own_text(error), delay,
                    extra={"error": error.__class__.__name__, "delay_seconds": round(delay, 3)},
                )  # fmt: skip
                self._back_off(delay)
        self.metrics.set_connected(False)
        LOG.info(
            "stopped: %d batches, %d deliveries, %d duplicates, %d parked, %d charge messages queued, %d published",
            self.stats.batches,
            self.stats.deliveries,
            self.stats.duplicates,
            self.stats.parked,
            self.stats.messages,
            self.relay.stats.published,
        )
        return self.stats

    def _give_up_when_refused(self, error: BaseException) -> None:
        """Re-raise a broker refusal (credentials, virtual host) once ``auth_attempts`` came in a row."""
        if not isinstance(error, AccessRefused):
            return
        self._refused += 1
        if self._refused >= self.settings.auth_attempts:
            self.metrics.set_connected(False)
            raise AccessRefused(f"the broker refused access {self._refused} times in a row ({error})") from error

    def _back_off(self, delay: float) -> None:
        """Wait before reconnecting, beating the heartbeat: a broker outage is no reason to restart."""
        deadline = time.monotonic() + delay
        while not self.stop.requested and (remaining := deadline - time.monotonic()) > 0:
            self.metrics.heartbeat()
            self.stop.wait(min(remaining, 5.0))

    def _loop(self, bus: Bus) -> None:
        settings = self.settings
        next_sweep = time.monotonic() + settings.sweep_every
        next_probe = time.monotonic() + STORE_PROBE_EVERY
        while not self.stop.requested:
            self.metrics.heartbeat()
            deliveries = bus.poll(
                settings.batch_size, settings.poll_timeout, settings.batch_wait, lambda: self.stop.requested
            )
            if deliveries:
                self.process(bus, deliveries)
                self._backoff.reset()
                next_probe = time.monotonic() + STORE_PROBE_EVERY  # the commit was the probe
            elif time.monotonic() >= next_probe:
                self._probe_store()
                next_probe = time.monotonic() + STORE_PROBE_EVERY
            if deliveries or self.relay.due():
                self.relay.drain(bus)
            if time.monotonic() >= next_sweep:
                self.sweep(bus)
                self._count_open()
                next_sweep = time.monotonic() + settings.sweep_every
            if self.retention is not None and self.retention.due():
                self.retention.run()

    def _finish(self, bus: Bus) -> None:
        """Graceful stop: no new deliveries, finish those in hand, drain the outbox, close."""
        LOG.info("stopping: finishing the batch in hand and draining the outbox")
        self.metrics.set_connected(False)  # not ready: no new deliveries from here on
        bus.cancel()
        while deliveries := bus.poll(self.settings.batch_size, 0.0):
            self.process(bus, deliveries)
        deadline = time.monotonic() + self.settings.shutdown_deadline
        try:
            self.relay.drain(bus, deadline=deadline)
        except BusUnavailable as error:
            LOG.warning("outbox not fully drained at shutdown (%s): it is relayed at the next start", error)
        bus.close()

    def process(self, bus: Bus, deliveries: list[Delivery]) -> None:
        """One batch: parse, one transaction, park poison, ack (``batch.BatchProcessor``)."""
        self.batches.process(bus, deliveries)

    def sweep(self, bus: Bus) -> None:
        """Close encounters idle for ``idle_seconds`` and relay what that emitted."""
        if self.settings.idle_seconds is None:
            return
        try:
            outcome = self.service.close(idle_before=self.service.clock() - self.settings.idle_seconds)
        except Exception as error:  # a failed sweep is retried at the next one
            if is_transient(error):
                raise TransientError(f"store: {error.__class__.__name__}") from error
            LOG.error("idle sweep failed (%s)", error.__class__.__name__)
            self.metrics.error("sweep_failed")
            return
        for key, failure in outcome.failed.items():
            self.metrics.encounter_failed(failure.code)
            self.metrics.error("encounter_not_charged")
            LOG.error(
                "idle sweep: encounter %s not charged: %s (%s); kept open, retried when new input arrives",
                key, failure.code, failure.detail, extra={"encounter": key, "code": failure.code},
            )  # fmt: skip
        if outcome.messages:
            self.stats.closed_idle += outcome.messages
            self.stats.messages += outcome.messages
            self.metrics.charges_queued(outcome.messages, outcome.lines, outcome.administration_outcomes)
            LOG.info("idle sweep: %d charge messages queued", outcome.messages, extra={"messages": outcome.messages})
        self.relay.drain(bus)

    def _probe_store(self) -> None:
        """Readiness: a cheap read proves the store answers (on this thread: connections are not shared)."""
        try:
            self.service.store.pending(1)
        except Exception as error:  # any failure means "not reachable"; transient ones reconnect
            self.metrics.store_probed(ok=False)
            if is_transient(error):
                raise TransientError(f"store: {error.__class__.__name__}") from error
            LOG.error("store probe failed (%s)", error.__class__.__name__, extra={"error": error.__class__.__name__})
            self.metrics.error("store_probe_failed")
            return
        self.metrics.store_probed(ok=True)

    def _count_open(self) -> None:
        """Refresh the encounters-open gauge (at connect and every sweep: one indexed read)."""
        try:
            with self.service.store.transaction() as tx:
                self.metrics.encounters(len(tx.open_encounters()))
        except Exception as error:  # noqa: BLE001 - a gauge is not worth a reconnect; the next sweep retries
            self.metrics.store_probed(ok=False)
            LOG.warning("counting open encounters failed (%s)", error.__class__.__name__)
            return
        self.metrics.store_probed(ok=True)


def _own_text(error: BaseException) -> str:
    """The text of our own errors (they name queues and codes), only the class of any other.

    A driver's message (SQLite, OS, PostgreSQL) may quote the statement or values it failed on.
    """
    return str(error) if isinstance(error, BusError | TransientError) else error.__class__.__name__
