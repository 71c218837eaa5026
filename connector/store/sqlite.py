"""SQLite store (the default): WAL, explicit transactions, versioned schema migrations.

One connection, used from one thread. ``synchronous=FULL`` by default so a committed batch
survives a power loss before its inputs are acked (the delivery contract); callers batch
commits to amortise the fsync (~0.5 ms here). ``NORMAL`` (replay) still never corrupts the
file, but the last commits before a power loss (not a process crash) may be lost: fine when
the inputs are an archive that can be replayed again.

Decoded states of recently used encounters stay in memory between transactions
(``state_cache``), so a batch reads and decodes only encounters it has not seen lately, and
writes only the administrations that changed. The file is written through on every ``put``
(the cache is never the only copy). The cache assumes this connection is the only writer;
that is checked, not trusted: ``PRAGMA data_version`` moves when another connection
committed, and the cache is then dropped at the start of the next transaction. Committed
order links are kept too (``CACHED_LINKS``, dropped likewise): a link never changes once
committed, so a message that names a linked order again needs no look-up. Dedup keys marked in
a transaction are written together just before its commit.

The schema and its migrations live in ``sqlite_schema``, the unit of work in
``sqlite_transaction`` (outcomes, history, order links, visits and meta: ``sqlite_records``,
not cached); this module opens the file and runs transactions, the outbox relay's
queries and the connection settings.

The file holds patient identifiers, so a new one is created mode 0600 (owner only); SQLite
creates its ``-wal`` and ``-shm`` files with the mode of the database file. An existing file
keeps its mode.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from connector.store.base import OutboxRow, Purged
from connector.store.sqlite_merge import merge
from connector.store.sqlite_schema import migrate
from connector.store.sqlite_transaction import SqliteTransaction
from connector.store.state_cache import DEFAULT_MAX_ADMINISTRATIONS, StateCache

# SQLite's page cache (default 2 MiB): the tables are written at scattered keys (encounter, then
# administration id), and a larger cache keeps their interior pages resident. Counts in RSS.
PAGE_CACHE_KIB = 32 * 1024
CACHED_LINKS = 50_000  # committed order links kept to skip their look-ups (~100 bytes each)
PURGE_BATCH = 5000  # rows deleted per transaction by ``purge`` (the write lock is held that long)
PURGE_SEEN = "DELETE FROM seen WHERE dedup_key IN (SELECT dedup_key FROM seen WHERE seen_at < ? LIMIT ?)"
PURGE_SENT = "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE sent = 1 AND sent_at < ? LIMIT ?)"
MARK_SENT = (
    "UPDATE outbox SET sent = 1, sent_at = coalesce(sent_at, (julianday('now') - 2440587.5) * 86400.0) "
    "WHERE message_id = ? AND format = ?"
)  # sent_at: seconds since the epoch


def _create_private(path: str) -> None:
    """Create a missing state file empty and mode 0600 before SQLite opens it (it would use 0644)."""
    if path in ("", ":memory:") or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:  # it exists (its mode is kept), or it cannot be created: sqlite3 then says why
        return


class SqliteStore:
    """Encounter state in one SQLite file."""

    def __init__(
        self,
        path: Path | str,
        synchronous: str = "FULL",
        cache_administrations: int = DEFAULT_MAX_ADMINISTRATIONS,
    ) -> None:
        """Open (creating and migrating as needed) a state file.

        Args:
            path: The file, or ``:memory:``.
            synchronous: ``FULL`` (a commit survives a power loss: the consumer's contract) or
                ``NORMAL`` (WAL: a commit survives a process crash, the last ones may be lost
                at a power loss; for replays of archives). See ``set_synchronous``.
            cache_administrations: Bound of the decoded-state cache, in administrations
                (0: no cache; every transaction reads and decodes what it touches).
        """
        _create_private(str(path))
        self._db = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
        self.set_synchronous(synchronous)
        migrate(self._db)
        self._cache = StateCache(cache_administrations)
        self._links: dict[str, str] = {}  # committed order links (they never change), oldest first
        self._data_version = self._foreign_changes()

    def set_synchronous(self, level: str) -> None:
        """``FULL`` or ``NORMAL`` (anything else is a mistake, not a silent FULL)."""
        level = level.upper()
        if level not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {level!r}")
        self._db.execute(f"PRAGMA synchronous={level}")

    @property
    def synchronous(self) -> str:
        """The current ``synchronous`` level."""
        return {1: "NORMAL", 2: "FULL"}.get(self._db.execute("PRAGMA synchronous").fetchone()[0], "OTHER")

    def _foreign_changes(self) -> int:
        """SQLite's counter of commits by *other* connections (ours leave it alone)."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    @property
    def schema_version(self) -> int:
        """The applied schema version."""
        return int(self._db.execute("SELECT version FROM schema_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[SqliteTransaction]:
        """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on an exception (also one raised by COMMIT).

        The states written reach the cache only after COMMIT returned; a rollback evicts them
        (what the cache holds of them may be older than what was read and decoded meanwhile).
        """
        self._db.execute("BEGIN IMMEDIATE")
        tx = SqliteTransaction(self._db, self._cache, self._links)
        try:
            version = self._foreign_changes()
            if version != self._data_version:  # another connection wrote the file: nothing cached holds
                self._cache.clear()
                self._links.clear()
                self._data_version = version
            yield tx
            tx.flush()
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._cache.discard(tx.written)
            raise
        for key, written in tx.written.items():
            self._cache.put(key, written)
        self._links.update(tx.linked)
        if len(self._links) > CACHED_LINKS:
            self._links.clear()  # cheaper than evicting one by one; in place: a transaction may hold it

    def merge(self, shards: Iterable[Path]) -> None:
        """Copy states that share no key with this one into it (``replay --jobs``; ``sqlite_merge``)."""
        self._cache.clear()
        self._links.clear()
        merge(self._db, shards)
        self._data_version = self._foreign_changes()

    def pending(self, limit: int = 1000) -> list[OutboxRow]:
        """Outbox rows not yet confirmed, oldest first."""
        rows = self._db.execute(
            "SELECT message_id, encounter_key, format, body, seq FROM outbox WHERE sent = 0 ORDER BY seq LIMIT ?",
            (limit,),
        )
        return [OutboxRow(m, e, f, bytes(b), s) for m, e, f, b, s in rows]

    def mark_sent(self, keys: Iterable[tuple[str, str]]) -> None:
        """Mark (message id, format) rows as confirmed."""
        self._db.execute("BEGIN IMMEDIATE")
        self._db.executemany(MARK_SENT, list(keys))
        self._db.execute("COMMIT")

    def purge(self, older_than: float, limit: int | None = None) -> Purged:
        """Delete dedup keys and sent outbox rows older than ``older_than``, ``PURGE_BATCH`` rows per transaction.

        Outcomes, history, order links, visits and meta are kept (as long as the state).
        """
        return Purged(self._purge(PURGE_SEEN, older_than, limit), self._purge(PURGE_SENT, older_than, limit))

    def _purge(self, statement: str, older_than: float, limit: int | None) -> int:
        done = 0
        while limit is None or done < limit:
            size = PURGE_BATCH if limit is None else min(PURGE_BATCH, limit - done)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                deleted = self._db.execute(statement, (older_than, size)).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            done += deleted
            if deleted < size:
                break
        return done

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
