"""PostgreSQL store: several consumers sharing one database (psycopg 3 and a connection pool).

The same Protocol and behaviour as the SQLite store (one contract suite runs against both),
plus what sharing a database between N consumer processes needs:

- **Per-encounter serialisation.** ``Transaction.lock(keys)`` takes one transaction-scoped
  advisory lock per encounter, ``pg_advisory_xact_lock(hashtextextended(key, seed))``, in one
  statement and in ascending hash order whatever order it is given (a global order: immune to
  unsorted callers and to hash collisions), so units of work touching one encounter run one
  after the other and units with overlapping key sets never deadlock. The
  locks are released at commit or rollback, or when a killed process's connection drops. Under
  READ COMMITTED every later statement of the unit sees what the previous holder committed:
  a duplicated input processed by two consumers at once is applied once (the second finds its
  dedup key). Dedup keys are inserted with ``ON CONFLICT DO NOTHING``, outbox rows likewise by
  (message_id, format).
- **Few round trips.** ``lock`` reads the locked encounters' states and emitted lines in the
  same round trip as the locks (pipeline mode); writes are buffered in the transaction (later
  reads see the buffer) and sent at commit in one pipeline. Dedup keys are looked up once per
  batch (``seen``, after the locks).
- **One outbox, several relays.** Each consumer runs a relay on the shared outbox. Publishing a
  row twice is harmless (message ids are deterministic and downstream de-duplicates on them) but
  wasteful, so ``pending()`` *claims* what it returns: it picks unsent rows that are unclaimed,
  claimed by this store, claimed by a session that is gone (its owner connection's backend pid
  is no longer in ``pg_stat_activity``: a consumer killed with ``kill -9`` frees its claims at
  once) or whose claim lease (``claim_seconds``) ran out, with ``FOR UPDATE SKIP LOCKED`` so
  concurrent relays never pick the same row, and stamps them with this store's owner pid. A
  relay therefore sees its own unconfirmed rows again (retries, reconnects) and other relays
  skip them. Re-publications remain where they are unavoidable anyway (a crash between the
  broker's confirm and the ``sent`` mark, a relay killed mid-publish) or when a claim expires
  while its relay is still publishing. Across relays, messages of one encounter may be *published* out of ``seq`` order
  (after a relay dies or a row is retried): a consumer of charge messages nets them by summing
  charges and credits per line id, which does not depend on order.
- **Errors.** An unreachable database or a dropped connection raises ``StoreUnavailable``, a
  ``ConnectionError``, so the consumer treats it as transient (reconnect, retry the batch),
  never as a bad input.

Needs PostgreSQL 11 or later (``hashtextextended``); tested with 15. The owner connection is a
plain session kept open beside the pool (behind a transaction-pooling PgBouncer its liveness
means nothing: claims then end only with their lease).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Final

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from connector.store.base import OutboxRow, Purged
from connector.store.postgres_records import Connection
from connector.store.postgres_schema import migrate
from connector.store.postgres_transaction import PostgresTransaction

CLAIM_SECONDS: Final = 60.0
# A transaction left open by a hung client must not hold its encounters' locks for ever.
SESSION_SETTINGS: Final = "SET idle_in_transaction_session_timeout = '60s'"

PURGE_BATCH: Final = 5000  # rows deleted per statement by ``purge``
# SKIP LOCKED: consumers purging the shared store at the same time take different rows.
PURGE_SEEN: Final = (
    "DELETE FROM seen WHERE dedup_key IN (SELECT dedup_key FROM seen "
    "WHERE seen_at < to_timestamp(%s) LIMIT %s FOR UPDATE SKIP LOCKED)"
)
PURGE_SENT: Final = (
    "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox "
    "WHERE sent AND sent_at < to_timestamp(%s) LIMIT %s FOR UPDATE SKIP LOCKED)"
)

CLAIM = """
UPDATE outbox AS o SET claim_pid = %(me)s, claim_until = now() + make_interval(secs => %(lease)s)
FROM (
    SELECT seq FROM outbox
    WHERE NOT sent AND (
        claim_pid IS NULL OR claim_pid = %(me)s OR claim_until < now()
        OR claim_pid NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
    )
    ORDER BY seq LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) AS chosen
WHERE o.seq = chosen.seq
RETURNING o.message_id, o.encounter_key, o.format, o.body, o.seq
"""


class StoreUnavailable(ConnectionError):
    """The PostgreSQL server cannot be reached or the connection was lost (transient)."""


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Connection-level failures → ``StoreUnavailable`` (a retry may fix them); no DSN in the text."""
    try:
        yield
    except psycopg.OperationalError as error:
        raise StoreUnavailable(f"PostgreSQL store: {what} failed ({error.__class__.__name__}): {error}") from error


def _configure(conn: Connection) -> None:
    conn.execute(SESSION_SETTINGS)


class PostgresStore:
    """Encounter state and the outbox in one PostgreSQL database, shared by several consumers.

    Args:
        dsn: A libpq connection string or ``postgresql://`` URL (a ``search_path`` in its
            ``options`` selects the schema).
        min_size: Connections the pool keeps open.
        max_size: Most connections the pool opens.
        claim_seconds: How long ``pending()``'s claim on a row keeps other relays off it.
        connect_timeout: Seconds to wait for the first connections before giving up.

    Raises:
        StoreUnavailable: The server cannot be reached.
        SchemaTooNew: The database was migrated by a newer ivpush.
    """

    def __init__(
        self,
        dsn: str,
        min_size: int = 1,
        max_size: int = 4,
        claim_seconds: float = CLAIM_SECONDS,
        connect_timeout: float = 30.0,
    ) -> None:
        self.claim_seconds = claim_seconds
        with _translated("connecting"):
            self._owner = psycopg.connect(dsn, autocommit=True, connect_timeout=max(1, int(connect_timeout)))
        try:
            with _translated("migrating the schema"):
                self.schema_version = migrate(self._owner)
                row = self._owner.execute("SELECT pg_backend_pid()").fetchone()
            self._owner_pid = int(row[0]) if row else 0
            self._pool: ConnectionPool[Connection] = ConnectionPool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                kwargs={"autocommit": True},
                configure=_configure,
                check=ConnectionPool.check_connection,
                open=False,
                name="ivpush-store",
            )
            with _translated("opening the connection pool"):
                self._pool.open(wait=True, timeout=connect_timeout)
        except BaseException:
            self._owner.close()
            raise

    @contextmanager
    def transaction(self) -> Iterator[PostgresTransaction]:
        """BEGIN … COMMIT on a pooled connection, or ROLLBACK on an exception."""
        with _translated("a transaction"), self._pool.connection() as conn, conn.transaction():
            tx = PostgresTransaction(conn)
            yield tx
            tx.flush()

    def pending(self, limit: int = 1000) -> list[OutboxRow]:
        """Unsent outbox rows, oldest first, claimed for this store's relay (see the module docstring)."""
        with _translated("reading the outbox"), self._pool.connection() as conn:
            rows = conn.execute(CLAIM, {"me": self._owner_pid, "lease": self.claim_seconds, "limit": limit}).fetchall()
        found = [OutboxRow(m, e, f, bytes(b), s) for m, e, f, b, s in rows]
        found.sort(key=lambda row: row.sequence)
        return found

    def mark_sent(self, keys: Iterable[tuple[str, str]]) -> None:
        """Mark (message id, format) rows as confirmed."""
        pairs = list(keys)
        if not pairs:
            return
        with _translated("marking rows sent"), self._pool.connection() as conn:
            conn.execute(
                "UPDATE outbox AS o SET sent = true, sent_at = coalesce(o.sent_at, now()), "
                "claim_pid = NULL, claim_until = NULL "
                "FROM unnest(%s::text[], %s::text[]) AS k (message_id, format) "
                "WHERE o.message_id = k.message_id AND o.format = k.format",
                ([m for m, _ in pairs], [f for _, f in pairs]),
            )

    def purge(self, older_than: float, limit: int | None = None) -> Purged:
        """Delete dedup keys and sent outbox rows older than ``older_than``, ``PURGE_BATCH`` rows per statement.

        Outcomes, history, order links, visits and meta are kept (as long as the state).
        """
        return Purged(self._purge(PURGE_SEEN, older_than, limit), self._purge(PURGE_SENT, older_than, limit))

    def _purge(self, statement: str, older_than: float, limit: int | None) -> int:
        done = 0
        while limit is None or done < limit:
            size = PURGE_BATCH if limit is None else min(PURGE_BATCH, limit - done)
            with _translated("purging old rows"), self._pool.connection() as conn:
                deleted = conn.execute(statement, (older_than, size)).rowcount  # autocommit: one transaction
            done += deleted
            if deleted < size:
                break
        return done

    def ping(self, timeout: float = 5.0) -> None:
        """Raise ``StoreUnavailable`` unless a pooled connection answers within ``timeout`` seconds."""
        try:
            with self._pool.connection(timeout=timeout) as conn:
                conn.execute("SELECT 1")
        except (psycopg.OperationalError, PoolTimeout) as error:
            raise StoreUnavailable(f"PostgreSQL store unreachable ({error.__class__.__name__})") from error

    def close(self) -> None:
        """Close the pool and the owner connection."""
        self._pool.close()
        self._owner.close()
