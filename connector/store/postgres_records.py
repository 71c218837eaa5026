"""What a PostgreSQL transaction keeps beside encounter state: outcomes, history, order links, visits, meta, reviews.

Writes are buffered like the rest of ``PostgresTransaction`` and sent in its commit pipeline;
reads see the buffer. Merge rules: ``connector.store.visits``. Under several consumers:

- an order link is inserted ``ON CONFLICT`` and only moves to a smaller encounter key while
  the row is still the current transaction's own (``linked_tx = txid_current()``): a link
  another transaction committed never changes, and of two transactions racing for one order
  id the first to commit wins (the other waits on the row, then finds it);
- a visit window is widened in the upsert itself (``least``/``greatest`` ignore NULLs: an end
  or start no message gave is unknown), so concurrent statements of one visit merge whatever
  order they commit in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Final

import orjson
import psycopg
from psycopg.rows import TupleRow

from connector.model.events import VisitWindow
from connector.model.outcomes import AdministrationOutcome, HistoryEntry
from connector.model.reviews import ReviewMark
from connector.store import codec
from connector.store.visits import claim, single_visit_at, widen

Connection = psycopg.Connection[TupleRow]

LINK: Final = (
    "INSERT INTO order_links (order_id, encounter_key, linked_tx) VALUES (%s, %s, txid_current()) "
    "ON CONFLICT (order_id) DO UPDATE SET encounter_key = excluded.encounter_key "
    "WHERE order_links.linked_tx = txid_current() AND excluded.encounter_key < order_links.encounter_key"
)
READ_LINK: Final = (
    "SELECT encounter_key, linked_tx IS NOT DISTINCT FROM txid_current_if_assigned() "
    "FROM order_links WHERE order_id = %s"
)
VISIT: Final = (
    "INSERT INTO visits (patient_key, encounter_key, start_at, end_at) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (patient_key, encounter_key) DO UPDATE SET "
    "start_at = least(visits.start_at, excluded.start_at), end_at = greatest(visits.end_at, excluded.end_at)"
)
READ_HISTORY: Final = (
    "SELECT encounter_key, sequence, message_id, recorded_at, cause, body FROM history WHERE encounter_key = %s"
)
ADD_HISTORY: Final = (
    "INSERT INTO history (encounter_key, sequence, message_id, recorded_at, cause, body) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
ADD_REVIEW: Final = "INSERT INTO reviews (encounter_key, at, actor, note, basis) VALUES (%s, %s, %s, %s, %s)"
READ_REVIEWS: Final = "SELECT encounter_key, at, actor, note, basis FROM reviews WHERE encounter_key = %s ORDER BY seq"
META: Final = "INSERT INTO meta (name, value) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET value = excluded.value"


def _outcomes_text(outcomes: tuple[AdministrationOutcome, ...]) -> str:
    return orjson.dumps([codec.outcome_to_dict(outcome) for outcome in outcomes]).decode()


def _outcomes(text: str) -> tuple[AdministrationOutcome, ...]:
    return tuple(codec.outcome_from_dict(item) for item in orjson.loads(text))


class PostgresRecords:
    """The outcome, history, link, visit, meta and review half of ``PostgresTransaction`` (buffered writes)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._outcomes: dict[str, tuple[AdministrationOutcome, ...]] = {}
        self._history: dict[tuple[str, int], HistoryEntry] = {}
        self._links: dict[str, str] = {}
        self._visits: dict[tuple[str, str], VisitWindow] = {}
        self._meta: dict[str, str] = {}
        self._reviews: list[ReviewMark] = []
        self._scans = 0  # server-side cursors opened (each scan names its own)

    def outcomes(self, encounter_key: str) -> tuple[AdministrationOutcome, ...]:
        """The stored outcomes of an encounter, in the order put."""
        if encounter_key in self._outcomes:
            return self._outcomes[encounter_key]
        row = self._conn.execute("SELECT body FROM outcomes WHERE encounter_key = %s", (encounter_key,)).fetchone()
        return _outcomes(row[0]) if row else ()

    def put_outcomes(self, encounter_key: str, outcomes: Iterable[AdministrationOutcome]) -> None:
        """Replace the outcomes of an encounter (sent at commit; none: its row is deleted)."""
        self._outcomes[encounter_key] = tuple(outcomes)

    def scan_outcomes(self) -> Iterator[tuple[str, AdministrationOutcome]]:
        """Every stored outcome with its encounter key, by key (a server-side cursor, read as consumed)."""
        self.flush()
        self._scans += 1
        with self._conn.cursor(name=f"ivpush_scan_outcomes_{self._scans}") as cursor:
            cursor.execute("SELECT encounter_key, body FROM outcomes ORDER BY encounter_key")
            for key, body in cursor:
                for outcome in _outcomes(body):
                    yield key, outcome

    def add_history(self, entry: HistoryEntry) -> None:
        """Record an emitted message (sent at commit; a repeat of its encounter and sequence is ignored)."""
        self._history.setdefault((entry.encounter_key, entry.sequence), entry)

    def history(self, encounter_key: str) -> list[HistoryEntry]:
        """The messages an encounter emitted, by sequence (what is stored wins over a buffered repeat)."""
        rows = self._conn.execute(READ_HISTORY, (encounter_key,)).fetchall()
        merged = {sequence: entry for (key, sequence), entry in self._history.items() if key == encounter_key}
        merged.update({entry.sequence: entry for entry in map(codec.history_from_row, rows)})
        return [merged[sequence] for sequence in sorted(merged)]

    def link_orders(self, order_ids: Iterable[str], encounter_key: str) -> None:
        """Link order ids to an encounter (sent at commit; see the module docstring)."""
        if encounter_key:
            claim(self._links, order_ids, encounter_key)

    def order_link(self, order_id: str) -> str | None:
        """The encounter an order id is linked to (a committed link wins over this transaction's claim)."""
        pending = self._links.get(order_id)
        row = self._conn.execute(READ_LINK, (order_id,)).fetchone()
        if row is None:
            return pending
        stored, own = str(row[0]), bool(row[1])
        return min(stored, pending) if own and pending is not None else stored

    def add_visit(self, window: VisitWindow) -> None:
        """Record a visit window, widening the one held (sent at commit)."""
        at = (window.patient_key, window.encounter_key)
        self._visits[at] = widen(self._visits.get(at), window)

    def visit_at(self, patient_key: str, at: datetime) -> str | None:
        """The patient's only visit covering ``at``, else None."""
        rows = self._conn.execute(
            "SELECT encounter_key, start_at, end_at FROM visits WHERE patient_key = %s", (patient_key,)
        ).fetchall()
        windows = {key: VisitWindow(patient_key, key, start, end) for key, start, end in rows}
        for (patient, key), window in self._visits.items():
            if patient == patient_key:
                windows[key] = widen(windows.get(key), window)
        return single_visit_at(windows.values(), at)

    def get_meta(self, name: str) -> str | None:
        """A recorded setting."""
        if name in self._meta:
            return self._meta[name]
        row = self._conn.execute("SELECT value FROM meta WHERE name = %s", (name,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, name: str, value: str) -> None:
        """Record a setting (sent at commit)."""
        self._meta[name] = value

    def add_review(self, mark: ReviewMark) -> None:
        """Append a review mark (sent at commit)."""
        self._reviews.append(mark)

    def reviews(self, encounter_key: str) -> list[ReviewMark]:
        """An encounter's review marks, in the order added (stored ones, then this transaction's)."""
        rows = self._conn.execute(READ_REVIEWS, (encounter_key,)).fetchall()
        stored = [ReviewMark(key, at.astimezone(UTC), actor, note, basis) for key, at, actor, note, basis in rows]
        return stored + [mark for mark in self._reviews if mark.encounter_key == encounter_key]

    def flush(self) -> None:
        """Send the buffered writes (``PostgresTransaction`` sends its own with them)."""
        if self._records_pending():
            with self._conn.pipeline(), self._conn.cursor() as cursor:
                self._send_records(cursor)

    def _records_pending(self) -> bool:
        return bool(self._outcomes or self._history or self._links or self._visits or self._meta or self._reviews)

    def _send_records(self, cursor: psycopg.Cursor[Any]) -> None:
        """Send and clear the buffered writes (inside the caller's pipeline)."""
        gone = [key for key, outcomes in self._outcomes.items() if not outcomes]
        if gone:
            cursor.execute("DELETE FROM outcomes WHERE encounter_key = ANY(%s)", (gone,))
        kept = [(key, _outcomes_text(outcomes)) for key, outcomes in self._outcomes.items() if outcomes]
        if kept:
            cursor.executemany(
                "INSERT INTO outcomes (encounter_key, body) VALUES (%s, %s) "
                "ON CONFLICT (encounter_key) DO UPDATE SET body = excluded.body",
                kept,
            )
        if self._history:
            cursor.executemany(ADD_HISTORY, [codec.history_to_row(entry) for entry in self._history.values()])
        if self._links:
            cursor.executemany(LINK, sorted(self._links.items()))
        if self._visits:
            windows = [window for _, window in sorted(self._visits.items())]
            cursor.executemany(VISIT, [(w.patient_key, w.encounter_key, w.start, w.end) for w in windows])
        if self._meta:
            cursor.executemany(META, sorted(self._meta.items()))
        if self._reviews:
            cursor.executemany(ADD_REVIEW, [(m.encounter_key, m.at, m.actor, m.note, m.basis) for m in self._reviews])
        for buffer in (self._outcomes, self._history, self._links, self._visits, self._meta, self._reviews):
            buffer.clear()
