"""What a SQLite transaction keeps beside encounter state: outcomes, history, order links, visits, meta, reviews.

Written to the file at once (inside the transaction ``SqliteStore.transaction`` opened), read
back from it; none of it goes through the decoded-state cache. Merge rules of links and visits:
``connector.store.visits``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime

import orjson

from connector.model.events import VisitWindow
from connector.model.outcomes import AdministrationOutcome, HistoryEntry
from connector.model.reviews import ReviewMark
from connector.store import codec
from connector.store.visits import claim, single_visit_at, widen


def dumps(value: object) -> str:
    """Compact JSON text; orjson (~10x faster) unless it refuses the value (e.g. a lone surrogate)."""
    try:
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _text(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class SqliteRecords:
    """The outcome, history, link, visit, meta and review half of ``SqliteTransaction``.

    ``linked`` holds the order links this transaction inserted (only those may still move to
    a smaller encounter key; links committed before never change, so ``committed``, links the
    store saw committed, skips their look-ups and repeated inserts).
    """

    def __init__(self, db: sqlite3.Connection, committed: Mapping[str, str] | None = None) -> None:
        self._db = db
        self._committed: Mapping[str, str] = committed if committed is not None else {}
        self.linked: dict[str, str] = {}

    def outcomes(self, encounter_key: str) -> tuple[AdministrationOutcome, ...]:
        """The stored outcomes of an encounter, in the order put."""
        row = self._db.execute("SELECT body FROM outcomes WHERE encounter_key = ?", (encounter_key,)).fetchone()
        return tuple(codec.outcome_from_dict(item) for item in orjson.loads(row[0])) if row else ()

    def put_outcomes(self, encounter_key: str, outcomes: Iterable[AdministrationOutcome]) -> None:
        """Replace the outcomes of an encounter (none: its row is deleted)."""
        body = [codec.outcome_to_dict(outcome) for outcome in outcomes]
        if not body:
            self._db.execute("DELETE FROM outcomes WHERE encounter_key = ?", (encounter_key,))
            return
        self._db.execute(
            "INSERT OR REPLACE INTO outcomes (encounter_key, body) VALUES (?, ?)", (encounter_key, dumps(body))
        )

    def scan_outcomes(self) -> Iterator[tuple[str, AdministrationOutcome]]:
        """Every stored outcome with its encounter key, by key (read as it is consumed)."""
        for key, body in self._db.execute("SELECT encounter_key, body FROM outcomes ORDER BY encounter_key"):
            for item in orjson.loads(body):
                yield key, codec.outcome_from_dict(item)

    def add_history(self, entry: HistoryEntry) -> None:
        """Record an emitted message (a repeat of its encounter and sequence is ignored)."""
        self._db.execute(
            "INSERT OR IGNORE INTO history (encounter_key, sequence, message_id, recorded_at, cause, body) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            codec.history_to_row(entry),
        )

    def history(self, encounter_key: str) -> list[HistoryEntry]:
        """The messages an encounter emitted, by sequence."""
        rows = self._db.execute(
            "SELECT encounter_key, sequence, message_id, recorded_at, cause, body FROM history "
            "WHERE encounter_key = ? ORDER BY sequence",
            (encounter_key,),
        )
        return [codec.history_from_row(row) for row in rows]

    def link_orders(self, order_ids: Iterable[str], encounter_key: str) -> None:
        """Link order ids to an encounter (first link wins; the smaller key within one transaction)."""
        if not encounter_key:
            return
        wanted: dict[str, str] = {}
        claim(wanted, order_ids, encounter_key)
        for order_id in sorted(wanted):
            if order_id in self._committed:
                continue  # linked before this transaction: the first link wins
            held = self.linked.get(order_id)
            if held is None:
                inserted = self._db.execute(
                    "INSERT OR IGNORE INTO order_links (order_id, encounter_key) VALUES (?, ?)",
                    (order_id, encounter_key),
                ).rowcount
                if inserted:
                    self.linked[order_id] = encounter_key
            elif encounter_key < held:
                self._db.execute(
                    "UPDATE order_links SET encounter_key = ? WHERE order_id = ?", (encounter_key, order_id)
                )
                self.linked[order_id] = encounter_key

    def order_link(self, order_id: str) -> str | None:
        """The encounter an order id is linked to."""
        if order_id in self._committed:
            return self._committed[order_id]
        row = self._db.execute("SELECT encounter_key FROM order_links WHERE order_id = ?", (order_id,)).fetchone()
        return str(row[0]) if row else None

    def add_visit(self, window: VisitWindow) -> None:
        """Record a visit window, widening the one held."""
        row = self._db.execute(
            "SELECT start_at, end_at FROM visits WHERE patient_key = ? AND encounter_key = ?",
            (window.patient_key, window.encounter_key),
        ).fetchone()
        held = VisitWindow(window.patient_key, window.encounter_key, _time(row[0]), _time(row[1])) if row else None
        merged = widen(held, window)
        self._db.execute(
            "INSERT OR REPLACE INTO visits (patient_key, encounter_key, start_at, end_at) VALUES (?, ?, ?, ?)",
            (merged.patient_key, merged.encounter_key, _text(merged.start), _text(merged.end)),
        )

    def visit_at(self, patient_key: str, at: datetime) -> str | None:
        """The patient's only visit covering ``at``, else None."""
        rows = self._db.execute(
            "SELECT encounter_key, start_at, end_at FROM visits WHERE patient_key = ?", (patient_key,)
        )
        return single_visit_at((VisitWindow(patient_key, key, _time(s), _time(e)) for key, s, e in rows), at)

    def get_meta(self, name: str) -> str | None:
        """A recorded setting."""
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, name: str, value: str) -> None:
        """Record a setting."""
        self._db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def add_review(self, mark: ReviewMark) -> None:
        """Append a review mark (its time stored as an ISO UTC instant)."""
        self._db.execute(
            "INSERT INTO reviews (encounter_key, at, actor, note, basis) VALUES (?, ?, ?, ?, ?)",
            (mark.encounter_key, mark.at.astimezone(UTC).isoformat(), mark.actor, mark.note, mark.basis),
        )

    def reviews(self, encounter_key: str) -> list[ReviewMark]:
        """An encounter's review marks, in the order added."""
        rows = self._db.execute(
            "SELECT encounter_key, at, actor, note, basis FROM reviews WHERE encounter_key = ? ORDER BY seq",
            (encounter_key,),
        )
        return [ReviewMark(key, datetime.fromisoformat(at), actor, note, basis) for key, at, actor, note, basis in rows]
