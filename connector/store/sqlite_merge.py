"""Copy SQLite states that share no key into one (``ivpush replay --jobs N``: the workers' shards).

Each worker of a replay codes its own encounters into a state file of its own; the shards share
no encounter, dedup key, order link or visit (``connector.cli.replay_shards``). ``merge`` copies
each shard's rows into the target in one transaction per shard, outbox rows in their order
(they get new sequence numbers after those held) and as they were (pending or sent). A key
held twice is an error (``sqlite3.IntegrityError``) and rolls that shard back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

TABLES = ("seen", "encounters", "administrations", "emitted", "outcomes", "history", "order_links", "visits")
# Tables a shard holds but whose rows are not copied, and why. A table in neither list (a later
# migration's) stops the merge, so that a new kind of state is never dropped without a word.
NOT_MERGED = {
    "schema_version": "checked equal instead",
    "meta": "the settings the state was coded under: the parent records them",
    "reviews": "written by the review console, never by a replay",
    "outbox": "copied apart, in its order",
    "sqlite_sequence": "SQLite's own",
}


def merge(db: sqlite3.Connection, shards: Iterable[Path]) -> None:
    """Copy every shard's state into ``db`` (autocommit mode; the schemas must be the same version).

    Raises:
        ValueError: A shard's schema version is not the target's, or it holds a table that is
            neither merged (``TABLES``, the outbox) nor left out for a reason (``NOT_MERGED``).
        sqlite3.IntegrityError: A shard holds a key the target already holds.
    """
    version = db.execute("SELECT version FROM main.schema_version").fetchone()[0]
    for path in shards:
        db.execute("ATTACH DATABASE ? AS shard", (str(path),))
        try:
            held = db.execute("SELECT version FROM shard.schema_version").fetchone()[0]
            if held != version:
                raise ValueError(f"shard {path.name} has schema version {held}, the state {version}")
            tables = {row[0] for row in db.execute("SELECT name FROM shard.sqlite_master WHERE type = 'table'")}
            unknown = sorted(tables - set(TABLES) - set(NOT_MERGED))
            if unknown:
                raise ValueError(f"shard {path.name} holds tables the merge does not know: {', '.join(unknown)}")
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
        finally:
            db.execute("DETACH DATABASE shard")
