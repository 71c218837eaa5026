"""Behaviour suite for the console's review marks in every store (memory, SQLite; PostgreSQL imports it).

A mark is an append-only audit record: added in a transaction, read back in the order added,
dropped by a rollback, never replaced, kept by the retention purge, and independent of coding
(it touches no state, emitted line or outcome). tests/integration/test_store_postgres.py
collects these tests again against a real PostgreSQL.
"""

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from connector.model import ChargeLine, Encounter
from connector.model.events import EncounterRef
from connector.model.outcomes import AdministrationOutcome, OutcomeKind
from connector.model.reviews import ReviewMark
from connector.store.base import EncounterState, OutboxRow, Store
from connector.store.memory import MemoryStore
from connector.store.sqlite import SqliteStore

REF = EncounterRef("FAC|V1", "V1", "FAC", "P1", "FAC")
LINE = ChargeLine("ln-1", "96374", 1, datetime(2026, 3, 2).date(), (), "0260", "IVP96374", ("a1",), "r", "why")
T0 = datetime(2026, 3, 4, 15, 30, 12, 345678, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    made: Store = MemoryStore() if request.param == "memory" else SqliteStore(":memory:")
    yield made
    made.close()


def mark(n: int, key: str = "FAC|V1", **changes: str) -> ReviewMark:
    fields = {"actor": "analyst", "note": f"checked the route <b>{n}</b>\nline two — é", "basis": f"rb-{n}"}
    fields.update(changes)
    return ReviewMark(key, T0 + timedelta(minutes=n), fields["actor"], fields["note"], fields["basis"])


def test_marks_are_read_back_exactly_in_the_order_added(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.reviews("FAC|V1") == []
        tx.add_review(mark(2))
        tx.add_review(mark(1, key="FAC|V2"))
        assert tx.reviews("FAC|V1") == [mark(2)]  # this transaction's write is visible to it
    with store.transaction() as tx:
        tx.add_review(mark(1))  # an earlier time, added later: the order added wins
        tx.add_review(mark(2))  # the same mark again is a second audit record, not a replacement
        assert tx.reviews("FAC|V1") == [mark(2), mark(1), mark(2)]
    with store.transaction() as tx:
        found = tx.reviews("FAC|V1")
        assert found == [mark(2), mark(1), mark(2)] and tx.reviews("FAC|V2") == [mark(1, key="FAC|V2")]
        assert tx.reviews("FAC|V9") == []
    assert found[0].at == T0 + timedelta(minutes=2) and found[0].at.utcoffset() == timedelta(0)


def test_a_mark_made_at_another_offset_is_read_back_as_the_same_instant_in_utc(store: Store) -> None:
    elsewhere = datetime(2026, 3, 4, 10, 30, tzinfo=timezone(timedelta(hours=-5)))
    with store.transaction() as tx:
        tx.add_review(ReviewMark("FAC|V1", elsewhere, "token", "n", "rb-x"))
    with store.transaction() as tx:
        (found,) = tx.reviews("FAC|V1")
    assert found.at == elsewhere and found.at.utcoffset() == timedelta(0)


def test_a_rollback_drops_the_mark(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.add_review(mark(1))
        raise RuntimeError
    with store.transaction() as tx:
        assert tx.reviews("FAC|V1") == []


def test_a_mark_changes_no_coding_and_the_purge_keeps_it(store: Store) -> None:
    outcome = AdministrationOutcome("a1", OutcomeKind.NEEDS_REVIEW, "unmapped_route", "d")
    with store.transaction() as tx:
        tx.put(EncounterState(REF, Encounter("FAC|V1"), 5.0))
        tx.set_emitted("FAC|V1", {"ln-1": LINE})
        tx.put_outcomes("FAC|V1", [outcome])
        tx.mark_seen("k")
        tx.enqueue(OutboxRow("m1", "FAC|V1", "json", b"{}"))
    with store.transaction() as tx:
        before = (tx.get("FAC|V1"), tx.emitted("FAC|V1"), tx.outcomes("FAC|V1"), tx.history("FAC|V1"))
        tx.add_review(mark(1))
    store.mark_sent([("m1", "json")])
    store.purge(datetime.now(UTC).timestamp() + 3600)
    with store.transaction() as tx:
        assert (tx.get("FAC|V1"), tx.emitted("FAC|V1"), tx.outcomes("FAC|V1"), tx.history("FAC|V1")) == before
        assert tx.reviews("FAC|V1") == [mark(1)] and tx.encounter_keys() == ["FAC|V1"]


def test_a_sqlite_file_refuses_to_update_or_delete_a_mark(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    with store.transaction() as tx:
        tx.add_review(mark(1))
    store.close()
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE reviews SET note = 'rewritten'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM reviews")
    db.close()
    reopened = SqliteStore(path)
    with reopened.transaction() as tx:
        assert tx.reviews("FAC|V1") == [mark(1)]
    reopened.close()
