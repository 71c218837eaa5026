from pathlib import Path

from connector.store.sqlite import SqliteStore


def test_sqlite_schema_is_versioned_and_reopening_keeps_data(tmp_path: Path) -> None:
    path = f"{tmp_path}/state.db"
    first = SqliteStore(path)
    with first.transaction() as tx:
        tx.mark_seen("k")
    assert first.schema_version == 1
    first.close()
    again = SqliteStore(path)
    with again.transaction() as tx:
        assert tx.is_seen("k")
    again.close()
