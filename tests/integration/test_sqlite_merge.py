"""``sqlite_merge``: the shards of ``replay --jobs`` merge whole, or not at all with a reason."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from connector.store import sqlite_merge
from connector.store.sqlite import SqliteStore


def test_every_table_of_the_schema_is_merged_or_left_out_for_a_stated_reason(tmp_path: Path) -> None:
    SqliteStore(str(tmp_path / "state.db")).close()
    with sqlite3.connect(tmp_path / "state.db") as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables - {"sqlite_sequence"} <= set(sqlite_merge.TABLES) | set(sqlite_merge.NOT_MERGED)
    assert set(sqlite_merge.TABLES) <= tables


def test_a_shard_with_a_table_the_merge_does_not_know_stops_it_before_any_shard_is_copied(tmp_path: Path) -> None:
    target, good, odd = tmp_path / "state.db", tmp_path / "shard-0.db", tmp_path / "shard-1.db"
    for path in (target, good, odd):
        SqliteStore(str(path)).close()
    for path, key in ((good, "a"), (odd, "b")):
        with sqlite3.connect(path) as db:
            db.execute("INSERT INTO seen (dedup_key) VALUES (?)", (key,))
    with sqlite3.connect(odd) as db:
        db.execute("CREATE TABLE later_migration (key TEXT PRIMARY KEY)")
        db.execute("ANALYZE")  # SQLite's own sqlite_stat1: not in the way
    store = SqliteStore(str(target))
    try:
        with pytest.raises(
            sqlite_merge.ShardMismatch, match=r"shard-1\.db holds tables the merge does not know: later_migration$"
        ):
            store.merge([good, odd])
    finally:
        store.close()
    with sqlite3.connect(target) as db:
        assert db.execute("SELECT count(*) FROM seen").fetchone()[0] == 0  # not even the good shard
