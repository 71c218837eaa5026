"""Decoded encounter states kept between SQLite transactions (least recently used evicted first).

Replay and the consumer touch the same few hundred open encounters batch after batch; reading
and JSON-decoding every administration of each of them once per batch was ~85 % of a replay.
The cache holds the *committed* state of recently used encounters, exactly as a read from the
file would return it, so a hit skips the read and the decode. ``SqliteStore`` keeps it correct:
states enter it only after their transaction committed, a rolled-back transaction evicts every
encounter it wrote, and the whole cache is dropped when another connection changed the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from connector.model import Administration
from connector.store.base import EncounterState

DEFAULT_MAX_ADMINISTRATIONS = 20_000  # ~1,000 encounters of 20; ~2.4 kB each decoded: <= ~50 MB


@dataclass(frozen=True, slots=True)
class CachedState:
    """A committed state and its administrations by id (what is stored, for change detection)."""

    state: EncounterState
    by_id: dict[str, Administration]

    @property
    def weight(self) -> int:
        """Cost of holding it: its administrations, plus one for the encounter itself."""
        return len(self.by_id) + 1


class StateCache:
    """Committed encounter states by key, bounded by the administrations they hold.

    Args:
        max_administrations: Evict least recently used encounters beyond this many
            administrations in all (0 disables the cache).
    """

    def __init__(self, max_administrations: int = DEFAULT_MAX_ADMINISTRATIONS) -> None:
        if max_administrations < 0:
            raise ValueError(f"cache size must be >= 0, got {max_administrations}")
        self._limit = max_administrations
        self._entries: dict[str, CachedState] = {}  # insertion order = recency, oldest first
        self._weight = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def weight(self) -> int:
        """Administrations (plus one per encounter) currently held."""
        return self._weight

    def get(self, key: str) -> CachedState | None:
        """The cached committed state of an encounter, marking it most recently used."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._entries[key] = entry
        return entry

    def put(self, key: str, entry: CachedState) -> None:
        """Hold an encounter's committed state, evicting the least recently used beyond the bound."""
        self.discard((key,))
        if entry.weight > self._limit:
            return
        self._entries[key] = entry
        self._weight += entry.weight
        while self._weight > self._limit:
            oldest = next(iter(self._entries))
            self._weight -= self._entries.pop(oldest).weight

    def discard(self, keys: Iterable[str]) -> None:
        """Forget these encounters (their stored state may differ from what is cached)."""
        for key in keys:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._weight -= entry.weight

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()
        self._weight = 0
