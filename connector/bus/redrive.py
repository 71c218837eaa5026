"""What ``ivpush parked`` does with the messages it selects: browse, purge, requeue (re-drive).

``purge`` acks what it selects. ``requeue`` re-publishes each selected message to its target
(inputs: the input exchange, their routing key kept; refused DFT messages: the DFT output
queue) and acks the parked copy only once the re-publication was **confirmed** by the broker: a
crash in between leaves the copy parked, and requeuing it again is harmless (below).
``requeue_records`` does the same for an export file, fixed by hand.

Re-driving is idempotent by design. Every parked input carries a deterministic ``message_id``
(its dedup key, else ``sha256:<digest of the body>``: ``parking.parked_id``); copies with the
same id are the same input to the consumer, so one is re-published and all are removed. An input
that was already applied (re-published twice, or sent again by its engine meanwhile) is a
duplicate for the consumer's dedup, as long as its dedup key is still in the store
(``retention.state_days``): it is charged once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from connector.bus.base import PublishReport
from connector.bus.parked import Parked, Reader, Scan, Selector, Tally
from connector.bus.parked_records import Record, Target, record_message, resend_message
from connector.bus.parking import parked_at

CONFIRM_TIMEOUT = 30.0
BATCH = 100  # messages re-published per confirm window


def browse(
    reader: Reader, queue: str, selector: Selector, visit: Callable[[Parked], None], limit: int | None = None
) -> Tally:
    """Call ``visit`` with each selected message; leave the queue as it was (list, show, export)."""
    tally = Tally()
    scan = Scan(reader, queue, selector, tally, limit)
    try:
        for parked in scan:
            visit(parked)
            tally.done += 1
    finally:
        scan.release()
    return tally


def purge(reader: Reader, queue: str, selector: Selector, limit: int | None = None) -> Tally:
    """Remove the selected messages for good."""
    tally = Tally()
    scan = Scan(reader, queue, selector, tally, limit)
    try:
        for parked in scan:
            scan.remove(parked)
            tally.done += 1
    finally:
        scan.release()
    return tally


def requeue(reader: Reader, queue: str, selector: Selector, target: Target, limit: int | None = None) -> Tally:
    """Re-publish the selected messages to ``target`` and remove each once its re-publication is confirmed.

    Copies sharing an id are one input: the first is re-published, the others removed with it.
    """
    tally = Tally()
    scan = Scan(reader, queue, selector, tally, limit)
    sent: set[str] = set()
    batch: list[Parked] = []
    try:
        for parked in scan:
            batch.append(parked)
            if len(batch) >= BATCH:
                _resend(reader, scan, batch, target, sent)
                batch = []
        _resend(reader, scan, batch, target, sent)
    finally:
        scan.release()
    return tally


def _resend(reader: Reader, scan: Scan, batch: list[Parked], target: Target, sent: set[str]) -> None:
    now = parked_at()  # the same UTC timestamp form as ``x-ivpush-parked-at``
    fresh: dict[str, Parked] = {}
    for parked in batch:
        if parked.id and (parked.id in sent or parked.id in fresh):
            continue  # a copy of an input re-published in this run
        fresh[parked.id or f"tag:{parked.delivery.delivery_tag}"] = parked
    messages = [resend_message(parked, target, now, key) for key, parked in fresh.items()]
    report = reader.publish(messages, CONFIRM_TIMEOUT, BATCH) if messages else PublishReport()
    confirmed = {str(key) for key in report.confirmed}
    sent.update(key for key in confirmed if not key.startswith("tag:"))
    scan.tally.done += len(confirmed)
    scan.tally.failed += len(messages) - len(confirmed)
    for parked in batch:
        key = parked.id or f"tag:{parked.delivery.delivery_tag}"
        if key in confirmed or (parked.id and parked.id in sent):
            scan.remove(parked)


def requeue_records(reader: Reader, queue: str, records: Sequence[Record], target: Target) -> Tally:
    """Publish edited records (an export, fixed) to ``target``; then remove their parked copies from ``queue``.

    A record's parked copy is removed only once the record was confirmed; a copy no longer in
    the queue (requeued before) is nothing to remove: the input goes out again and the
    consumer's dedup decides.
    """
    tally = Tally()
    now = parked_at()
    first: dict[str, Record] = {}
    for record in records:
        first.setdefault(record.key, record)
        tally.codes[record.code] += 1
    tally.matched = len(records)
    messages = [record_message(record, target, now) for record in first.values()]
    confirmed: set[str] = set()
    for start in range(0, len(messages), BATCH):
        report = reader.publish(messages[start : start + BATCH], CONFIRM_TIMEOUT, BATCH)
        confirmed.update(str(key) for key in report.confirmed)
    tally.done, tally.failed = len(confirmed), len(messages) - len(confirmed)
    ids = frozenset(record.id for key, record in first.items() if record.id and key in confirmed)
    if ids:
        scan = Scan(reader, queue, Selector(ids=ids), Tally())
        try:
            for parked in scan:
                if parked.id in ids:  # the parked id, not a sender's id that happens to match
                    scan.remove(parked)
        finally:
            scan.release()
        tally.scanned, tally.removed = scan.tally.scanned, scan.tally.removed
    return tally
