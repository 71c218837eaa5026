"""The store behaviour suites (tests/unit/test_store_contract.py, _outcomes.py, _reviews.py) against a real PostgreSQL.

The suite's test functions are imported here and collected again with this module's ``store``
fixture: one suite, three implementations (memory, SQLite, PostgreSQL). Each test gets a fresh
schema. Concurrency with real connections: tests/integration/test_postgres_concurrency.py.
"""

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from postgres import LocalPostgres

from connector.store.base import OutboxRow, Store
from connector.store.postgres import PostgresStore, StoreUnavailable
from connector.store.postgres_schema import MIGRATIONS, SchemaTooNew

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))  # the suite lives with the unit tests
import test_store_contract as suite
import test_store_outcomes as outcomes_suite
import test_store_reviews as reviews_suite

pytestmark = pytest.mark.integration
for _module in (suite, outcomes_suite, reviews_suite):
    globals().update({name: test for name, test in vars(_module).items() if name.startswith("test_")})


@pytest.fixture
def dsn(cluster: LocalPostgres) -> Iterator[str]:
    with cluster.fresh_schema("contract") as found:
        yield found


@pytest.fixture
def store(dsn: str) -> Iterator[Store]:
    made = PostgresStore(dsn)
    yield made
    made.close()


def test_the_suite_was_imported() -> None:
    assert sum(name.startswith("test_") for name in vars(suite)) >= 7
    assert "test_state_round_trips_exactly" in globals()
    assert "test_overlapping_visits_are_ambiguous_and_resolve_nothing" in globals()
    assert "test_marks_are_read_back_exactly_in_the_order_added" in globals()


def test_stores_opened_together_migrate_once(dsn: str) -> None:
    stores: list[PostgresStore] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def open_one() -> None:
        try:
            opened = PostgresStore(dsn)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
            return
        with lock:
            stores.append(opened)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert {s.schema_version for s in stores} == {len(MIGRATIONS)}
        with psycopg.connect(dsn) as conn:
            versions = [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY version")]
        assert versions == list(range(1, len(MIGRATIONS) + 1))
    finally:
        for opened in stores:
            opened.close()


def test_a_newer_schema_is_refused_with_a_clear_error(dsn: str) -> None:
    PostgresStore(dsn).close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (len(MIGRATIONS) + 1,))
    with pytest.raises(SchemaTooNew, match="upgrade ivpush"):
        PostgresStore(dsn)


def test_an_unreachable_server_is_a_transient_store_error() -> None:
    with pytest.raises(StoreUnavailable) as raised:
        PostgresStore("postgresql://nobody@127.0.0.1:1/none", connect_timeout=2)
    assert isinstance(raised.value, ConnectionError)  # the consumer retries, never parks the input


def test_ping_answers_on_a_live_store(store: PostgresStore) -> None:
    store.ping()


def test_a_relay_claims_its_rows_and_another_relay_skips_them(dsn: str) -> None:
    first, second = PostgresStore(dsn), PostgresStore(dsn)
    try:
        with first.transaction() as tx:
            for n in range(4):
                tx.enqueue(OutboxRow(f"m{n}", "E", "json", b"x"))
        assert [r.message_id for r in first.pending(2)] == ["m0", "m1"]
        assert [r.message_id for r in second.pending()] == ["m2", "m3"]
        assert [r.message_id for r in first.pending()] == ["m0", "m1"]  # its own claims, again (retries)
        first.mark_sent([("m0", "json")])
        assert [r.message_id for r in second.pending()] == ["m2", "m3"]
    finally:
        second.close()
    # a store whose owner session is gone frees its claims at once (a consumer killed -9)
    third = PostgresStore(dsn)
    try:
        assert [r.message_id for r in third.pending()] == ["m2", "m3"]
        assert [r.message_id for r in first.pending()] == ["m1"]
    finally:
        third.close()
        first.close()


def test_an_expired_claim_is_taken_over(dsn: str) -> None:
    first, second = PostgresStore(dsn, claim_seconds=0.0), PostgresStore(dsn)
    try:
        with first.transaction() as tx:
            tx.enqueue(OutboxRow("m1", "E", "json", b"x"))
        assert [r.message_id for r in first.pending()] == ["m1"]
        assert [r.message_id for r in second.pending()] == ["m1"]
        assert first.pending() == []  # now claimed by the second relay, whose lease runs
    finally:
        first.close()
        second.close()


def test_two_consumers_racing_for_one_order_id_the_first_to_commit_wins(dsn: str) -> None:
    first, second = PostgresStore(dsn), PostgresStore(dsn)
    try:
        with first.transaction() as tx:
            tx.link_orders(["FAC|O1"], "FAC|V2")
            tx.open_encounters()  # sent: the row is now held by this uncommitted transaction
            racer = threading.Thread(target=link_in_a_transaction, args=(second, "FAC|V1"))
            racer.start()
            racer.join(timeout=0.5)
            assert racer.is_alive()  # waits on the row this transaction holds
        racer.join(timeout=30)
        with second.transaction() as tx:
            assert tx.order_link("FAC|O1") == "FAC|V2"  # committed first; the smaller key does not move it
    finally:
        first.close()
        second.close()


def link_in_a_transaction(store: PostgresStore, encounter_key: str) -> None:
    with store.transaction() as tx:
        tx.link_orders(["FAC|O1"], encounter_key)


def test_the_database_refuses_to_update_delete_or_truncate_review_marks(store: PostgresStore, dsn: str) -> None:
    with store.transaction() as tx:
        tx.add_review(reviews_suite.mark(1))
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in ("UPDATE reviews SET note = 'rewritten'", "DELETE FROM reviews", "TRUNCATE reviews"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
    with store.transaction() as tx:
        assert tx.reviews("FAC|V1") == [reviews_suite.mark(1)]
