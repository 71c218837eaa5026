"""The store contract: one transaction per batch of inputs (dedup, state, emitted lines, outbox).

Besides what coding needs, a transaction keeps what explains it and resolves identities: each
encounter's administration outcomes and message history, placer order → encounter links, ADT
visit windows, a few named settings (``meta``) the state was built under, and the console's
review marks (an append-only audit trail). The merge rules of links and visits are in
``connector.store.visits``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from connector.model import ChargeLine, Encounter
from connector.model.events import EncounterRef, VisitWindow
from connector.model.outcomes import AdministrationOutcome, HistoryEntry
from connector.model.reviews import ReviewMark


@dataclass(frozen=True, slots=True)
class EncounterState:
    """What is remembered of one encounter.

    Attributes:
        ref: Output identity (visit number, authority, patient, facility).
        encounter: Attributes and the current version of each administration.
        updated_at: Wall-clock seconds of the last change (for idle closing).
        messages: How many charge messages the encounter has emitted (message-id sequence).
        failed: Why it could not be coded or rendered when it was last closed (``coding_failed``,
            ``render_failed``; empty: no failure). Idle sweeps skip it until new input changes it.
    """

    ref: EncounterRef
    encounter: Encounter
    updated_at: float
    messages: int = 0
    failed: str = ""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A rendered message waiting for the broker's confirm."""

    message_id: str
    encounter_key: str
    format: str
    body: bytes
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class Purged:
    """What one ``Store.purge`` deleted.

    Attributes:
        dedup_keys: Dedup keys (``seen``) older than the cut-off.
        outbox_rows: Outbox rows confirmed (sent) before the cut-off.
    """

    dedup_keys: int = 0
    outbox_rows: int = 0


class Transaction(Protocol):
    """Reads and writes inside one atomic unit of work."""

    def lock(self, encounter_keys: Iterable[str]) -> None:
        """Serialise this unit of work with others touching the same encounters.

        Called once, before any encounter is read or written, with every encounter the unit may
        change (identity look-ups may come before it), so that a shared store
        (PostgreSQL, several consumers) can take its locks in one sorted pass and never
        deadlock. Single-writer stores (SQLite, memory) need nothing.
        """
        ...

    def is_seen(self, dedup_key: str) -> bool:
        """Whether this input was already processed."""
        ...

    def seen(self, dedup_keys: Collection[str]) -> set[str]:
        """Which of these inputs were already processed (``is_seen`` of many, in few queries)."""
        ...

    def mark_seen(self, dedup_key: str) -> None:
        """Remember an input as processed."""
        ...

    def get(self, encounter_key: str) -> EncounterState | None:
        """An encounter's state, if known."""
        ...

    def put(self, state: EncounterState) -> None:
        """Store an encounter's state."""
        ...

    def emitted(self, encounter_key: str) -> dict[str, ChargeLine]:
        """Lines currently charged (emitted and not credited) for an encounter, by line id."""
        ...

    def set_emitted(self, encounter_key: str, lines: Mapping[str, ChargeLine]) -> None:
        """Replace the set of currently charged lines of an encounter."""
        ...

    def enqueue(self, row: OutboxRow) -> None:
        """Add a rendered message to the outbox (idempotent by message id and format)."""
        ...

    def open_encounters(self, idle_before: float | None = None) -> list[str]:
        """Keys of encounters not closed, sorted.

        With ``idle_before``: only those idle since then and not marked ``failed`` (an idle
        sweep does not retry an encounter that failed until new input arrives for it).
        """
        ...

    def encounter_keys(self, after: str | None = None, limit: int | None = None) -> list[str]:
        """Keys of every encounter, open or closed, sorted in the store's key order.

        Pages through them (``ivpush recode``): only keys sorting after ``after`` (None: from the
        first), at most ``limit`` of them (None: all). PostgreSQL sorts by the database's
        collation; memory and SQLite by code point.
        """
        ...

    def outcomes(self, encounter_key: str) -> tuple[AdministrationOutcome, ...]:
        """The stored outcomes of an encounter's administrations, in the order they were put."""
        ...

    def put_outcomes(self, encounter_key: str, outcomes: Iterable[AdministrationOutcome]) -> None:
        """Replace the set of outcomes of an encounter (empty: forget them)."""
        ...

    def scan_outcomes(self) -> Iterator[tuple[str, AdministrationOutcome]]:
        """Every stored outcome with its encounter key, by key (then in the order put).

        Consume it inside the transaction that made it.
        """
        ...

    def add_history(self, entry: HistoryEntry) -> None:
        """Record a message an encounter emitted; a repeat of (encounter key, sequence) is ignored."""
        ...

    def history(self, encounter_key: str) -> list[HistoryEntry]:
        """The messages an encounter emitted, by sequence."""
        ...

    def link_orders(self, order_ids: Iterable[str], encounter_key: str) -> None:
        """Link placer order ids to the encounter they were seen with.

        An order id already linked keeps its encounter (the first link wins); two encounters
        claiming one new order id in the same transaction: the smaller key wins, whatever order
        the claims come in. An empty encounter key links nothing.
        """
        ...

    def order_link(self, order_id: str) -> str | None:
        """The encounter a placer order id is linked to, if any."""
        ...

    def add_visit(self, window: VisitWindow) -> None:
        """Record an ADT visit window, widening the one held for (patient key, encounter key).

        The result has the earliest start and the latest end stated; a start or end no message
        gave is unknown, and any stated one wins over it (``connector.store.visits.widen``).
        """
        ...

    def visit_at(self, patient_key: str, at: datetime) -> str | None:
        """The encounter key of the patient's only visit whose window covers ``at``.

        Covering: start <= at and (no end or at <= end), compared as instants; a window without
        a start covers nothing. None when no visit covers it, or more than one (never guess).
        """
        ...

    def get_meta(self, name: str) -> str | None:
        """A named setting the state was built under (e.g. the coding zone), if recorded."""
        ...

    def set_meta(self, name: str, value: str) -> None:
        """Record a named setting."""
        ...

    def add_review(self, mark: ReviewMark) -> None:
        """Append a review mark (the audit trail: marks are never updated nor deleted)."""
        ...

    def reviews(self, encounter_key: str) -> list[ReviewMark]:
        """An encounter's review marks, in the order they were added."""
        ...


class Store(Protocol):
    """Durable encounter state and outbox."""

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A unit of work: committed on normal exit, rolled back on an exception."""
        ...

    def pending(self, limit: int = 1000) -> list[OutboxRow]:
        """Outbox rows not yet confirmed, oldest first."""
        ...

    def mark_sent(self, keys: Iterable[tuple[str, str]]) -> None:
        """Mark (message id, format) rows as confirmed by the broker."""
        ...

    def purge(self, older_than: float, limit: int | None = None) -> Purged:
        """Delete dedup keys first seen, and outbox rows confirmed, before ``older_than``.

        Rows still pending are never deleted, nor encounters, nor what explains or resolves
        them (outcomes, history, order links, visit windows, meta, review marks): those live as
        long as the state. An input whose dedup key was
        purged is applied again if it is ever delivered again: keep keys longer than any input
        can come back (redelivery, an engine's resend, a parked input re-driven). Deletes in
        small transactions, so a consumer sharing the store is never held up for long.

        Args:
            older_than: Cut-off, wall-clock seconds since the epoch (the store's clock).
            limit: At most this many rows of each kind in this call (None: all).
        """
        ...

    def close(self) -> None:
        """Release resources."""
        ...
