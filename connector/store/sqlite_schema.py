"""The SQLite store's schema: numbered migrations, applied when the file is opened.

``schema_version`` holds one row, the number of migrations applied. ``migrate`` runs each
missing migration and its version bump in one ``BEGIN IMMEDIATE`` transaction (SQLite's DDL
is transactional). Called by ``SqliteStore`` on open; see ``connector.store.sqlite``.
"""

from __future__ import annotations

import sqlite3

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
    # 2: the reject code of an encounter that could not be coded or rendered at close
    "ALTER TABLE encounters ADD COLUMN failed TEXT NOT NULL DEFAULT '';",
    # 3: ages for the retention purge (``SqliteStore.purge``): when a dedup key was first seen
    # (rows from before: the migration's time) and when an outbox row was confirmed. ``seen`` is
    # rebuilt because ALTER TABLE cannot add a column whose default is the current time. Times are
    # seconds since the epoch: (julianday('now') - 2440587.5) * 86400.0.
    """
    CREATE TABLE seen_v3 (
        dedup_key TEXT PRIMARY KEY, seen_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
    ) WITHOUT ROWID;
    INSERT INTO seen_v3 (dedup_key) SELECT dedup_key FROM seen;
    DROP TABLE seen;
    ALTER TABLE seen_v3 RENAME TO seen;
    CREATE INDEX seen_age ON seen (seen_at);
    ALTER TABLE outbox ADD COLUMN sent_at REAL;
    UPDATE outbox SET sent_at = (julianday('now') - 2440587.5) * 86400.0 WHERE sent = 1;
    CREATE INDEX outbox_sent_age ON outbox (sent_at) WHERE sent = 1;
    """,
    # 4: what explains an encounter and resolves identities (issue 13): its administrations'
    # outcomes (one JSON list per encounter), the messages it emitted, placer order → encounter
    # links, ADT visit windows (ISO times with their offset; compared as instants in Python),
    # and the settings the state was built under. The retention purge leaves them alone.
    """
    CREATE TABLE outcomes (encounter_key TEXT PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE history (
        encounter_key TEXT NOT NULL, sequence INTEGER NOT NULL, message_id TEXT NOT NULL,
        recorded_at REAL NOT NULL, cause TEXT NOT NULL, body BLOB NOT NULL,
        PRIMARY KEY (encounter_key, sequence)
    );
    CREATE TABLE order_links (order_id TEXT PRIMARY KEY, encounter_key TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE visits (
        patient_key TEXT NOT NULL, encounter_key TEXT NOT NULL, start_at TEXT, end_at TEXT,
        PRIMARY KEY (patient_key, encounter_key)
    ) WITHOUT ROWID;
    CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    """,
    # 5: the console's review marks (issue 17): an append-only audit trail, one row per "mark
    # reviewed" (``at``: ISO UTC instant from the console's clock; ``basis``: what was reviewed,
    # ``connector.model.reviews``). Triggers refuse any UPDATE or DELETE of a mark.
    """
    CREATE TABLE reviews (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, encounter_key TEXT NOT NULL, at TEXT NOT NULL,
        actor TEXT NOT NULL, note TEXT NOT NULL, basis TEXT NOT NULL
    );
    CREATE INDEX reviews_encounter ON reviews (encounter_key, seq);
    CREATE TRIGGER reviews_no_update BEFORE UPDATE ON reviews
    BEGIN SELECT RAISE(ABORT, 'review marks are append-only'); END;
    CREATE TRIGGER reviews_no_delete BEFORE DELETE ON reviews
    BEGIN SELECT RAISE(ABORT, 'review marks are append-only'); END;
    """,
)


def migrate(db: sqlite3.Connection) -> None:
    """Apply the migrations the file has not had yet.

    Args:
        db: A connection in autocommit mode (``isolation_level=None``).
    """
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    current = _version(db)
    for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
        try:
            db.executescript(f"BEGIN IMMEDIATE; {script}")
        except sqlite3.OperationalError:
            # Another process (a console and a consumer opening the file together) may have
            # applied it between our read of the version and our lock: then it is done.
            if db.in_transaction:
                db.execute("ROLLBACK")
            if _version(db) >= version:
                continue
            raise
        db.execute("DELETE FROM schema_version")
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        db.execute("COMMIT")


def _version(db: sqlite3.Connection) -> int:
    """The schema version the file records (0: none yet)."""
    row = db.execute("SELECT version FROM schema_version").fetchone()
    return int(row[0]) if row else 0
