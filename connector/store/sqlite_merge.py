"""Copy SQLite states that share no key into one (``ivpush replay --jobs N``: the workers' shards).

Each worker of a replay codes its own encounters into a state file of its own; the shards share
no encounter, dedup key, order link or visit (``connector.cli.replay_shards``). ``merge`` copies
each shard's rows into the target in one transaction per shard, outbox rows in their order
(they get new sequence numbers after those held) and as they were (pending or sent). A key
held twice is an error (``sqlite3.IntegrityError``) and rolls that shard back; a shard of
another schema version, or with a table the merge does not know, stops it before anything is
copied (``ShardMismatch``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

TABLES = ("seen", "encounters", "administrations", "emitted", "outcomes", "history", "order_links", "visits")
# Tables a shard holds but whose rows are not copied, and why. A table in neither list (a later
# migration's) stops the merge, so that a new kind of state is never dropped without a word.
NOT_MERGED = {
    "schema_version": "checked equal instead",
    "meta": "the settings the state was coded under: the parent records them",
    "reviews": "written by the review console, never by a replay",
    "outbox": "copied apart, in its order",
}  # and SQLite's own tables (sqlite_sequence, sqlite_stat1, ...)


class ShardMismatch(ValueError):
    """A shard cannot be merged: another schema version, or a table the merge does not know."""


def merge(db: sqlite3.Connection, shards: Iterable[Path]) -> None:
    """Copy every shard's state into ``db`` (autocommit mode; the schemas must be the same version).

    Every shard is checked before any is copied, so a mismatch leaves the target as it was.

    Raises:
        ShardMismatch: A shard's schema version is not the target's, or it holds a table that
            is neither merged (``TABLES``, the outbox) nor left out for a reason (``NOT_MERGED``).
        sqlite3.IntegrityError: A shard holds a key the target already holds.
    """
    version = db.execute("SELECT version FROM main.schema_version").fetchone()[0]
    paths = list(shards)
    for path in paths:
        with _attached(db, path):
            _check(db, path, version)
    for path in paths:
        with _attached(db, path):
            db.execute("BEGIN IMMEDIATE")
            try:
                for table in (*TABLES, "outbox"):
                    names = [row[1] for row in db.execute(f"PRAGMA main.table_info({table})") if row[1] != "seq"]
                    columns = ", ".join(names)
                    order = " ORDER BY seq" if table == "outbox" else ""
                    db.execute(
                        f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM shard.{table}{order}"  # noqa: S608 - names from the schema
                    )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise


def _check(db: sqlite3.Connection, path: Path, version: int) -> None:
    held = db.execute("SELECT version FROM shard.schema_version").fetchone()[0]
    if held != version:
        raise ShardMismatch(f"shard {path.name} has schema version {held}, the state {version}")
    tables = {row[0] for row in db.execute("SELECT name FROM shard.sqlite_master WHERE type = 'table'")}
    unknown = sorted(t for t in tables - set(TABLES) - set(NOT_MERGED) if not t.startswith("sqlite_"))
    if unknown:
        raise ShardMismatch(f"shard {path.name} holds tables the merge does not know: {', '.join(unknown)}")


@contextmanager
def _attached(db: sqlite3.Connection, path: Path) -> Iterator[None]:
    db.execute("ATTACH DATABASE ? AS shard", (str(path),))
    try:
        yield
    finally:
        db.execute("DETACH DATABASE shard")
