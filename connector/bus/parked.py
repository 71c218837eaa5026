"""Parked messages, read from a parking queue without losing one: what ``ivpush parked`` selects on.

A parking queue is read with ``basic.get`` (``Reader.get``): every message read stays
unacknowledged until the command is done, and what it did not act on is handed back at the end
with one ``basic.nack(multiple, requeue)`` (``Scan.release``), so reading changes nothing but
the order of the queue. A message leaves the queue only by an ack (``Scan.remove``). What the
commands do with the messages: ``connector.bus.redrive``.

Selection (``Selector``): reject code (``x-ivpush-error``; ``delivery_limit`` for a copy the
broker dead-lettered), parked time (``x-ivpush-parked-at``, else the broker's ``x-death`` time),
source (the ``x-ivpush-source`` header of ``ivpush listen``, or the routing key; shell-style
patterns) and id (the parked ``message_id`` or the sender's ``x-ivpush-message-id``).
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from connector.bus.base import Delivery, Outgoing, PublishReport
from connector.bus.parking import DETAIL_HEADER, ERROR_HEADER, MESSAGE_ID_HEADER, PARKED_AT_HEADER, QUEUE_HEADER

LOG = logging.getLogger("ivpush.parked")
SOURCE_HEADER = "x-ivpush-source"  # set by ``ivpush listen`` (connector.ingress.publisher)
CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # a header that does not look like a code is not repeated


class Reader(Protocol):
    """What reading and re-driving a parking queue needs of a broker connection (``RabbitReader``)."""

    def get(self, queue: str) -> Delivery | None:
        """The next ready message, unacknowledged (None: none left)."""
        ...

    def ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """Remove a message from its queue."""
        ...

    def release(self, delivery_tag: int, multiple: bool = True) -> None:
        """Hand unacknowledged messages back (``basic.nack`` with requeue)."""
        ...

    def publish(
        self,
        messages: Sequence[Outgoing],
        timeout: float,
        window: int = 500,
        on_sent: Callable[[Outgoing], None] | None = None,
    ) -> PublishReport:
        """Publish with ``mandatory`` and confirms."""
        ...


@dataclass(frozen=True)
class Parked:
    """One parked message and what ``ivpush parked`` selects on.

    Attributes:
        delivery: The message as read (body, properties, headers, tag).
        id: The parked ``message_id`` (deterministic for inputs; empty when it has none).
        code: ``x-ivpush-error``, ``delivery_limit`` (dead-lettered by the broker) or ``unknown``.
        detail: ``x-ivpush-detail`` (no PHI; empty when absent).
        origin: The queue it was consumed from (``x-ivpush-queue``, else the ``x-death`` queue).
        source: ``x-ivpush-source`` (``mllp``, ``http``), empty when absent.
        parked_at: When it was parked (None: unknown).
    """

    delivery: Delivery
    id: str
    code: str
    detail: str
    origin: str
    source: str
    parked_at: datetime | None

    @classmethod
    def of(cls, delivery: Delivery) -> Parked:
        """Read the parking headers of a message."""
        headers = delivery.headers
        death = _first_death(headers)
        code = _text(headers.get(ERROR_HEADER)) or _text(headers.get("x-first-death-reason"))
        at = _moment(headers.get(PARKED_AT_HEADER)) or _moment(death.get("time"))
        origin = _text(headers.get(QUEUE_HEADER)) or _text(death.get("queue"))
        return cls(
            delivery,
            delivery.message_id or "",
            code if CODE.fullmatch(code) else "unknown",
            _text(headers.get(DETAIL_HEADER)),
            origin,
            _text(headers.get(SOURCE_HEADER)),
            at,
        )

    @property
    def size(self) -> int:
        """Body bytes."""
        return len(self.delivery.body)

    @property
    def sender_id(self) -> str:
        """The sender's own ``message_id`` (``x-ivpush-message-id``), empty when none."""
        return _text(self.delivery.headers.get(MESSAGE_ID_HEADER))


@dataclass(frozen=True)
class Selector:
    """Which parked messages a command acts on (every filter given must match; none: all).

    Attributes:
        codes: Reject codes.
        ids: Parked ids or senders' message ids.
        sources: Shell-style patterns matched against ``x-ivpush-source`` and the routing key.
        since: Parked at or after (a message of unknown time never matches a time filter).
        until: Parked before.
        parked_ids_only: ``ids`` match the parked id only, never a sender's message id.
        also: A further test a message must pass (the console's refs), None: none.
    """

    codes: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()
    sources: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    parked_ids_only: bool = False
    also: Callable[[Parked], bool] | None = field(default=None, compare=False)

    @property
    def everything(self) -> bool:
        """No filter given."""
        return not (self.codes or self.ids or self.sources or self.since or self.until or self.also)

    def matches(self, parked: Parked) -> bool:
        """Whether the parked message is selected."""
        if self.codes and parked.code not in self.codes:
            return False
        if self.ids and not ({parked.id} if self.parked_ids_only else {parked.id, parked.sender_id}) & self.ids:
            return False
        if self.also is not None and not self.also(parked):
            return False
        if self.sources and not any(
            fnmatch.fnmatchcase(value, pattern)
            for pattern in self.sources
            for value in (parked.source, parked.delivery.routing_key)
            if value
        ):
            return False
        if self.since is None and self.until is None:
            return True
        at = parked.parked_at
        return at is not None and (self.since is None or at >= self.since) and (self.until is None or at < self.until)

    def describe(self) -> str:
        """The filters for a log line: codes and times; ids and sources only counted."""
        codes = sorted(code if CODE.fullmatch(code) else "(not a code)" for code in self.codes)
        parts = [f"code {','.join(codes)}"] if codes else []
        parts += [f"{len(self.ids)} id(s)"] if self.ids else []
        parts += [f"{len(self.sources)} source pattern(s)"] if self.sources else []
        parts += [f"since {self.since.isoformat()}"] if self.since else []
        parts += [f"until {self.until.isoformat()}"] if self.until else []
        parts += ["a further test"] if self.also else []
        return "; ".join(parts) or "everything"


@dataclass
class Tally:
    """What a command did (counts and codes only: fit for a log line)."""

    scanned: int = 0
    matched: int = 0
    done: int = 0
    failed: int = 0
    removed: int = 0
    codes: Counter[str] = field(default_factory=Counter)

    def log(self, action: str, queue: str, selection: str) -> None:
        """One INFO line for the action."""
        LOG.info(
            "parked %s on %s (%s): %d scanned, %d matched, %d done, %d failed, %d removed",
            action, queue, selection, self.scanned, self.matched, self.done, self.failed, self.removed,
            extra={
                "action": action, "queue": queue, "scanned": self.scanned, "matched": self.matched,
                "done": self.done, "failed": self.failed, "removed": self.removed, "codes": dict(self.codes),
            },
        )  # fmt: skip


class Scan:
    """One pass over a queue: the selected messages in queue order, the others held until ``release``."""

    def __init__(self, reader: Reader, queue: str, selector: Selector, tally: Tally, limit: int | None = None):
        self.reader, self.queue, self.selector, self.tally, self.limit = reader, queue, selector, tally, limit
        self._held: set[int] = set()

    def __iter__(self) -> Iterator[Parked]:
        while self.limit is None or self.tally.matched < self.limit:
            delivery = self.reader.get(self.queue)
            if delivery is None:
                return
            self._held.add(delivery.delivery_tag)
            self.tally.scanned += 1
            parked = Parked.of(delivery)
            if self.selector.matches(parked):
                self.tally.matched += 1
                self.tally.codes[parked.code] += 1
                yield parked

    def remove(self, parked: Parked) -> None:
        """Ack: the message leaves the queue."""
        self.reader.ack(parked.delivery.delivery_tag)
        self._held.discard(parked.delivery.delivery_tag)
        self.tally.removed += 1

    def release(self) -> None:
        """Hand back everything read and not removed (one ``nack`` up to the highest held tag)."""
        if self._held:
            self.reader.release(max(self._held), multiple=True)
            self._held.clear()


def _first_death(headers: Mapping[str, object]) -> Mapping[str, object]:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return deaths[0]
    return {}


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


def _moment(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str | bytes):
        try:
            found = datetime.fromisoformat(_text(value))
        except ValueError:
            return None
        return found if found.tzinfo is not None else found.replace(tzinfo=UTC)
    return None
