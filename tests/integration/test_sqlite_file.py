import sqlite3
from pathlib import Path

from connector.store.sqlite import SqliteStore
from connector.store.sqlite_schema import MIGRATIONS


def test_sqlite_schema_is_versioned_and_reopening_keeps_data(tmp_path: Path) -> None:
    path = f"{tmp_path}/state.db"
    first = SqliteStore(path)
    with first.transaction() as tx:
        tx.mark_seen("k")
    assert first.schema_version == len(MIGRATIONS)
    first.close()
    again = SqliteStore(path)
    with again.transaction() as tx:
        assert tx.is_seen("k")
    again.close()


def test_a_file_of_the_first_schema_is_migrated_and_its_encounters_are_not_failed(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.executescript(f"BEGIN; {MIGRATIONS[0]} COMMIT;")
    db.execute("INSERT INTO schema_version (version) VALUES (1)")
    db.execute(
        "INSERT INTO encounters (key, ref, attrs, updated_at, messages, closed) VALUES (?, ?, ?, ?, ?, ?)",
        ("F|V1", '{"key":"F|V1","visit":"V1","authority":"F","patient":"","facility":""}', "{}", 5.0, 0, 0),
    )
    db.close()
    store = SqliteStore(str(path))
    try:
        assert store.schema_version == len(MIGRATIONS) >= 2
        with store.transaction() as tx:
            assert tx.open_encounters(idle_before=10.0) == ["F|V1"]
    finally:
        store.close()
