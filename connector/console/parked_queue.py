"""The parking queue of inputs as the console reads and re-drives it: one broker connection per request.

The broker settings and queue names come from the settings the way ``ivpush parked`` finds
them (``amqp`` section: ``IVPUSH_AMQP_URL``, ``prefix``); without a broker URL the parked pages
say so. pika is imported only when a parked page opens a connection (``ivpush serve --help``
and the other pages never load it). Reading hands every message back (``connector.bus.parked``);
requeueing is ``connector.bus.redrive.requeue``: re-published with confirms, then removed.

A message is named in URLs by its *ref*, an HMAC of its parked id under a key made at start-up:
the access log and the browser history never hold an id a sender chose.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import Counter
from collections.abc import Iterator
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
    """

    ref: str
    code: str
    detail: str
    parked_at: datetime | None
    size: int
    source: str
    id: str


@dataclass(frozen=True)
class Survey:
    """What one pass over the queue found.

    Attributes:
        rows: The page of matching messages, in queue order.
        scanned: Messages read.
        matched: Messages the filters selected (of those read).
        codes: Matching messages by reject code.
        capped: The pass stopped at ``MAX_SCAN`` messages read.
    """

    rows: tuple[Row, ...] = ()
    scanned: int = 0
    matched: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    capped: bool = False


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

    def survey(self, selector: Selector, skip: int, keep: int) -> Survey:
        """Read the queue (at most ``MAX_SCAN`` messages): the matches counted by code, ``keep`` rows after ``skip``."""
        from connector.bus.parked import Scan, Selector, Tally

        rows: list[Row] = []
        codes: Counter[str] = Counter()
        matched = 0
        with self._reader() as reader:
            scan = Scan(reader, self.queue, Selector(), Tally())
            try:
                for parked in scan:
                    if selector.matches(parked):
                        matched += 1
                        codes[parked.code] += 1
                        if skip < matched <= skip + keep:
                            rows.append(self._row(parked))
                    if scan.tally.scanned >= MAX_SCAN:
                        break
            finally:
                scan.release()
        capped = scan.tally.scanned >= MAX_SCAN
        return Survey(tuple(rows), scan.tally.scanned, matched, dict(codes), capped)

    def find(self, ref: str) -> Parked | None:
        """The message with this ref (None: not in the queue, or past ``MAX_SCAN``)."""
        from connector.bus.parked import Scan, Selector, Tally

        with self._reader() as reader:
            scan = Scan(reader, self.queue, Selector(), Tally())
            try:
                for parked in scan:
                    if hmac.compare_digest(self.ref(parked), ref):
                        return parked
                    if scan.tally.scanned >= MAX_SCAN:
                        break
            finally:
                scan.release()
        return None

    def requeue(self, selector: Selector, limit: int | None = None) -> Tally:
        """Re-publish the selected messages to the input exchange; remove each once confirmed."""
        from connector.bus.parked_records import Target
        from connector.bus.redrive import requeue

        with self._reader() as reader:
            return requeue(reader, self.queue, selector, Target(self.exchange), limit)

    def _row(self, parked: Parked) -> Row:
        source = parked.source or parked.delivery.routing_key
        return Row(self.ref(parked), parked.code, parked.detail, parked.parked_at, parked.size, source, parked.id)

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
