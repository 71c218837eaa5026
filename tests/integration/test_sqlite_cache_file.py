"""The SQLite store's state cache against a second connection to the same file."""

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from connector.model import CodedValue, Encounter
from connector.model.administration import Administration
from connector.model.events import EncounterRef
from connector.store.base import EncounterState
from connector.store.sqlite import SqliteStore

ZONE = timezone(timedelta(hours=-5))
REF = EncounterRef("FAC|V1", "V1", "FAC", "P1", "FAC")


def admin(n: int, **changes: object) -> Administration:
    base = Administration(f"a{n}", "FAC|V1", CodedValue(text="Ondansetron"), datetime(2026, 3, 2, 10, n, tzinfo=ZONE))
    return replace(base, **changes) if changes else base


def state(*admins: Administration, updated_at: float = 1.0) -> EncounterState:
    return EncounterState(REF, Encounter("FAC|V1").with_administrations(admins), updated_at)


def test_another_writer_invalidates_the_cache(tmp_path: Path) -> None:
    """The cache assumes one writer; a second connection's commit is detected (data_version)."""
    path = tmp_path / "state.db"
    first, second = SqliteStore(path), SqliteStore(path)
    with first.transaction() as tx:
        tx.put(state(admin(1)))
    with first.transaction() as tx:
        assert tx.get("FAC|V1") == state(admin(1))  # now cached by the first connection
    with second.transaction() as tx:
        tx.put(state(admin(1, version="2"), admin(2), updated_at=7.0))
    with first.transaction() as tx:
        assert tx.get("FAC|V1") == state(admin(1, version="2"), admin(2), updated_at=7.0)
    first.close()
    second.close()


def test_a_reopened_file_reads_what_the_cached_store_wrote(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    writer = SqliteStore(path)
    with writer.transaction() as tx:
        tx.put(state(admin(1), admin(2)))
    with writer.transaction() as tx:
        current = tx.get("FAC|V1")
        assert current is not None
        tx.put(replace(current, encounter=current.encounter.with_administrations([admin(2, version="2")])))
    with writer.transaction() as tx:
        cached = repr(tx.get("FAC|V1"))
    writer.close()
    reader = SqliteStore(path)
    with reader.transaction() as tx:
        assert repr(tx.get("FAC|V1")) == cached
    reader.close()
