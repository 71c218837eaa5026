"""A SQLite state file of schema 3 (before outcomes, history, links, visits, meta) migrates and keeps its data."""

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from store_rows import OLD_ADMIN, OLD_ATTRS

from connector.model import PatientClass
from connector.model.events import VisitWindow
from connector.model.outcomes import AdministrationOutcome, OutcomeKind
from connector.store import sqlite_schema
from connector.store.sqlite import SqliteStore
from connector.store.sqlite_schema import MIGRATIONS

pytestmark = pytest.mark.integration
ZONE = timezone(timedelta(hours=-5))
REF = {"key": "FAC|V1", "visit": "V1", "authority": "FAC", "patient": "P1", "facility": "FAC"}


def schema_3_file(path: Path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.executescript(f"BEGIN; {MIGRATIONS[0]}; {MIGRATIONS[1]}; {MIGRATIONS[2]} COMMIT;")
    db.execute("INSERT INTO schema_version (version) VALUES (3)")
    db.execute(
        "INSERT INTO encounters (key, ref, attrs, updated_at, messages, closed) VALUES (?, ?, ?, 5.0, 2, 0)",
        ("FAC|V1", orjson.dumps(REF).decode(), orjson.dumps(OLD_ATTRS).decode()),
    )
    db.execute(
        "INSERT INTO administrations (encounter_key, admin_id, body) VALUES (?, ?, ?)",
        ("FAC|V1", "a1", orjson.dumps(OLD_ADMIN).decode()),
    )
    db.execute("INSERT INTO seen (dedup_key) VALUES ('k1')")
    db.execute("INSERT INTO outbox (message_id, format, encounter_key, body) VALUES ('m1', 'json', 'FAC|V1', x'7b7d')")
    db.close()


def test_a_schema_3_file_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    schema_3_file(path)
    store = SqliteStore(path)
    try:
        assert store.schema_version == len(MIGRATIONS) >= 4
        with store.transaction() as tx:
            state = tx.get("FAC|V1")
            assert state is not None and state.messages == 2 and state.ref.patient_id == "P1"
            assert state.encounter.patient_class is PatientClass.OUTPATIENT  # stays what it was stored as
            assert state.encounter.payer_ids == () and state.encounter.class_hint is None
            (admin,) = state.encounter.administrations
            assert admin.ordered_minutes is None and admin.source.file == ""
            assert tx.is_seen("k1") and tx.open_encounters() == ["FAC|V1"]
            assert tx.outcomes("FAC|V1") == () and tx.history("FAC|V1") == [] and tx.get_meta("zone") is None
            assert tx.reviews("FAC|V1") == []
            tx.put_outcomes("FAC|V1", [AdministrationOutcome("a1", OutcomeKind.CODED, "coded", "")])
            tx.link_orders(["FAC|O1"], "FAC|V1")
            tx.add_visit(VisitWindow("FAC|P1", "FAC|V1", datetime(2026, 3, 2, 8, tzinfo=ZONE)))
            tx.set_meta("zone", "America/New_York")
        assert [r.message_id for r in store.pending()] == ["m1"]
    finally:
        store.close()
    reopened = SqliteStore(path)
    try:
        with reopened.transaction() as tx:
            assert [o.administration_id for o in tx.outcomes("FAC|V1")] == ["a1"]
            assert tx.order_link("FAC|O1") == "FAC|V1"
            assert tx.visit_at("FAC|P1", datetime(2026, 3, 2, 9, tzinfo=ZONE)) == "FAC|V1"
            assert tx.get_meta("zone") == "America/New_York"
    finally:
        reopened.close()


def test_a_migration_another_process_applied_meanwhile_is_taken_as_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "race.db"
    first, second = sqlite3.connect(path, isolation_level=None), sqlite3.connect(path, isolation_level=None)
    sqlite_schema.migrate(first)
    reads: list[int] = []
    real = sqlite_schema._version

    def stale_first_read(db: sqlite3.Connection) -> int:
        """The second process read version 0 just before the first one migrated."""
        reads.append(0 if not reads else real(db))
        return reads[-1]

    monkeypatch.setattr(sqlite_schema, "_version", stale_first_read)
    sqlite_schema.migrate(second)  # its first script fails (tables exist): the version says done
    assert reads[0] == 0 and reads[1] == len(MIGRATIONS)
    assert second.execute("SELECT version FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    first.close()
    second.close()
