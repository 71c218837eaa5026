"""The SQLite store's unit of work: reads through the decoded-state cache, writes only what changed.

``SqliteTransaction`` runs inside the ``BEGIN IMMEDIATE … COMMIT`` that
``SqliteStore.transaction`` opens; it reads an encounter from what this transaction wrote, else
from the cache, else from the file, and ``put`` compares against that to write only changed
columns and administrations. The states it wrote are published to the cache by the store once
the commit returned. See ``connector.store.sqlite`` for the cache's validity rules.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from datetime import datetime

import orjson

from connector.model import Administration, ChargeLine
from connector.store import codec
from connector.store.base import EncounterState, OutboxRow
from connector.store.sqlite_records import SqliteRecords
from connector.store.sqlite_records import dumps as _dumps
from connector.store.state_cache import CachedState, StateCache

SEEN_CHUNK = 500  # dedup keys per look-up (SQLite allows 32,766 parameters since 3.32, 999 before)


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
        and old.payer_ids == now.payer_ids
        and old.place_of_service == now.place_of_service
        and old.location == now.location
        and old.payer_version == now.payer_version
        and old.class_version == now.class_version
        and old.class_hint is now.class_hint
        and old.facility == now.facility
        and old.separate_same_day == now.separate_same_day
        and old.closed == now.closed
        and old.account == now.account
        and old.account_version == now.account_version
        and _same_time(old.inpatient_from, now.inpatient_from)
        and _same_time(old.class_at, now.class_at)
        and _same_time(old.payer_at, now.payer_at)
        and _same_time(old.account_at, now.account_at)
    )


class SqliteTransaction(SqliteRecords):
    """Reads and writes inside one SQLite transaction.

    ``_stored`` holds what the file holds for each encounter this transaction has looked at
    (``None``: no such encounter), so that ``put`` writes only what changed; ``written`` the
    states this transaction wrote, exactly as a read would return them, to publish to the
    cache once it commits. Outcomes, history, links, visits and meta: ``SqliteRecords``.
    """

    def __init__(self, db: sqlite3.Connection, cache: StateCache, links: Mapping[str, str] | None = None) -> None:
        super().__init__(db, links)
        self._cache = cache
        self._stored: dict[str, CachedState | None] = {}
        self._marked: dict[str, None] = {}  # dedup keys marked seen, in order, until ``flush``
        self.written: dict[str, CachedState] = {}

    def lock(self, encounter_keys: Iterable[str]) -> None:
        """Nothing to do: SQLite's write lock already serialises whole transactions."""

    def is_seen(self, dedup_key: str) -> bool:
        """Whether this input was already processed."""
        if dedup_key in self._marked:
            return True
        return self._db.execute("SELECT 1 FROM seen WHERE dedup_key = ?", (dedup_key,)).fetchone() is not None

    def seen(self, dedup_keys: Collection[str]) -> set[str]:
        """Which of these inputs were already processed (a query per ``SEEN_CHUNK`` keys)."""
        found = {key for key in dedup_keys if key in self._marked}
        rest = [key for key in dedup_keys if key not in found]
        for start in range(0, len(rest), SEEN_CHUNK):
            chunk = rest[start : start + SEEN_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT dedup_key FROM seen WHERE dedup_key IN ({marks})", chunk)  # noqa: S608
            found.update(key for (key,) in rows)
        return found

    def mark_seen(self, dedup_key: str) -> None:
        """Remember an input as processed (written with the others before the commit: ``flush``)."""
        self._marked[dedup_key] = None

    def flush(self) -> None:
        """Write what is held back until the commit (the dedup keys marked), in one statement."""
        if self._marked:
            self._db.executemany("INSERT OR IGNORE INTO seen (dedup_key) VALUES (?)", ((k,) for k in self._marked))
            self._marked.clear()

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
            "SELECT ref, attrs, updated_at, messages, failed FROM encounters WHERE key = ?", (encounter_key,)
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
        state = EncounterState(codec.ref_from_dict(orjson.loads(row[0])), encounter, row[2], row[3], row[4])
        return CachedState(state, {a.id: a for a in admins})

    def put(self, state: EncounterState) -> None:
        """Store an encounter's state, writing only what changed (administrations are never removed)."""
        key = state.encounter.key
        before = self._known(key)
        if before is not None and _same_row(before.state, state):
            self._db.execute(
                "UPDATE encounters SET updated_at = ?, messages = ?, failed = ? WHERE key = ?",
                (state.updated_at, state.messages, state.failed, key),
            )
            encounter = before.state.encounter
        else:
            self._db.execute(
                "INSERT INTO encounters (key, ref, attrs, updated_at, messages, closed, failed) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET ref = excluded.ref, "
                "attrs = excluded.attrs, updated_at = excluded.updated_at, messages = excluded.messages, "
                "closed = excluded.closed, failed = excluded.failed",
                (
                    key,
                    _dumps(codec.ref_to_dict(state.ref)),
                    _dumps(codec.encounter_attrs_to_dict(state.encounter)),
                    state.updated_at,
                    state.messages,
                    int(state.encounter.closed),
                    state.failed,
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
        sent = state.encounter.administrations  # sorted by (start, id), as a read sorts them
        if len(sent) == len(stored) and all(a.id in stored for a in sent):
            admins = tuple([stored[a.id] for a in sent])
        else:
            admins = tuple(sorted(stored.values(), key=_order))
        read_back = EncounterState(
            state.ref, replace(encounter, administrations=admins), float(state.updated_at), state.messages, state.failed
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
        """Keys of encounters not closed (optionally idle since ``idle_before`` and not failed)."""
        if idle_before is None:
            rows = self._db.execute("SELECT key FROM encounters WHERE closed = 0 ORDER BY key")
        else:
            rows = self._db.execute(
                "SELECT key FROM encounters WHERE closed = 0 AND updated_at < ? AND failed = '' ORDER BY key",
                (idle_before,),
            )
        return [key for (key,) in rows]

    def encounter_keys(self, after: str | None = None, limit: int | None = None) -> list[str]:
        """Keys of every encounter, sorted; only those after ``after``, at most ``limit`` (the primary key's order)."""
        where, args = ("WHERE key > ? ", (after,)) if after is not None else ("", ())
        rows = self._db.execute(
            f"SELECT key FROM encounters {where}ORDER BY key LIMIT ?",  # noqa: S608 - no value in the text
            (*args, -1 if limit is None else limit),
        )
        return [key for (key,) in rows]
