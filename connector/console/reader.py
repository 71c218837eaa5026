"""The console's only way into the state: read-only views, one short transaction each.

Pages read through ``StateReader``, the reading half of the store's ``Transaction`` (no
``put``, ``set_emitted``, ``enqueue`` …), so a page cannot change the state by mistake. Each
request reads in short transactions (a search in pages of keys), so a consumer writing the same
SQLite file waits at most for one page.

The one write is an action's: ``StateSource.write`` gives a ``StateWriter`` — the reads plus
``lock`` and ``add_review`` (an audit record; still no way to change coding) — and only when
the source was opened ``writable`` (``ivpush serve`` does so when a credential enables
actions). A mark is one short transaction: one row inserted.

A SQLite connection belongs to the thread that opened it, and the WSGI server answers from a
few threads: ``StateSource`` opens one store per thread, on first use, and closes them all at
the end.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol, runtime_checkable

from connector.bootstrap import POSTGRES_SCHEMES, StoreOpenError, open_store, store_label
from connector.model import AdministrationOutcome, ChargeLine, HistoryEntry
from connector.model.reviews import ReviewMark
from connector.store.base import EncounterState, Store

# What a driver raises when the state went away or is not one (its text may quote values: the
# console shows the class only).
READ_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, OSError, RuntimeError)


class StateError(Exception):
    """The state cannot be opened or read (a message without values from the driver)."""


class StateReader(Protocol):
    """What the console reads of a state: the reading methods of ``connector.store.base.Transaction``."""

    def get(self, encounter_key: str) -> EncounterState | None:
        """An encounter's state, if known."""
        ...

    def emitted(self, encounter_key: str) -> dict[str, ChargeLine]:
        """Lines currently charged (emitted and not credited), by line id."""
        ...

    def encounter_keys(self, after: str | None = None, limit: int | None = None) -> list[str]:
        """Keys of every encounter, sorted in the store's order, after ``after``, at most ``limit``."""
        ...

    def outcomes(self, encounter_key: str) -> tuple[AdministrationOutcome, ...]:
        """The stored outcomes of an encounter's administrations."""
        ...

    def history(self, encounter_key: str) -> list[HistoryEntry]:
        """The messages an encounter emitted, by sequence."""
        ...

    def reviews(self, encounter_key: str) -> list[ReviewMark]:
        """An encounter's review marks, in the order added."""
        ...


class StateWriter(StateReader, Protocol):
    """What an action may do: read, serialise with the consumers, append a review mark."""

    def lock(self, encounter_keys: Iterable[str]) -> None:
        """Serialise with other units of work touching these encounters (PostgreSQL)."""
        ...

    def add_review(self, mark: ReviewMark) -> None:
        """Append a review mark (never updated nor deleted)."""
        ...


class Source(Protocol):
    """Where pages read from: a state, one read-only unit of work at a time."""

    def read(self) -> contextlib.AbstractContextManager[StateReader]:
        """A short read-only unit of work."""
        ...


@runtime_checkable
class WritableSource(Source, Protocol):
    """A state an action may write a review mark to (when ``writable``)."""

    writable: bool

    def write(self) -> contextlib.AbstractContextManager[StateWriter]:
        """A short unit of work that may append a review mark."""
        ...


class StateSource:
    """A state named by a spec (SQLite path or PostgreSQL URL), one store per server thread."""

    def __init__(self, spec: str, opener: Callable[[str], Store] = open_store, writable: bool = False) -> None:
        """Check that the state exists; stores are opened per thread on first use.

        Args:
            spec: SQLite file or ``postgresql://`` URL (never created: a missing file is an error).
            opener: Opens a store from a spec (``connector.bootstrap.open_store``).
            writable: Whether ``write`` may be used (actions enabled); else it raises.

        Raises:
            StateError: The spec names no state file (the console never creates one).
        """
        if spec == ":memory:" or (not spec.startswith(POSTGRES_SCHEMES) and not os.path.isfile(spec)):
            raise StateError(f"no such state file: {spec}")
        self.label = store_label(spec)
        self.writable = writable
        self._spec = spec
        self._opener = opener
        self._local = threading.local()
        self._opened: list[Store] = []
        self._lock = threading.Lock()

    def check(self) -> None:
        """Open the state in this thread and read one key, so that a bad state fails at start.

        Raises:
            StateError: It cannot be opened or read.
        """
        with self.read() as reader:
            reader.encounter_keys(limit=1)

    def _store(self) -> Store:
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            try:
                store = self._opener(self._spec)
            except StoreOpenError as error:
                raise StateError(str(error)) from error
            self._local.store = store
            with self._lock:
                self._opened.append(store)
        return store

    @contextmanager
    def read(self) -> Iterator[StateReader]:
        """A short unit of work that only reads (committed empty, or rolled back on an error).

        Raises:
            StateError: The state cannot be opened or read.
        """
        store = self._store()
        try:
            with store.transaction() as tx:
                yield tx
        except READ_ERRORS as error:
            raise StateError(f"cannot read the state {self.label}: {type(error).__name__}") from error

    @contextmanager
    def write(self) -> Iterator[StateWriter]:
        """A short unit of work that may append a review mark (committed, or rolled back on an error).

        Raises:
            StateError: The source is read-only, or the state cannot be written.
        """
        if not self.writable:
            raise StateError(f"the state {self.label} was opened read-only")
        store = self._store()
        try:
            with store.transaction() as tx:
                yield tx
        except READ_ERRORS as error:
            raise StateError(f"cannot write the state {self.label}: {type(error).__name__}") from error

    def close(self) -> None:
        """Close every store opened by any thread."""
        with self._lock:
            opened, self._opened = self._opened, []
        for store in opened:
            with contextlib.suppress(*READ_ERRORS):
                store.close()
