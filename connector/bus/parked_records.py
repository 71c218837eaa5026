"""Parked messages as export records (NDJSON, one object per line), and re-publishing either.

An export record holds what an analyst needs to fix and re-drive one parked message:

``{"id", "parking_queue", "code", "detail", "parked_at", "origin", "source", "routing_key",
"content_type", "message_id", "headers", "body"}``

``body`` is the message as text when it is UTF-8, else ``body_base64``; edit either (a record
may carry one or the other). ``headers`` are the message's own headers: the parking headers
(``x-ivpush-error``, ``-detail``, ``-queue``, ``-message-id``, ``-parked-at``, ``-ack-code``,
``-err-code``) and the broker's (``x-death``, ``x-first-death-*``, ``x-last-death-*``,
``x-delivery-count``) are left out, and so is a header whose value JSON cannot carry (a nested
table, a timestamp). ``id`` is the parked ``message_id``: it finds the parked copy to remove once
the record is re-published, so leave it as exported.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from connector.bus.base import Outgoing
from connector.bus.parked import CODE, Parked
from connector.bus.parking import DETAIL_HEADER, ERROR_HEADER, MESSAGE_ID_HEADER, PARKED_AT_HEADER, QUEUE_HEADER

REQUEUED_AT_HEADER = "x-ivpush-requeued-at"
DROPPED = frozenset(
    {
        ERROR_HEADER, DETAIL_HEADER, QUEUE_HEADER, MESSAGE_ID_HEADER, PARKED_AT_HEADER, REQUEUED_AT_HEADER,
        "x-ivpush-ack-code", "x-ivpush-err-code",  # connector.forward.parking
        "x-death", "x-delivery-count", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
        "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason",
    }
)  # fmt: skip
SCALARS = (str, int, float, bool, type(None))


class RecordError(ValueError):
    """A line of an export file that cannot be re-published (the message names fields, never values)."""


@dataclass(frozen=True)
class Target:
    """Where re-driven messages go.

    Attributes:
        exchange: The exchange (``""``: the default exchange, routing key = queue name).
        routing_key: Fixed routing key; None keeps each message's own.
    """

    exchange: str
    routing_key: str | None = None


@dataclass(frozen=True)
class Record:
    """One export record, read back (possibly edited).

    Attributes:
        line: Its line number in the file.
        id: The parked ``message_id`` (empty: none, and no parked copy can be matched).
        parking_queue: The queue it was exported from.
        code: Its reject code (counted only).
        routing_key: The routing key to re-publish with (a ``Target`` may fix another).
        content_type: The ``content_type`` property.
        message_id: The sender's ``message_id`` to re-publish with (empty: ``id``).
        headers: Headers to re-publish with.
        body: The message.
    """

    line: int
    id: str
    parking_queue: str
    code: str
    routing_key: str
    content_type: str | None
    message_id: str
    body: bytes
    headers: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Identity in one run: the id, or the line for a record without one."""
        return self.id or f"line:{self.line}"


def to_record(parked: Parked, parking_queue: str) -> dict[str, Any]:
    """The export record of a parked message."""
    delivery = parked.delivery
    record: dict[str, Any] = {
        "id": parked.id,
        "parking_queue": parking_queue,
        "code": parked.code,
        "detail": parked.detail,
        "parked_at": parked.parked_at.strftime("%Y-%m-%dT%H:%M:%SZ") if parked.parked_at else None,
        "origin": parked.origin,
        "source": parked.source,
        "routing_key": delivery.routing_key,
        "content_type": delivery.content_type,
        "message_id": parked.sender_id or (delivery.message_id or ""),
        "headers": kept_headers(delivery.headers),
    }
    try:
        record["body"] = delivery.body.decode("utf-8")
    except UnicodeDecodeError:
        record["body_base64"] = base64.b64encode(delivery.body).decode("ascii")
    return record


def kept_headers(headers: Mapping[str, object]) -> dict[str, Any]:
    """The message's own headers: parking and broker headers dropped, values JSON can carry."""
    kept: dict[str, Any] = {}
    for name, raw in headers.items():
        value = raw
        if name in DROPPED:
            continue
        if isinstance(raw, bytes):
            try:
                value = raw.decode("utf-8")
            except UnicodeDecodeError:
                continue
        if isinstance(value, SCALARS):
            kept[name] = value
    return kept


def read_records(lines: Iterable[str]) -> Iterator[Record | RecordError]:
    """The records of an export file, or for each unusable line the error saying why."""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                yield _record(number, line)
            except RecordError as error:
                yield error


def _record(number: int, line: str) -> Record:
    where = f"line {number}"
    try:
        raw = json.loads(line)
    except ValueError:
        raise RecordError(f"{where}: not a JSON object") from None
    if not isinstance(raw, dict):
        raise RecordError(f"{where}: not a JSON object")
    texts = {name: raw.get(name) for name in ("id", "parking_queue", "code", "routing_key", "message_id")}
    for name, value in texts.items():
        if value is not None and not isinstance(value, str):
            raise RecordError(f"{where}: {name} is not a string")
    content_type, headers = raw.get("content_type"), raw.get("headers") or {}
    if content_type is not None and not isinstance(content_type, str):
        raise RecordError(f"{where}: content_type is not a string")
    if not isinstance(headers, dict) or not all(isinstance(v, SCALARS) for v in headers.values()):
        raise RecordError(f"{where}: headers is not an object of strings, numbers, booleans or nulls")
    return Record(
        line=number,
        id=texts["id"] or "",
        parking_queue=texts["parking_queue"] or "",
        code=code if (code := texts["code"] or "") and CODE.fullmatch(code) else "unknown",  # it is logged
        routing_key=texts["routing_key"] or "",
        content_type=content_type,
        message_id=texts["message_id"] or "",
        body=_body(raw, where),
        headers={k: v for k, v in headers.items() if k not in DROPPED},
    )


def _body(raw: dict[str, Any], where: str) -> bytes:
    text, encoded = raw.get("body"), raw.get("body_base64")
    if isinstance(text, str) and encoded is None:
        return text.encode("utf-8", "surrogatepass")
    if isinstance(encoded, str) and text is None:
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise RecordError(f"{where}: body_base64 is not base64") from None
    raise RecordError(f"{where}: give the message in body (text) or body_base64, one of them")


def record_message(record: Record, target: Target, now: str) -> Outgoing:
    """The (edited) record re-published to ``target``; ``Outgoing.key`` is ``record.key``."""
    return Outgoing(
        exchange=target.exchange,
        routing_key=target.routing_key if target.routing_key is not None else record.routing_key,
        body=record.body,
        message_id=record.message_id or record.id or None,
        content_type=record.content_type,
        headers={**record.headers, REQUEUED_AT_HEADER: now},
        key=record.key,
    )


def resend_message(parked: Parked, target: Target, now: str, key: str) -> Outgoing:
    """A parked message re-published to ``target`` as it was sent (parking and broker headers dropped)."""
    delivery = parked.delivery
    headers = {name: value for name, value in delivery.headers.items() if name not in DROPPED}
    return Outgoing(
        exchange=target.exchange,
        routing_key=target.routing_key if target.routing_key is not None else delivery.routing_key,
        body=delivery.body,
        message_id=parked.sender_id or delivery.message_id,
        content_type=delivery.content_type,
        headers={**headers, REQUEUED_AT_HEADER: now},
        key=key,
    )
