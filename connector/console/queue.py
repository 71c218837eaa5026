"""The review queue: encounters needing review and not reviewed on what they hold now, oldest first.

An encounter *needs review* when a line it is charged with is flagged ``needs_review`` or a
stored outcome is ``needs_review`` (``connector.model.reviews``; the search flag of the same
name). It leaves the queue when someone marks it reviewed on its current *basis* (its charged
lines and stored outcomes), and comes back when they change.

**Oldest** is the earliest start, as an instant, of an administration needing review (its
outcome, or behind a flagged line); an encounter with none found sorts by its earliest
administration, and one without administrations last. Ties: by key.

There is no index: like the search, a request walks the encounter keys in order
(``PAGE_KEYS`` per short read transaction) and reads each one's stored outcomes and charged
lines; only encounters needing review have their review marks and state read. Sorting oldest
first needs every candidate, so each request reads up to ``MAX_SCAN`` encounters (then the
page says so and offers the next ones), and a page of the queue reads them all again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from connector.console.reader import Source, StateReader
from connector.model.reviews import ReviewMark, review_need
from connector.rules.describe import when

PAGE_KEYS = 200  # keys read per transaction while scanning
PAGE_SIZE = 25
MAX_SCAN = 50_000  # encounters read per request at most
MAX_PAGE = 10_000
MAX_TEXT = 200


class QueueError(ValueError):
    """A queue parameter that cannot be read (the message names it, never its value)."""


@dataclass(frozen=True, slots=True)
class QueueQuery:
    """What the queue page asks for.

    Attributes:
        reviewed: Also list encounters reviewed on their current basis.
        page: Which page of the sorted queue (1: the oldest).
        after: Start the scan after this key (the next window of a state too large for one).
    """

    reviewed: bool = False
    page: int = 1
    after: str = ""

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> QueueQuery:
        """From form fields ``reviewed`` (``1``), ``page`` and ``after``.

        Raises:
            QueueError: ``page`` is not a number from 1 to ``MAX_PAGE``, or ``after`` is too long.
        """
        page_text = (args.get("page") or "1").strip()
        if not page_text.isdigit() or not 1 <= int(page_text) <= MAX_PAGE:
            raise QueueError(f"page: not a number from 1 to {MAX_PAGE}")
        after = (args.get("after") or "").strip()
        if len(after) > MAX_TEXT:
            raise QueueError(f"after: longer than {MAX_TEXT} characters")
        return cls(bool(args.get("reviewed")), int(page_text), after)


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One encounter in the queue.

    Attributes:
        key: Its key.
        visit_number: Its visit number.
        status: ``open`` or ``closed`` (and a failed close).
        oldest: When the oldest administration needing review started (local time, offset).
        administrations: Administrations needing review.
        flagged_lines: Charged lines flagged ``needs_review``.
        reasons: (reason, count) pairs: review codes of outcomes, ``flagged_line``.
        review: ``""`` (never reviewed), ``current`` (reviewed on what it holds now) or
            ``changed`` (reviewed before it last changed).
        last: The latest mark, if any.
        sort_at: ``oldest`` as a UTC instant (None: no administration).
    """

    key: str
    visit_number: str
    status: str
    oldest: str
    administrations: int
    flagged_lines: int
    reasons: tuple[tuple[str, int], ...]
    review: str
    last: ReviewMark | None
    sort_at: datetime | None


@dataclass(frozen=True, slots=True)
class QueuePage:
    """One page of the queue.

    Attributes:
        rows: This page's encounters, oldest first.
        total: Encounters in the queue among those read.
        page: This page's number; ``pages``: how many there are.
        scanned: Encounters read.
        next_after: The key to go on from when ``MAX_SCAN`` stopped the scan (empty: all read).
    """

    rows: tuple[QueueRow, ...]
    total: int
    page: int
    pages: int
    scanned: int
    next_after: str


def entry(reader: StateReader, key: str, reviewed_too: bool) -> QueueRow | None:
    """The queue's row of encounter ``key``, or None when it is not in the queue."""
    need = review_need(reader.emitted(key).values(), reader.outcomes(key))
    if not need.needed:
        return None
    marks = reader.reviews(key)
    current = any(mark.basis == need.basis for mark in marks)
    if current and not reviewed_too:
        return None
    state = reader.get(key)
    if state is None:
        return None
    admins = state.encounter.administrations
    wanted = set(need.administration_ids)
    starts = [a.start for a in admins if a.id in wanted] or [a.start for a in admins]
    first = min(starts, key=lambda at: at.astimezone(UTC)) if starts else None
    enc = state.encounter
    return QueueRow(
        key=key,
        visit_number=state.ref.visit_number or key.rpartition("|")[2],
        status=("closed" if enc.closed else "open") + (f", {state.failed}" if state.failed else ""),
        oldest=when(first) if first else "",
        administrations=len(wanted),
        flagged_lines=need.flagged_lines,
        reasons=need.reasons,
        review="current" if current else "changed" if marks else "",
        last=marks[-1] if marks else None,
        sort_at=first.astimezone(UTC) if first else None,
    )


def _order(row: QueueRow) -> tuple[bool, datetime, str]:
    return (row.sort_at is None, row.sort_at or datetime.max.replace(tzinfo=UTC), row.key)


def queue(source: Source, query: QueueQuery, page_size: int = PAGE_SIZE, max_scan: int = MAX_SCAN) -> QueuePage:
    """The page ``query.page`` of the queue, from the encounters after ``query.after`` (``max_scan`` at most)."""
    found: list[QueueRow] = []
    after = query.after or None
    scanned = 0
    stopped = True
    while scanned < max_scan:
        want = min(PAGE_KEYS, max_scan - scanned)
        with source.read() as reader:
            keys = reader.encounter_keys(after, want)
            for key in keys:
                row = entry(reader, key, query.reviewed)
                if row is not None:
                    found.append(row)
        scanned += len(keys)
        after = keys[-1] if keys else after
        if len(keys) < want:
            stopped = False
            break
    found.sort(key=_order)
    pages = max(1, -(-len(found) // page_size))
    start = (query.page - 1) * page_size
    rows = tuple(found[start : start + page_size])
    return QueuePage(rows, len(found), query.page, pages, scanned, (after or "") if stopped else "")
