"""The listeners' one broker connection: a thread that owns it, publishing what connection handlers hand it.

pika connections are not thread-safe, so one thread (this one) owns the connection, with
publisher confirms on, and every MLLP connection or HTTP request hands it a *job* (the inputs
of one message or request) and waits on the job's ``Future``. Jobs waiting together are
published as one batch under one confirm window; a job is ``stored`` only when every one of its
messages was routed and confirmed by the broker. Anything else (broker unreachable, connection
lost mid-batch, returned, nacked, no confirm in time, shutting down) resolves it as not stored,
and the listener answers ``AE`` (HTTP 503) so that the sender keeps the message and sends it
again. A job whose sender has stopped waiting is not published at all.

The connection is re-made with capped, jittered back-off; while there is none, jobs are
answered at once. Inputs are published exactly as ``ivpush publish`` does: persistent,
``mandatory``, content type by format, the ``x-ivpush-format`` header, and the hash of the
bytes as ``message_id`` (a message sent twice is the same input to the consumer's dedup).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace

from connector.adapters.archive import Record
from connector.bus.backoff import Backoff
from connector.bus.base import Bus, Outgoing
from connector.bus.errors import BusError
from connector.bus.publisher import input_message as archive_message
from connector.bus.topology import Topology
from connector.ingress.metrics import IngressMetrics

LOG = logging.getLogger("ivpush.ingress")
SOURCE_HEADER = "x-ivpush-source"
BATCH = 500  # messages per publish call (the confirm window)
_IDLE_POLL = 0.02  # seconds between looks at the connection while no job waits


@dataclass(frozen=True, slots=True)
class Stored:
    """A job's fate.

    Attributes:
        ok: Every message was routed to a queue and confirmed by the broker.
        reason: ``confirmed``, or why not: ``broker_unavailable``, ``unroutable``, ``nacked``,
            ``unconfirmed``, ``expired`` (waited too long for the connection) or ``stopping``.
    """

    ok: bool
    reason: str

    @property
    def detail(self) -> str:
        """The reason in words (no message content)."""
        return _DETAILS.get(self.reason, self.reason)


_DETAILS = {
    "confirmed": "stored",
    "broker_unavailable": "the message broker is unreachable",
    "unroutable": "the broker routed the message to no queue (input queue missing)",
    "nacked": "the broker refused the message",
    "unconfirmed": "no confirm from the broker in time",
    "expired": "waited too long for the broker connection",
    "stopping": "the listener is shutting down",
}


def input_message(body: bytes, fmt: str, topology: Topology, routing_key: str, source: str) -> Outgoing:
    """One input as ``ivpush publish`` would publish it, with the listener that received it in a header."""
    message = archive_message(Record(source, "", fmt, body), topology, routing_key)
    return replace(message, headers={**message.headers, SOURCE_HEADER: source})


@dataclass
class _Job:
    messages: Sequence[Outgoing]
    future: Future[Stored]
    submitted: float
    deadline: float
    keys: list[int] = field(default_factory=list)


class Publisher:
    """Owns the broker connection on a thread of its own (see the module docstring).

    Args:
        connect: Opens a new connection (``RabbitBus`` with the settings; a stub in tests).
        metrics: Where connection state, heartbeats and confirm latency are recorded.
        topology: Declared after every connect when given (None: publish to what exists).
        confirm_timeout: Seconds a job may wait for its confirm, queueing included.
        reconnect_max: Longest pause between connection attempts.
    """

    def __init__(
        self,
        connect: Callable[[], Bus],
        metrics: IngressMetrics,
        topology: Topology | None = None,
        confirm_timeout: float = 10.0,
        reconnect_max: float = 30.0,
    ) -> None:
        self._connect = connect
        self._metrics = metrics
        self._topology = topology
        self._confirm_timeout = confirm_timeout
        self._backoff = Backoff(base=0.25, cap=reconnect_max)
        self._jobs: queue.Queue[_Job] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._stopping = threading.Event()
        self._bus: Bus | None = None
        self._keys = itertools.count(1)
        self._thread = threading.Thread(target=self._run, name="ivpush-ingress-publisher", daemon=True)

    @property
    def connected(self) -> bool:
        """A connection is open (its loss is noticed within a poll)."""
        return self._bus is not None

    def start(self) -> Publisher:
        """Start the thread (it connects at once)."""
        self._thread.start()
        return self

    def submit(self, messages: Sequence[Outgoing]) -> Future[Stored]:
        """Hand over the messages of one job; the future resolves to its fate (never raises).

        Cancel the future to give up: a job not yet taken is then never published.
        """
        future: Future[Stored] = Future()
        now = time.monotonic()
        with self._lock:
            if self._closed:
                future.set_result(Stored(False, "stopping"))
                return future
            self._jobs.put(_Job(messages, future, now, now + self._confirm_timeout))
        return future

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand, answer every waiting job ``stopping`` and close the connection."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # --- the publisher thread ------------------------------------------------------------------

    def _run(self) -> None:
        next_try = 0.0
        try:
            while not self._stopping.is_set():
                self._metrics.base.heartbeat()
                now = time.monotonic()
                if self._bus is None and now >= next_try:
                    next_try = now + self._open()
                jobs = self._take(_IDLE_POLL if self._bus is not None else min(0.2, max(next_try - now, 0.01)))
                if jobs and self._bus is None:
                    self._settle(jobs, "broker_unavailable")
                elif jobs:
                    self._publish(jobs)
                elif self._bus is not None:
                    self._service()
        finally:
            with self._lock:
                self._closed = True
            self._settle(self._drain(), "stopping")
            if self._bus is not None:
                self._bus.close()
                self._bus = None
            self._metrics.base.set_connected(False)

    def _open(self) -> float:
        """Connect (and declare); seconds until the next attempt when it fails (0 on success)."""
        try:
            bus = self._connect()
            try:
                if self._topology is not None:
                    bus.declare(self._topology)
            except BusError:
                bus.close()
                raise
        except BusError as error:
            delay = self._backoff.next_delay()
            LOG.warning("cannot connect to the broker (%s); retrying in %.1fs", error, delay)
            self._metrics.base.reconnecting()
            return delay
        self._backoff.reset()
        self._bus = bus
        self._metrics.base.set_connected(True)
        LOG.info("ingress publisher connected to the broker")
        return 0.0

    def _lost(self, error: BusError) -> None:
        LOG.warning("lost the broker connection (%s): answering AE until it is back", error)
        if self._bus is not None:
            self._bus.close()
        self._bus = None
        self._metrics.base.set_connected(False)

    def _service(self) -> None:
        """Pump the idle connection (heartbeats; notice its loss before the next job)."""
        assert self._bus is not None
        try:
            self._bus.sleep(0.001)
        except BusError as error:
            self._lost(error)

    def _take(self, wait: float) -> list[_Job]:
        """Jobs to publish now: the first within ``wait`` seconds, then whatever else is waiting."""
        try:
            first = self._jobs.get(timeout=wait)
        except queue.Empty:
            return []
        taken, count = [], 0
        job: _Job | None = first
        while job is not None:
            if job.future.set_running_or_notify_cancel():  # False: its sender gave up waiting
                if time.monotonic() > job.deadline:
                    job.future.set_result(Stored(False, "expired"))
                else:
                    taken.append(job)
                    count += len(job.messages)
            job = None
            if count < BATCH:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    job = None
        return taken

    def _drain(self) -> list[_Job]:
        jobs: list[_Job] = []
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return jobs
            if job.future.set_running_or_notify_cancel():
                jobs.append(job)

    def _publish(self, jobs: list[_Job]) -> None:
        assert self._bus is not None
        owner: dict[object, _Job] = {}
        batch: list[Outgoing] = []
        for job in jobs:
            for message in job.messages:
                key = next(self._keys)
                owner[key] = job
                batch.append(replace(message, key=key))
        try:
            report = self._bus.publish(batch, self._confirm_timeout)
        except BusError as error:
            self._lost(error)
            self._settle(jobs, "broker_unavailable")
            return
        failed: dict[int, str] = {}
        for why, keys in (
            ("unroutable", report.returned),
            ("nacked", report.nacked),
            ("unconfirmed", report.unconfirmed),
        ):
            for ident in keys:
                failed.setdefault(id(owner[ident]), why)
        now = time.monotonic()
        for job in jobs:
            reason = failed.get(id(job))
            if reason is None:
                self._metrics.confirm_latency.observe(now - job.submitted)
                job.future.set_result(Stored(True, "confirmed"))
            else:
                job.future.set_result(Stored(False, reason))

    @staticmethod
    def _settle(jobs: list[_Job], reason: str) -> None:
        for job in jobs:
            job.future.set_result(Stored(False, reason))
