"""In-memory store: the same contract as SQLite, for tests and throwaway replays."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from connector.model import ChargeLine
from connector.model.events import VisitWindow
from connector.model.outcomes import AdministrationOutcome, HistoryEntry
from connector.model.reviews import ReviewMark
from connector.store.base import EncounterState, OutboxRow, Purged
from connector.store.visits import claim, single_visit_at, widen


@dataclass
class _Data:
    seen: set[str] = field(default_factory=set)
    states: dict[str, EncounterState] = field(default_factory=dict)
    emitted: dict[str, dict[str, ChargeLine]] = field(default_factory=dict)
    outbox: dict[tuple[str, str], OutboxRow] = field(default_factory=dict)
    sent: set[tuple[str, str]] = field(default_factory=set)
    clock: Callable[[], float] = time.time
    seen_at: dict[str, float] = field(default_factory=dict)  # when each key was first committed
    sent_at: dict[tuple[str, str], float] = field(default_factory=dict)
    sequence: int = 0  # last outbox sequence given (rows may be purged: never reused)
    outcomes: dict[str, tuple[AdministrationOutcome, ...]] = field(default_factory=dict)
    history: dict[tuple[str, int], HistoryEntry] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    visits: dict[tuple[str, str], VisitWindow] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    reviews: list[ReviewMark] = field(default_factory=list)


class MemoryTransaction:
    """Writes go to an overlay and reach the data only on commit (so rollback is free)."""

    def __init__(self, data: _Data) -> None:
        self._data = data
        self._seen: set[str] = set()
        self._states: dict[str, EncounterState] = {}
        self._emitted: dict[str, dict[str, ChargeLine]] = {}
        self._outbox: dict[tuple[str, str], OutboxRow] = {}
        self._outcomes: dict[str, tuple[AdministrationOutcome, ...]] = {}
        self._history: dict[tuple[str, int], HistoryEntry] = {}
        self._links: dict[str, str] = {}
        self._visits: dict[tuple[str, str], VisitWindow] = {}
        self._meta: dict[str, str] = {}
        self._reviews: list[ReviewMark] = []

    def lock(self, encounter_keys: Iterable[str]) -> None:
        """Nothing to do: one process owns the data."""

    def is_seen(self, dedup_key: str) -> bool:
        """Whether this input was already processed."""
        return dedup_key in self._seen or dedup_key in self._data.seen

    def seen(self, dedup_keys: Collection[str]) -> set[str]:
        """Which of these inputs were already processed."""
        return {key for key in dedup_keys if key in self._seen or key in self._data.seen}

    def mark_seen(self, dedup_key: str) -> None:
        """Remember an input as processed."""
        self._seen.add(dedup_key)

    def get(self, encounter_key: str) -> EncounterState | None:
        """An encounter's state, if known."""
        return self._states.get(encounter_key) or self._data.states.get(encounter_key)

    def put(self, state: EncounterState) -> None:
        """Store an encounter's state."""
        self._states[state.encounter.key] = state

    def emitted(self, encounter_key: str) -> dict[str, ChargeLine]:
        """Lines currently charged for an encounter."""
        found = self._emitted.get(encounter_key)
        return dict(found if found is not None else self._data.emitted.get(encounter_key, {}))

    def set_emitted(self, encounter_key: str, lines: Mapping[str, ChargeLine]) -> None:
        """Replace the currently charged lines of an encounter."""
        self._emitted[encounter_key] = dict(lines)

    def enqueue(self, row: OutboxRow) -> None:
        """Add a rendered message to the outbox."""
        self._outbox.setdefault((row.message_id, row.format), row)

    def open_encounters(self, idle_before: float | None = None) -> list[str]:
        """Keys of encounters not closed (optionally idle since ``idle_before`` and not failed)."""
        states = {**self._data.states, **self._states}
        return sorted(
            key
            for key, state in states.items()
            if not state.encounter.closed
            and (idle_before is None or (state.updated_at < idle_before and not state.failed))
        )

    def encounter_keys(self, after: str | None = None, limit: int | None = None) -> list[str]:
        """Keys of every encounter, sorted; only those after ``after``, at most ``limit``."""
        keys = sorted(key for key in {**self._data.states, **self._states} if after is None or key > after)
        return keys if limit is None else keys[:limit]

    def outcomes(self, encounter_key: str) -> tuple[AdministrationOutcome, ...]:
        """The stored outcomes of an encounter, in the order put."""
        found = self._outcomes.get(encounter_key)
        return found if found is not None else self._data.outcomes.get(encounter_key, ())

    def put_outcomes(self, encounter_key: str, outcomes: Iterable[AdministrationOutcome]) -> None:
        """Replace the outcomes of an encounter."""
        self._outcomes[encounter_key] = tuple(outcomes)

    def scan_outcomes(self) -> Iterator[tuple[str, AdministrationOutcome]]:
        """Every stored outcome with its encounter key, by key."""
        merged = {**self._data.outcomes, **self._outcomes}
        for key in sorted(merged):
            for outcome in merged[key]:
                yield key, outcome

    def add_history(self, entry: HistoryEntry) -> None:
        """Record an emitted message (a repeat of its encounter and sequence is ignored)."""
        at = (entry.encounter_key, entry.sequence)
        if at not in self._data.history:
            self._history.setdefault(at, entry)

    def history(self, encounter_key: str) -> list[HistoryEntry]:
        """The messages an encounter emitted, by sequence."""
        merged = {**self._history, **self._data.history}
        return [merged[at] for at in sorted(at for at in merged if at[0] == encounter_key)]

    def link_orders(self, order_ids: Iterable[str], encounter_key: str) -> None:
        """Link order ids to an encounter (first link wins; the smaller key within one transaction)."""
        if encounter_key:
            claim(self._links, (o for o in order_ids if o not in self._data.links), encounter_key)

    def order_link(self, order_id: str) -> str | None:
        """The encounter an order id is linked to."""
        return self._data.links.get(order_id) or self._links.get(order_id)

    def add_visit(self, window: VisitWindow) -> None:
        """Record a visit window, widening the one held."""
        at = (window.patient_key, window.encounter_key)
        self._visits[at] = widen(self._visits.get(at) or self._data.visits.get(at), window)

    def visit_at(self, patient_key: str, at: datetime) -> str | None:
        """The patient's only visit covering ``at``, else None."""
        merged = {**self._data.visits, **self._visits}
        return single_visit_at((w for (patient, _), w in merged.items() if patient == patient_key), at)

    def get_meta(self, name: str) -> str | None:
        """A recorded setting."""
        return self._meta.get(name, self._data.meta.get(name))

    def set_meta(self, name: str, value: str) -> None:
        """Record a setting."""
        self._meta[name] = value

    def add_review(self, mark: ReviewMark) -> None:
        """Append a review mark (its time as the same instant in UTC, as the other stores read it back)."""
        self._reviews.append(replace(mark, at=mark.at.astimezone(UTC)))

    def reviews(self, encounter_key: str) -> list[ReviewMark]:
        """An encounter's review marks, in the order added."""
        return [mark for mark in (*self._data.reviews, *self._reviews) if mark.encounter_key == encounter_key]

    def commit(self) -> None:
        """Apply the overlay."""
        now = self._data.clock()
        for dedup_key in self._seen - self._data.seen:
            self._data.seen_at[dedup_key] = now
        self._data.seen |= self._seen
        self._data.states.update(self._states)
        self._data.emitted.update(self._emitted)
        self._data.outcomes.update(self._outcomes)
        self._data.history.update(self._history)
        self._data.links.update(self._links)
        self._data.visits.update(self._visits)
        self._data.meta.update(self._meta)
        self._data.reviews.extend(self._reviews)
        for key, row in self._outbox.items():
            if key not in self._data.outbox:
                self._data.sequence += 1
                sequence = self._data.sequence
                self._data.outbox[key] = OutboxRow(row.message_id, row.encounter_key, row.format, row.body, sequence)


class MemoryStore:
    """Everything in process memory; lost at exit."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._data = _Data(clock=clock)

    @contextmanager
    def transaction(self) -> Iterator[MemoryTransaction]:
        """A unit of work: committed on normal exit, dropped on an exception."""
        tx = MemoryTransaction(self._data)
        yield tx
        tx.commit()

    def pending(self, limit: int = 1000) -> list[OutboxRow]:
        """Outbox rows not yet confirmed, oldest first."""
        rows = [row for key, row in self._data.outbox.items() if key not in self._data.sent]
        return sorted(rows, key=lambda r: r.sequence)[:limit]

    def mark_sent(self, keys: Iterable[tuple[str, str]]) -> None:
        """Mark rows as confirmed."""
        now = self._data.clock()
        for key in keys:
            self._data.sent.add(key)
            self._data.sent_at.setdefault(key, now)

    def purge(self, older_than: float, limit: int | None = None) -> Purged:
        """Delete dedup keys and sent outbox rows older than ``older_than`` (at most ``limit`` of each).

        Outcomes, history, order links, visits, meta and review marks are kept (as long as the state).
        """
        data = self._data
        keys = sorted((at, key) for key, at in data.seen_at.items() if at < older_than)[:limit]
        for _, key in keys:
            data.seen.discard(key)
            del data.seen_at[key]
        rows = sorted((at, key) for key, at in data.sent_at.items() if at < older_than)[:limit]
        for _, row in rows:
            data.sent.discard(row)
            data.outbox.pop(row, None)
            del data.sent_at[row]
        return Purged(len(keys), len(rows))

    def close(self) -> None:
        """Nothing to release."""
