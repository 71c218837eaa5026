"""The PostgreSQL store's schema: numbered migrations, applied at open under an advisory lock.

``schema_version`` keeps one row per applied migration. Every process that opens the store
runs ``migrate``: the first one through the lock applies what is missing (all in one
transaction: PostgreSQL's DDL is transactional, so a failed migration leaves nothing half
done), the others then find nothing to do — N consumers starting together are safe.
"""

from __future__ import annotations

from typing import Final

import psycopg
from psycopg.rows import TupleRow

# pg_advisory_xact_lock(int, int) keys: a lock space of their own (the one-bigint form used
# for encounters cannot collide with it). 0x69767075 is "ivpu".
MIGRATION_LOCK: Final = (0x69767075, 1)

MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE seen (dedup_key text PRIMARY KEY);
    CREATE TABLE encounters (
        key text PRIMARY KEY, ref text NOT NULL, attrs text NOT NULL,
        updated_at double precision NOT NULL, messages integer NOT NULL, closed boolean NOT NULL
    );
    CREATE INDEX encounters_open ON encounters (updated_at) WHERE NOT closed;
    CREATE TABLE administrations (
        encounter_key text NOT NULL, admin_id text NOT NULL, body text NOT NULL,
        PRIMARY KEY (encounter_key, admin_id)
    );
    CREATE TABLE emitted (
        encounter_key text NOT NULL, line_id text NOT NULL, body text NOT NULL,
        PRIMARY KEY (encounter_key, line_id)
    );
    CREATE TABLE outbox (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message_id text NOT NULL, format text NOT NULL, encounter_key text NOT NULL, body bytea NOT NULL,
        sent boolean NOT NULL DEFAULT false,
        claim_pid integer, claim_until timestamptz,
        UNIQUE (message_id, format)
    );
    CREATE INDEX outbox_pending ON outbox (seq) WHERE NOT sent;
    """,
    # 2: the reject code of an encounter that could not be coded or rendered at close
    "ALTER TABLE encounters ADD COLUMN failed text NOT NULL DEFAULT '';",
    # 3: ages for the retention purge (``PostgresStore.purge``): when a dedup key was first seen
    # (rows from before: the migration's time, no table rewrite) and when an outbox row was confirmed
    """
    ALTER TABLE seen ADD COLUMN seen_at timestamptz NOT NULL DEFAULT now();
    CREATE INDEX seen_age ON seen (seen_at);
    ALTER TABLE outbox ADD COLUMN sent_at timestamptz;
    UPDATE outbox SET sent_at = now() WHERE sent;
    CREATE INDEX outbox_sent_age ON outbox (sent_at) WHERE sent;
    """,
    # 4: what explains an encounter and resolves identities (issue 13): its administrations'
    # outcomes (one JSON list per encounter), the messages it emitted, placer order → encounter
    # links (``linked_tx``: the transaction that made the link; see ``postgres_records``), ADT
    # visit windows, and the settings the state was built under. The retention purge leaves them.
    """
    CREATE TABLE outcomes (encounter_key text PRIMARY KEY, body text NOT NULL);
    CREATE TABLE history (
        encounter_key text NOT NULL, sequence integer NOT NULL, message_id text NOT NULL,
        recorded_at double precision NOT NULL, cause text NOT NULL, body bytea NOT NULL,
        PRIMARY KEY (encounter_key, sequence)
    );
    CREATE TABLE order_links (
        order_id text PRIMARY KEY, encounter_key text NOT NULL, linked_tx bigint NOT NULL
    );
    CREATE TABLE visits (
        patient_key text NOT NULL, encounter_key text NOT NULL, start_at timestamptz, end_at timestamptz,
        PRIMARY KEY (patient_key, encounter_key)
    );
    CREATE TABLE meta (name text PRIMARY KEY, value text NOT NULL);
    """,
    # 5: the console's review marks (issue 17): an append-only audit trail, one row per "mark
    # reviewed" (``at``: the console's clock; ``basis``: what was reviewed,
    # ``connector.model.reviews``). Triggers refuse any UPDATE, DELETE or TRUNCATE of marks.
    """
    CREATE TABLE reviews (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, encounter_key text NOT NULL,
        at timestamptz NOT NULL, actor text NOT NULL, note text NOT NULL, basis text NOT NULL
    );
    CREATE INDEX reviews_encounter ON reviews (encounter_key, seq);
    CREATE FUNCTION ivpush_reviews_append_only() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'review marks are append-only'; END $$;
    CREATE TRIGGER reviews_append_only BEFORE UPDATE OR DELETE ON reviews
    FOR EACH ROW EXECUTE FUNCTION ivpush_reviews_append_only();
    CREATE TRIGGER reviews_no_truncate BEFORE TRUNCATE ON reviews
    FOR EACH STATEMENT EXECUTE FUNCTION ivpush_reviews_append_only();
    """,
)


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer ivpush than this one."""


def migrate(conn: psycopg.Connection[TupleRow]) -> int:
    """Apply the missing migrations; the schema version now in place.

    Args:
        conn: An autocommit connection (its search_path picks the schema).

    Raises:
        SchemaTooNew: The database is at a version this code does not know.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", MIGRATION_LOCK)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
        current = int(row[0]) if row else 0
        if current > len(MIGRATIONS):
            raise SchemaTooNew(
                f"the PostgreSQL schema is at version {current}, newer than this ivpush knows "
                f"({len(MIGRATIONS)}): upgrade ivpush"
            )
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            conn.execute(script.encode())  # several statements: no parameters, simple protocol
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
        return max(current, len(MIGRATIONS))
