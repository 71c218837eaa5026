"""In-memory store: the same contract as SQLite, for tests and throwaway replays."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from connector.model import ChargeLine
from connector.store.base import EncounterState, OutboxRow


@dataclass
class _Data:
    seen: set[str] = field(default_factory=set)
    states: dict[str, EncounterState] = field(default_factory=dict)
    emitted: dict[str, dict[str, ChargeLine]] = field(default_factory=dict)
    outbox: dict[tuple[str, str], OutboxRow] = field(default_factory=dict)
    sent: set[tuple[str, str]] = field(default_factory=set)


class MemoryTransaction:
    """Writes go to an overlay and reach the data only on commit (so rollback is free)."""

    def __init__(self, data: _Data) -> None:
        self._data = data
        self._seen: set[str] = set()
        self._states: dict[str, EncounterState] = {}
        self._emitted: dict[str, dict[str, ChargeLine]] = {}
        self._outbox: dict[tuple[str, str], OutboxRow] = {}

    def lock(self, encounter_keys: Iterable[str]) -> None:
        """Nothing to do: one process owns the data."""

    def is_seen(self, dedup_key: str) -> bool:
        """Whether this input was already processed."""
        return dedup_key in self._seen or dedup_key in self._data.seen

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
        """Keys of encounters not closed (optionally idle since ``idle_before``)."""
        states = {**self._data.states, **self._states}
        return sorted(
            key
            for key, state in states.items()
            if not state.encounter.closed and (idle_before is None or state.updated_at < idle_before)
        )

    def commit(self) -> None:
        """Apply the overlay."""
        self._data.seen |= self._seen
        self._data.states.update(self._states)
        self._data.emitted.update(self._emitted)
        sequence = len(self._data.outbox)
        for key, row in self._outbox.items():
            if key not in self._data.outbox:
                sequence += 1
                self._data.outbox[key] = OutboxRow(row.message_id, row.encounter_key, row.format, row.body, sequence)


class MemoryStore:
    """Everything in process memory; lost at exit."""

    def __init__(self) -> None:
        self._data = _Data()

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
        self._data.sent.update(keys)

    def close(self) -> None:
        """Nothing to release."""
