"""Retention on real stores (issue #14, item 5): the migration that dates old rows, `ivpush state purge` on PostgreSQL.

The purge's behaviour itself is in the store suite (tests/unit/test_store_contract.py), which
tests/integration/test_store_postgres.py runs against PostgreSQL too.
"""

import sqlite3
import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from postgres import LocalPostgres

from connector.cli.main import cli
from connector.store.postgres import PostgresStore
from connector.store.sqlite import SqliteStore
from connector.store.sqlite_schema import MIGRATIONS

pytestmark = pytest.mark.integration
DAY = 86400.0


def test_a_sqlite_file_of_schema_2_keeps_its_keys_dated_from_the_migration(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.executescript(f"BEGIN; {MIGRATIONS[0]}; {MIGRATIONS[1]} COMMIT;")
    db.execute("INSERT INTO schema_version (version) VALUES (2)")
    db.execute("INSERT INTO seen (dedup_key) VALUES ('PYXIS|GENHOSP|1')")
    db.execute(
        "INSERT INTO outbox (message_id, format, encounter_key, body, sent) VALUES ('m1', 'json', 'E', x'31', 1)"
    )
    db.execute(
        "INSERT INTO outbox (message_id, format, encounter_key, body, sent) VALUES ('m2', 'json', 'E', x'32', 0)"
    )
    db.close()
    before = time.time()
    store = SqliteStore(str(path))
    try:
        assert store.schema_version == len(MIGRATIONS) >= 3
        with store.transaction() as tx:
            assert tx.is_seen("PYXIS|GENHOSP|1")
        assert store.purge(before - DAY).dedup_keys == 0  # dated now, not 1970: kept until they age
        assert [row.message_id for row in store.pending()] == ["m2"]
    finally:
        store.close()
    db = sqlite3.connect(path)
    seen_at, sent_at = db.execute(
        "SELECT (SELECT seen_at FROM seen), (SELECT sent_at FROM outbox WHERE sent)"
    ).fetchone()
    pending_sent_at = db.execute("SELECT sent_at FROM outbox WHERE NOT sent").fetchone()[0]
    db.close()
    assert seen_at >= before - 1 and sent_at >= before - 1 and pending_sent_at is None


def test_state_purge_on_a_postgresql_store(cluster: LocalPostgres) -> None:
    with cluster.fresh_schema("retention") as dsn:
        store = PostgresStore(dsn)
        try:
            with store.transaction() as tx:
                tx.mark_seen("old")
                tx.mark_seen("new")
            store.mark_sent([])
        finally:
            store.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE seen SET seen_at = seen_at - interval '40 days' WHERE dedup_key = 'old'")
        result = CliRunner().invoke(cli, ["state", "purge", "--older-than", "30d"], env={"IVPUSH_STATE": dsn})
        assert result.exit_code == 0, result.output
        assert "deleted 1 dedup keys and 0 sent outbox rows older than 30 days" in result.output
        assert "password" not in result.output
        with psycopg.connect(dsn) as conn:
            assert [key for (key,) in conn.execute("SELECT dedup_key FROM seen")] == ["new"]
