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
committed, and the cache is then dropped at the start of the next transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import orjson

from connector.model import Administration, ChargeLine
from connector.store import codec
from connector.store.base import EncounterState, OutboxRow
from connector.store.state_cache import DEFAULT_MAX_ADMINISTRATIONS, CachedState, StateCache

# SQLite's page cache (default 2 MiB): the tables are written at scattered keys (encounter, then
# administration id), and a larger cache keeps their interior pages resident. Counts in RSS.
PAGE_CACHE_KIB = 32 * 1024

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE seen (dedup_key TEXT PRIMARY KEY) WITHOUT ROWID;
    CREATE TABLE encounters (
        key TEXT PRIMARY KEY, ref TEXT NOT NULL, attrs TEXT NOT NULL,
        updated_at REAL NOT NULL, messages INTEGER NOT NULL, closed INTEGER NOT NULL
    );
    CREATE INDEX encounters_open ON encounters (closed, updated_at);
    CREATE TABLE administrations (
        encounter_key TEXT NOT NULL, admin_id TEXT NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (encounter_key, admin_id)
    ) WITHOUT ROWID;
    CREATE TABLE emitted (
        encounter_key TEXT NOT NULL, line_id TEXT NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (encounter_key, line_id)
    ) WITHOUT ROWID;
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL, format TEXT NOT NULL,
        encounter_key TEXT NOT NULL, body BLOB NOT NULL, sent INTEGER NOT NULL DEFAULT 0,
        UNIQUE (message_id, format)
    );
    CREATE INDEX outbox_pending ON outbox (sent, seq);
    """,
)


def _dumps(value: object) -> str:
    """Compact JSON text; orjson (~10x faster) unless it refuses the value (e.g. a lone surrogate)."""
    try:
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _order(admin: Administration) -> tuple[datetime, str]:
    return (admin.start, admin.id)


def _same_time(a: datetime | None, b: datetime | None) -> bool:
    """Same value *and* same stored text (``==`` on aware datetimes ignores the offset)."""
    return a is b or (a is not None and b is not None and a.isoformat() == b.isoformat())


def _same_row(stored: EncounterState, new: EncounterState) -> bool:
    """Whether ``new`` encodes to the same ``ref`` and ``attrs`` columns as ``stored``."""
    old, now = stored.encounter, new.encounter
    return (
        stored.ref == new.ref
        and old.patient_class is now.patient_class
        and old.claim_type is now.claim_type
        and old.payer == now.payer
        and old.place_of_service == now.place_of_service
        and old.facility == now.facility
        and old.separate_same_day == now.separate_same_day
        and old.closed == now.closed
        and _same_time(old.inpatient_from, now.inpatient_from)
        and _same_time(old.class_at, now.class_at)
    )


class SqliteTransaction:
    """Reads and writes inside one SQLite transaction.

    ``_stored`` holds what the file holds for each encounter this transaction has looked at
    (``None``: no such encounter), so that ``put`` writes only what changed; ``written`` the
    states this transaction wrote, exactly as a read would return them, to publish to the
    cache once it commits.
    """

    def __init__(self, db: sqlite3.Connection, cache: StateCache) -> None:
        self._db = db
        self._cache = cache
        self._stored: dict[str, CachedState | None] = {}
        self.written: dict[str, CachedState] = {}

    def lock(self, encounter_keys: Iterable[str]) -> None:
        """Nothing to do: SQLite's write lock already serialises whole transactions."""

    def is_seen(self, dedup_key: str) -> bool:
        """Whether this input was already processed."""
        return self._db.execute("SELECT 1 FROM seen WHERE dedup_key = ?", (dedup_key,)).fetchone() is not None

    def mark_seen(self, dedup_key: str) -> None:
        """Remember an input as processed."""
        self._db.execute("INSERT OR IGNORE INTO seen (dedup_key) VALUES (?)", (dedup_key,))

    def get(self, encounter_key: str) -> EncounterState | None:
        """An encounter's state, if known."""
        known = self._known(encounter_key)
        return known.state if known is not None else None

    def _known(self, encounter_key: str) -> CachedState | None:
        """What the file holds: as written in this transaction, else cached, else read and decoded."""
        if encounter_key in self.written:
            return self.written[encounter_key]
        if encounter_key in self._stored:
            return self._stored[encounter_key]
        known = self._cache.get(encounter_key)
        if known is None:
            known = self._load(encounter_key)
            if known is not None:  # committed (this transaction has not written it): valid either way
                self._cache.put(encounter_key, known)
        self._stored[encounter_key] = known
        return known

    def _load(self, encounter_key: str) -> CachedState | None:
        row = self._db.execute(
            "SELECT ref, attrs, updated_at, messages FROM encounters WHERE key = ?", (encounter_key,)
        ).fetchone()
        if row is None:
            return None
        admins = [
            codec.administration_from_dict(orjson.loads(body))
            for (body,) in self._db.execute(
                "SELECT body FROM administrations WHERE encounter_key = ?", (encounter_key,)
            )
        ]
        admins.sort(key=_order)
        encounter = codec.encounter_from_dicts(orjson.loads(row[1]), tuple(admins))
        state = EncounterState(codec.ref_from_dict(orjson.loads(row[0])), encounter, row[2], row[3])
        return CachedState(state, {a.id: a for a in admins})

    def put(self, state: EncounterState) -> None:
        """Store an encounter's state, writing only what changed (administrations are never removed)."""
        key = state.encounter.key
        before = self._known(key)
        if before is not None and _same_row(before.state, state):
            self._db.execute(
                "UPDATE encounters SET updated_at = ?, messages = ? WHERE key = ?",
                (state.updated_at, state.messages, key),
            )
            encounter = before.state.encounter
        else:
            self._db.execute(
                "INSERT INTO encounters (key, ref, attrs, updated_at, messages, closed) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET ref = excluded.ref, attrs = excluded.attrs, "
                "updated_at = excluded.updated_at, messages = excluded.messages, closed = excluded.closed",
                (
                    key,
                    _dumps(codec.ref_to_dict(state.ref)),
                    _dumps(codec.encounter_attrs_to_dict(state.encounter)),
                    state.updated_at,
                    state.messages,
                    int(state.encounter.closed),
                ),
            )
            encounter = codec.as_stored_encounter(state.encounter)
        stored = dict(before.by_id) if before is not None else {}
        changed: list[Administration] = []
        for admin in state.encounter.administrations:
            held = stored.get(admin.id)
            if held is not admin and held != admin:
                changed.append(admin)
                stored[admin.id] = codec.as_stored_administration(admin)
        if changed:
            self._db.executemany(
                "INSERT OR REPLACE INTO administrations (encounter_key, admin_id, body) VALUES (?, ?, ?)",
                [(key, a.id, _dumps(codec.administration_to_dict(a))) for a in changed],
            )
        admins = tuple(sorted(stored.values(), key=_order))
        read_back = EncounterState(
            state.ref, replace(encounter, administrations=admins), float(state.updated_at), state.messages
        )
        self.written[key] = CachedState(read_back, stored)

    def emitted(self, encounter_key: str) -> dict[str, ChargeLine]:
        """Lines currently charged for an encounter."""
        rows = self._db.execute("SELECT body FROM emitted WHERE encounter_key = ?", (encounter_key,))
        lines = (codec.line_from_dict(orjson.loads(body)) for (body,) in rows)
        return {line.line_id: line for line in lines}

    def set_emitted(self, encounter_key: str, lines: Mapping[str, ChargeLine]) -> None:
        """Replace the currently charged lines of an encounter."""
        self._db.execute("DELETE FROM emitted WHERE encounter_key = ?", (encounter_key,))
        self._db.executemany(
            "INSERT INTO emitted (encounter_key, line_id, body) VALUES (?, ?, ?)",
            [(encounter_key, line_id, _dumps(codec.line_to_dict(line))) for line_id, line in lines.items()],
        )

    def enqueue(self, row: OutboxRow) -> None:
        """Add a rendered message to the outbox (a repeat of the same id and format is ignored)."""
        self._db.execute(
            "INSERT OR IGNORE INTO outbox (message_id, format, encounter_key, body) VALUES (?, ?, ?, ?)",
            (row.message_id, row.format, row.encounter_key, row.body),
        )

    def open_encounters(self, idle_before: float | None = None) -> list[str]:
        """Keys of encounters not closed (optionally idle since ``idle_before``)."""
        if idle_before is None:
            rows = self._db.execute("SELECT key FROM encounters WHERE closed = 0 ORDER BY key")
        else:
            rows = self._db.execute(
                "SELECT key FROM encounters WHERE closed = 0 AND updated_at < ? ORDER BY key", (idle_before,)
            )
        return [key for (key,) in rows]


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
        self._db = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
        self.set_synchronous(synchronous)
        self._migrate()
        self._cache = StateCache(cache_administrations)
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

    def _migrate(self) -> None:
        self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = self._db.execute("SELECT version FROM schema_version").fetchone()
        current = row[0] if row else 0
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            self._db.executescript(f"BEGIN IMMEDIATE; {script}")
            self._db.execute("DELETE FROM schema_version")
            self._db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            self._db.execute("COMMIT")

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
        tx = SqliteTransaction(self._db, self._cache)
        try:
            version = self._foreign_changes()
            if version != self._data_version:  # another connection wrote the file: nothing cached holds
                self._cache.clear()
                self._data_version = version
            yield tx
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._cache.discard(tx.written)
            raise
        for key, written in tx.written.items():
            self._cache.put(key, written)

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
        self._db.executemany("UPDATE outbox SET sent = 1 WHERE message_id = ? AND format = ?", list(keys))
        self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
