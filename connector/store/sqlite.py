"""SQLite store (the default): WAL, explicit transactions, versioned schema migrations.

One connection, used from one thread. ``synchronous=FULL`` by default so a committed batch
survives a power loss before its inputs are acked (the delivery contract); callers batch
commits to amortise the fsync (~0.5 ms here).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from connector.model import Administration, ChargeLine
from connector.store import codec
from connector.store.base import EncounterState, OutboxRow

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
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class SqliteTransaction:
    """Reads and writes inside one SQLite transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._loaded: dict[str, dict[str, Administration]] = {}

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
        row = self._db.execute(
            "SELECT ref, attrs, updated_at, messages FROM encounters WHERE key = ?", (encounter_key,)
        ).fetchone()
        if row is None:
            return None
        admins = [
            codec.administration_from_dict(json.loads(body))
            for (body,) in self._db.execute(
                "SELECT body FROM administrations WHERE encounter_key = ?", (encounter_key,)
            )
        ]
        admins.sort(key=lambda a: (a.start, a.id))
        self._loaded[encounter_key] = {a.id: a for a in admins}
        encounter = codec.encounter_from_dicts(json.loads(row[1]), tuple(admins))
        return EncounterState(codec.ref_from_dict(json.loads(row[0])), encounter, row[2], row[3])

    def put(self, state: EncounterState) -> None:
        """Store an encounter's state, writing only administrations that changed."""
        key = state.encounter.key
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
        before = self._loaded.get(key, {})
        changed = [a for a in state.encounter.administrations if before.get(a.id) != a]
        self._db.executemany(
            "INSERT OR REPLACE INTO administrations (encounter_key, admin_id, body) VALUES (?, ?, ?)",
            [(key, a.id, _dumps(codec.administration_to_dict(a))) for a in changed],
        )
        self._loaded[key] = {a.id: a for a in state.encounter.administrations}

    def emitted(self, encounter_key: str) -> dict[str, ChargeLine]:
        """Lines currently charged for an encounter."""
        rows = self._db.execute("SELECT body FROM emitted WHERE encounter_key = ?", (encounter_key,))
        lines = (codec.line_from_dict(json.loads(body)) for (body,) in rows)
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

    def __init__(self, path: Path | str, synchronous: str = "FULL") -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'NORMAL' if synchronous == 'NORMAL' else 'FULL'}")
        self._migrate()

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
        """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on an exception."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield SqliteTransaction(self._db)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

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
