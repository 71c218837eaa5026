"""The PostgreSQL store's unit of work: advisory locks per encounter, buffered writes sent at commit.

See ``connector.store.postgres`` for the semantics (locking order, dedup, outbox claims).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, Final

import orjson

from connector.model import Administration, ChargeLine
from connector.store import codec
from connector.store.base import EncounterState, OutboxRow
from connector.store.postgres_records import Connection, PostgresRecords

LOCK_SEED: Final = 0x69767075  # hashtextextended seed: ivpush's own spread of the bigint lock space
LOCK: Final = (
    "SELECT count(pg_advisory_xact_lock(h)) FROM "
    "(SELECT DISTINCT hashtextextended(k, %s) AS h FROM unnest(%s::text[]) AS k ORDER BY h) AS ordered"
)
READ_STATES: Final = (
    "SELECT e.key, e.ref, e.attrs, e.updated_at, e.messages, e.failed, "
    "ARRAY(SELECT a.body FROM administrations AS a WHERE a.encounter_key = e.key) FROM encounters AS e "
)
READ_EMITTED: Final = "SELECT encounter_key, body FROM emitted WHERE encounter_key = ANY(%s)"


def dumps(value: object) -> str:
    """Compact JSON text of a codec dict."""
    return orjson.dumps(value).decode()


def loads(text: str) -> Any:
    """A codec dict from JSON text."""
    return orjson.loads(text)


class PostgresTransaction(PostgresRecords):
    """Reads and writes inside one PostgreSQL transaction; writes are sent at commit.

    Outcomes, history, order links, visits and meta: ``PostgresRecords``.
    """

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        self._loaded: dict[str, dict[str, Administration]] = {}
        self._seen: list[str] = []
        self._seen_set: set[str] = set()
        self._states: dict[str, EncounterState] = {}
        self._emitted: dict[str, dict[str, ChargeLine]] = {}
        self._outbox: dict[tuple[str, str], OutboxRow] = {}
        # read ahead by lock(): raw rows of the locked encounters (decoded on first use)
        self._rows: dict[str, tuple[Any, ...] | None] = {}
        self._emitted_rows: dict[str, list[str]] = {}

    def lock(self, encounter_keys: Iterable[str]) -> None:
        """Take one advisory lock per encounter, in ascending hash order, until commit.

        The locked encounters' states and emitted lines are read in the same round trip (the
        caller is about to read them; nobody else can change them now).
        """
        keys = list(encounter_keys)
        if not keys:
            return
        with self._conn.pipeline():
            self._conn.execute(LOCK, (LOCK_SEED, keys))  # executed first: the reads see the latest commit
            states = self._conn.execute(READ_STATES + "WHERE e.key = ANY(%s)", (keys,))
            emitted = self._conn.execute(READ_EMITTED, (keys,))
            rows, lines = states.fetchall(), emitted.fetchall()
        self._rows.update(dict.fromkeys(keys))
        self._rows.update({row[0]: row[1:] for row in rows})
        self._emitted_rows.update({key: [] for key in keys})
        for key, body in lines:
            self._emitted_rows[key].append(body)

    def is_seen(self, dedup_key: str) -> bool:
        """Whether this input was already processed."""
        if dedup_key in self._seen_set:
            return True
        return self._conn.execute("SELECT 1 FROM seen WHERE dedup_key = %s", (dedup_key,)).fetchone() is not None

    def seen(self, dedup_keys: Collection[str]) -> set[str]:
        """Which of these inputs were already processed (one query)."""
        found = {key for key in dedup_keys if key in self._seen_set}
        rest = [key for key in dedup_keys if key not in found]
        if rest:
            rows = self._conn.execute("SELECT dedup_key FROM seen WHERE dedup_key = ANY(%s)", (rest,))
            found.update(str(key) for (key,) in rows)
        return found

    def mark_seen(self, dedup_key: str) -> None:
        """Remember an input as processed."""
        if dedup_key not in self._seen_set:
            self._seen_set.add(dedup_key)
            self._seen.append(dedup_key)

    def get(self, encounter_key: str) -> EncounterState | None:
        """An encounter's state, if known (one query: the row and its administrations)."""
        if encounter_key in self._states:
            return self._states[encounter_key]
        if encounter_key in self._rows:
            row = self._rows[encounter_key]
        else:
            found = self._conn.execute(READ_STATES + "WHERE e.key = %s", (encounter_key,)).fetchone()
            row = found[1:] if found is not None else None
        if row is None:
            return None
        ref, attrs, updated_at, messages, failed, bodies = row
        admins = sorted((codec.administration_from_dict(loads(body)) for body in bodies), key=lambda a: (a.start, a.id))
        self._loaded[encounter_key] = {a.id: a for a in admins}
        encounter = codec.encounter_from_dicts(loads(attrs), tuple(admins))
        return EncounterState(codec.ref_from_dict(loads(ref)), encounter, updated_at, messages, failed)

    def put(self, state: EncounterState) -> None:
        """Store an encounter's state (sent at commit)."""
        self._states[state.encounter.key] = state

    def emitted(self, encounter_key: str) -> dict[str, ChargeLine]:
        """Lines currently charged for an encounter."""
        if encounter_key in self._emitted:
            return dict(self._emitted[encounter_key])
        bodies = self._emitted_rows.get(encounter_key)
        if bodies is None:
            rows = self._conn.execute("SELECT body FROM emitted WHERE encounter_key = %s", (encounter_key,))
            bodies = [body for (body,) in rows]
        lines = (codec.line_from_dict(loads(body)) for body in bodies)
        return {line.line_id: line for line in lines}

    def set_emitted(self, encounter_key: str, lines: Mapping[str, ChargeLine]) -> None:
        """Replace the currently charged lines of an encounter (sent at commit)."""
        self._emitted[encounter_key] = dict(lines)

    def enqueue(self, row: OutboxRow) -> None:
        """Add a rendered message to the outbox (a repeat of the same id and format is ignored)."""
        self._outbox.setdefault((row.message_id, row.format), row)

    def open_encounters(self, idle_before: float | None = None) -> list[str]:
        """Keys of encounters not closed (optionally idle since ``idle_before`` and not failed)."""
        self.flush()
        if idle_before is None:
            rows = self._conn.execute("SELECT key FROM encounters WHERE NOT closed ORDER BY key")
        else:
            rows = self._conn.execute(
                "SELECT key FROM encounters WHERE NOT closed AND updated_at < %s AND failed = '' ORDER BY key",
                (idle_before,),
            )
        return [key for (key,) in rows]

    def encounter_keys(self, after: str | None = None, limit: int | None = None) -> list[str]:
        """Keys of every encounter in the database's collation order; only those after ``after``, at most ``limit``."""
        self.flush()
        if after is None:
            rows = self._conn.execute("SELECT key FROM encounters ORDER BY key LIMIT %s", (limit,))
        else:
            rows = self._conn.execute("SELECT key FROM encounters WHERE key > %s ORDER BY key LIMIT %s", (after, limit))
        return [key for (key,) in rows]

    def flush(self) -> None:
        """Send the buffered writes in one pipeline (called before commit)."""
        if not (self._seen or self._states or self._emitted or self._outbox or self._records_pending()):
            return
        with self._conn.pipeline(), self._conn.cursor() as cur:
            self._send_records(cur)
            if self._seen:
                cur.executemany(
                    "INSERT INTO seen (dedup_key) VALUES (%s) ON CONFLICT DO NOTHING", [(k,) for k in self._seen]
                )
            if self._states:
                cur.executemany(
                    "INSERT INTO encounters (key, ref, attrs, updated_at, messages, closed, failed) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET ref = excluded.ref, "
                    "attrs = excluded.attrs, updated_at = excluded.updated_at, messages = excluded.messages, "
                    "closed = excluded.closed, failed = excluded.failed",
                    [self._encounter_row(state) for state in self._states.values()],
                )
                changed = [row for state in self._states.values() for row in self._changed_admins(state)]
                if changed:
                    cur.executemany(
                        "INSERT INTO administrations (encounter_key, admin_id, body) VALUES (%s, %s, %s) "
                        "ON CONFLICT (encounter_key, admin_id) DO UPDATE SET body = excluded.body",
                        changed,
                    )
            if self._emitted:
                cur.execute("DELETE FROM emitted WHERE encounter_key = ANY(%s)", (list(self._emitted),))
                lines = [
                    (key, line_id, dumps(codec.line_to_dict(line)))
                    for key, current in self._emitted.items()
                    for line_id, line in current.items()
                ]
                if lines:
                    cur.executemany("INSERT INTO emitted (encounter_key, line_id, body) VALUES (%s, %s, %s)", lines)
            if self._outbox:
                cur.executemany(
                    "INSERT INTO outbox (message_id, format, encounter_key, body) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (message_id, format) DO NOTHING",
                    [(r.message_id, r.format, r.encounter_key, r.body) for r in self._outbox.values()],
                )
        for key in self._states.keys() | self._emitted.keys():  # read-ahead rows are stale now
            self._rows.pop(key, None)
            self._emitted_rows.pop(key, None)
        self._seen.clear()
        self._seen_set.clear()
        self._states.clear()
        self._emitted.clear()
        self._outbox.clear()

    @staticmethod
    def _encounter_row(state: EncounterState) -> tuple[object, ...]:
        return (
            state.encounter.key,
            dumps(codec.ref_to_dict(state.ref)),
            dumps(codec.encounter_attrs_to_dict(state.encounter)),
            state.updated_at,
            state.messages,
            state.encounter.closed,
            state.failed,
        )

    def _changed_admins(self, state: EncounterState) -> list[tuple[str, str, str]]:
        """Administrations that differ from what this transaction read (only those are written)."""
        key = state.encounter.key
        before = self._loaded.get(key, {})
        changed = [a for a in state.encounter.administrations if before.get(a.id) != a]
        self._loaded[key] = {a.id: a for a in state.encounter.administrations}
        return [(key, a.id, dumps(codec.administration_to_dict(a))) for a in changed]
