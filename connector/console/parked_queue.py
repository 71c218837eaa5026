"""The parking queue of inputs as the console reads and re-drives it: one broker connection per request.

The broker settings and queue names come from the settings the way ``ivpush parked`` finds
them (``amqp`` section: ``IVPUSH_AMQP_URL``, ``prefix``); without a broker URL the parked pages
say so. pika is imported only when a parked page opens a connection (``ivpush serve --help``
and the other pages never load it). Reading hands every message back (``connector.bus.parked``);
requeueing is ``connector.bus.redrive.requeue``: re-published with confirms, then removed.

Each message handed back is a delivery to the broker: RabbitMQ before 4.3 counts it
(``x-delivery-count``) and a 4.x quorum queue drops a message after 20 unless the parking
policy (``ivpush parked policy``) raised the limit. A survey therefore notes the highest count
it read (the pages warn from ``DELIVERY_WARNING``), and ``Surveys`` keeps a survey for
``FRESH`` seconds so reloading a page does not read the queue again.

A message is named in URLs by its *ref*, an HMAC of its parked id under a key made at start-up:
the access log and the browser history never hold an id a sender chose.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pika and the settings model load with the first parked page (#15)
    from connector.bus.config import AmqpSettings
    from connector.bus.parked import Parked, Reader, Selector, Tally
    from connector.config import Settings

CONNECT_TIMEOUT = 10.0
MAX_SCAN = 10_000  # messages read per page at most (a scan holds them unacked until it ends)
MAX_REFS = 500  # a set requeue names at most this many messages by ref (more: its pinned window and count)
DELIVERY_WARNING = 10  # a message delivered this often: the pages warn (quorum queues drop at 20 by default)
FRESH = 5.0  # seconds a survey is reused
KEPT = 64  # surveys kept at most


class BrokerProblem(Exception):
    """The broker cannot be reached or refused (the message names no secret and no value)."""


@dataclass(frozen=True)
class Row:
    """One parked message as the list shows it (no payload; ids for signed-in readers only).

    Attributes:
        ref: Its opaque name in URLs.
        code: Reject code.
        detail: Reason text (no PHI).
        parked_at: When it was parked (None: unknown).
        size: Body bytes.
        source: ``x-ivpush-source``, else the routing key.
        id: The parked id (empty: none).
        deliveries: Its ``x-delivery-count`` (None: not given).
    """

    ref: str
    code: str
    detail: str
    parked_at: datetime | None
    size: int
    source: str
    id: str
    deliveries: int | None = None


@dataclass(frozen=True)
class Survey:
    """What one pass over the queue found.

    Attributes:
        rows: The page of matching messages, in queue order.
        scanned: Messages read.
        matched: Messages the filters selected (of those read).
        codes: Matching messages by reject code.
        capped: The pass stopped at ``MAX_SCAN`` messages read.
        at: When the pass began (UTC): a confirm page pins its window to it.
        refs: The refs of the matching messages, when asked for and at most ``MAX_REFS`` (else None).
        most_delivered: The highest ``x-delivery-count`` of the messages read (0: none given).
    """

    rows: tuple[Row, ...] = ()
    scanned: int = 0
    matched: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    capped: bool = False
    at: datetime | None = None
    refs: tuple[str, ...] | None = None
    most_delivered: int = 0

    @property
    def worn(self) -> bool:
        """Some message read was handed back ``DELIVERY_WARNING`` times or more."""
        return self.most_delivered >= DELIVERY_WARNING


@dataclass(frozen=True)
class ParkedQueue:
    """Where the parked inputs are and how to reach them.

    Attributes:
        queue: The parking queue of inputs.
        exchange: The input exchange a requeue publishes to (each message's routing key kept).
        amqp: The broker connection settings (None: no broker configured).
        problem: Why the parked pages cannot work (no broker URL, bad settings), else empty.
        ref_key: The key of the messages' refs (made at start-up).
    """

    queue: str = ""
    exchange: str = ""
    amqp: AmqpSettings | None = None
    problem: str = "No broker is configured: set IVPUSH_AMQP_URL (or [amqp] url) and restart the console."
    ref_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    @property
    def available(self) -> bool:
        """A broker is configured."""
        return self.amqp is not None and not self.problem

    def ref(self, parked: Parked) -> str:
        """The message's name in URLs: an HMAC of its parked id (of its body when it has none)."""
        name = parked.id or "sha256:" + hashlib.sha256(parked.delivery.body).hexdigest()
        return hmac.new(self.ref_key, name.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]

    def survey(self, selector: Selector, skip: int, keep: int, at: datetime, refs: bool = False) -> Survey:
        """Read the queue (at most ``MAX_SCAN`` messages): the matches counted by code, ``keep`` rows after ``skip``.

        Args:
            selector: The messages to count.
            skip: Matches before the rows shown.
            keep: Rows shown.
            at: The time the selector was resolved at (kept in the survey).
            refs: Collect the refs of the matches (at most ``MAX_REFS``).
        """
        from connector.bus.parked import Scan, Selector, Tally

        rows: list[Row] = []
        found: dict[str, None] = {}  # the refs, in queue order
        codes: Counter[str] = Counter()
        matched = most = 0
        with self._reader() as reader:
            scan = Scan(reader, self.queue, Selector(), Tally())
            try:
                for parked in scan:
                    most = max(most, deliveries(parked) or 0)
                    if selector.matches(parked):
                        matched += 1
                        codes[parked.code] += 1
                        if skip < matched <= skip + keep:
                            rows.append(self._row(parked))
                        if refs and len(found) <= MAX_REFS:
                            found[self.ref(parked)] = None
                    if scan.tally.scanned >= MAX_SCAN:
                        break
            finally:
                scan.release()
        capped = scan.tally.scanned >= MAX_SCAN
        named = tuple(found) if refs and len(found) <= MAX_REFS else None
        return Survey(tuple(rows), scan.tally.scanned, matched, dict(codes), capped, at, named, most)

    def find(self, ref: str) -> tuple[Parked | None, int]:
        """The message with this ref (None: not in the queue, or past ``MAX_SCAN``) and the most deliveries read."""
        from connector.bus.parked import Scan, Selector, Tally

        most = 0
        with self._reader() as reader:
            scan = Scan(reader, self.queue, Selector(), Tally())
            try:
                for parked in scan:
                    most = max(most, deliveries(parked) or 0)
                    if hmac.compare_digest(self.ref(parked), ref):
                        return parked, most
                    if scan.tally.scanned >= MAX_SCAN:
                        break
            finally:
                scan.release()
        return None, most

    def requeue(self, selector: Selector, limit: int | None = None) -> Tally:
        """Re-publish the selected messages to the input exchange; remove each once confirmed."""
        from connector.bus.parked_records import Target
        from connector.bus.redrive import requeue

        with self._reader() as reader:
            return requeue(reader, self.queue, selector, Target(self.exchange), limit)

    def _row(self, parked: Parked) -> Row:
        source = parked.source or parked.delivery.routing_key
        at = parked.parked_at
        return Row(self.ref(parked), parked.code, parked.detail, at, parked.size, source, parked.id, deliveries(parked))

    @contextmanager
    def _reader(self) -> Iterator[Reader]:
        """A reader on the broker, closed after the request; any broker failure as ``BrokerProblem``."""
        from connector.bus.errors import BusError, TopologyError
        from connector.bus.rabbitmq_get import RabbitReader

        if self.amqp is None or self.problem:
            raise BrokerProblem(self.problem)
        try:
            reader = RabbitReader(self.amqp, CONNECT_TIMEOUT)
        except BusError as error:
            raise BrokerProblem(f"The broker cannot be reached just now ({type(error).__name__}).") from error
        try:
            yield reader
        except TopologyError as error:
            raise BrokerProblem(f"The parking queue {self.queue} is not declared on the broker.") from error
        except BusError as error:
            raise BrokerProblem(
                f"The broker failed during the request ({type(error).__name__}); nothing was removed that was not "
                "re-published."
            ) from error
        finally:
            reader.close()


class Surveys:
    """Surveys reused for ``FRESH`` seconds, by key (thread-safe): a reloaded page does not read the queue again.

    Args:
        clock: Monotonic seconds.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._kept: dict[Hashable, tuple[float, Survey]] = {}

    def get(self, key: Hashable, read: Callable[[], Survey]) -> Survey:
        """The survey kept under ``key`` if fresh, else ``read()`` (kept)."""
        with self._lock:
            now = self.clock()
            kept = self._kept.get(key)
            if kept is not None and now - kept[0] < FRESH:
                return kept[1]
        survey = read()  # outside the lock: a slow broker does not hold other pages
        with self._lock:
            self._kept = {k: v for k, v in self._kept.items() if now - v[0] < FRESH}
            if len(self._kept) < KEPT:
                self._kept[key] = (now, survey)
        return survey

    def clear(self) -> None:
        """Forget every survey (the queue changed)."""
        with self._lock:
            self._kept.clear()


def deliveries(parked: Parked) -> int | None:
    """The message's ``x-delivery-count`` (None: not given)."""
    value = parked.delivery.headers.get("x-delivery-count")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def from_settings(settings: Settings) -> ParkedQueue:
    """The parking queue of inputs the settings name (``problem`` set when there is no broker URL)."""
    from connector.bus.errors import ConfigError
    from connector.config.topology import build_topology

    try:
        topology = build_topology(settings)
        amqp = settings.amqp_settings("ivpush serve")
    except ConfigError as error:
        return ParkedQueue(problem=f"The parked inputs cannot be read: {error}.")
    return ParkedQueue(topology.parking_queue, topology.input_exchange, amqp, problem="")
