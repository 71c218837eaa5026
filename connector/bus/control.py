"""What drives the consumer loop besides deliveries.

Its settings, counters, stop flag, and which failures are transient (reconnect and retry)
rather than the input's fault (park it).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from dataclasses import dataclass
from types import FrameType

from connector.bus.errors import BusError
from connector.service import Outcome


@dataclass(frozen=True)
class ConsumerSettings:
    """How the consumer batches, sweeps, retries and stops.

    Attributes:
        queue: The input queue to consume.
        prefetch: Unacked deliveries the broker may send (100–300 on quorum queues).
        batch_size: Deliveries per store transaction (≤ prefetch).
        batch_wait: Seconds to wait for a full batch after its first delivery.
        poll_timeout: Seconds to wait for a first delivery before doing housekeeping.
        idle_seconds: Close encounters idle this long (None: never close on idleness).
        sweep_every: Seconds between idle sweeps.
        shutdown_deadline: Seconds to drain the outbox at shutdown.
        confirm_timeout: Seconds to wait for publisher confirms.
        publish_window: Unconfirmed messages in flight.
        reconnect_base: First reconnect delay (doubles up to ``reconnect_cap``).
        reconnect_cap: Longest reconnect delay.
        retry_base: First delay before republishing a returned/nacked charge message.
        retry_cap: Longest such delay.
        auth_attempts: Connection attempts refused by the broker (credentials, virtual host) in
            a row after which ``Consumer.run`` gives up (raises ``AccessRefused``).
    """

    queue: str
    prefetch: int = 200
    batch_size: int = 200
    batch_wait: float = 0.05
    poll_timeout: float = 0.5
    idle_seconds: float | None = None
    sweep_every: float = 60.0
    shutdown_deadline: float = 10.0
    confirm_timeout: float = 30.0
    publish_window: int = 500
    reconnect_base: float = 0.5
    reconnect_cap: float = 30.0
    retry_base: float = 1.0
    retry_cap: float = 60.0
    auth_attempts: int = 5


@dataclass
class ConsumerStats:
    """Counts since start (ids and counts only: no PHI)."""

    connects: int = 0
    batches: int = 0
    deliveries: int = 0
    inputs: int = 0
    duplicates: int = 0
    parked: int = 0
    messages: int = 0
    closed_idle: int = 0

    def add(self, outcome: Outcome) -> None:
        """Add a service outcome."""
        self.inputs += outcome.inputs
        self.duplicates += outcome.duplicates
        self.messages += outcome.messages


class Stop:
    """Shutdown request: set by the first SIGTERM/SIGINT; the second exits at once."""

    def __init__(self) -> None:
        self.requested = False
        self._signals = 0

    def request(self) -> None:
        """Ask the loop to finish the batch in hand and stop."""
        self.requested = True

    def install(self) -> None:
        """Handle SIGTERM and SIGINT (main thread only)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only set flags here: logging or pika calls from a signal handler can deadlock.
        self._signals += 1
        if self._signals > 1:
            os._exit(128 + signum)
        self.requested = True

    def wait(self, seconds: float) -> None:
        """Sleep, waking early when stopped."""
        deadline = time.monotonic() + seconds
        while not self.requested and (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(0.1, remaining))


class TransientError(Exception):
    """The store (or the OS) failed in a way that a retry may fix."""


# Locked/busy store, I/O (PostgreSQL's StoreUnavailable is a ConnectionError) or broker trouble.
TRANSIENT = (sqlite3.OperationalError, OSError, BusError, TransientError)


def is_transient(error: BaseException) -> bool:
    """Locked/busy store, I/O or broker trouble: retry after reconnecting, don't park the input."""
    return isinstance(error, TRANSIENT)
