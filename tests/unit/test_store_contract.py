"""One behaviour suite for every store implementation (memory, SQLite)."""

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from connector.model import ChargeLine, CodedValue, Coding, Encounter
from connector.model.administration import Administration
from connector.model.events import EncounterRef
from connector.store.base import EncounterState, OutboxRow, Purged, Store
from connector.store.memory import MemoryStore
from connector.store.sqlite import SqliteStore

ZONE = timezone(timedelta(hours=-5))
REF = EncounterRef("FAC|V1", "V1", "FAC", "P1", "FAC")


def admin(n: int, **changes: object) -> Administration:
    base = Administration(
        id=f"a{n}",
        encounter_key="FAC|V1",
        drug=CodedValue((Coding("RXNORM", "26225", "ondansetron"),), "Ondansetron 4 mg"),
        start=datetime(2026, 3, 2, 10, n, tzinfo=ZONE),
        route=CodedValue((Coding("HL70162", "IV"),)),
        version="1",
    )
    return base if not changes else replace(base, **changes)


def state(*admins: Administration, updated_at: float = 1.0, closed: bool = False) -> EncounterState:
    return EncounterState(REF, Encounter("FAC|V1", closed=closed).with_administrations(admins), updated_at)


LINE = ChargeLine("ln-1", "96374", 1, datetime(2026, 3, 2).date(), (), "0260", "IVP96374", ("a1",), "r", "why")


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    made: Store = MemoryStore() if request.param == "memory" else SqliteStore(":memory:")
    yield made
    made.close()


def test_state_round_trips_exactly(store: Store) -> None:
    saved = state(admin(1), admin(2, end=datetime(2026, 3, 2, 11, 0, tzinfo=ZONE), contexts=frozenset({"kvo"})))
    with store.transaction() as tx:
        tx.put(saved)
    with store.transaction() as tx:
        assert tx.get("FAC|V1") == saved
        assert tx.get("nope") is None


def test_an_account_round_trips_and_a_state_without_one_reads_back_empty(store: Store) -> None:
    dated = datetime(2026, 3, 2, 7, 0, tzinfo=ZONE)
    account = replace(state(admin(1)).encounter, account="ACCT-77", account_at=dated, account_version="v2")
    with store.transaction() as tx:
        tx.put(EncounterState(REF, account, 1.0))
        tx.put(EncounterState(replace(REF, key="FAC|V2"), Encounter("FAC|V2"), 1.0))
    with store.transaction() as tx:
        got, bare = tx.get("FAC|V1"), tx.get("FAC|V2")
    assert got is not None and got.encounter == account
    assert bare is not None and (bare.encounter.account, bare.encounter.account_at) == ("", None)


def test_changed_administrations_replace_the_stored_ones(store: Store) -> None:
    with store.transaction() as tx:
        tx.put(state(admin(1), admin(2)))
    newer = admin(2, version="2", start=datetime(2026, 3, 2, 12, 0, tzinfo=ZONE))
    with store.transaction() as tx:
        current = tx.get("FAC|V1")
        assert current is not None
        tx.put(state(*current.encounter.with_administrations([newer]).administrations))
    with store.transaction() as tx:
        got = tx.get("FAC|V1")
        assert got is not None and [a.version for a in got.encounter.administrations] == ["1", "2"]


def test_seen_keys_persist_across_transactions(store: Store) -> None:
    with store.transaction() as tx:
        assert not tx.is_seen("k")
        tx.mark_seen("k")
        assert tx.is_seen("k")
    with store.transaction() as tx:
        assert tx.is_seen("k")


def test_seen_answers_for_many_keys_at_once_marks_of_this_transaction_included(store: Store) -> None:
    many = [f"k{n}" for n in range(1203)]  # more than one look-up's worth
    with store.transaction() as tx:
        for key in many[::2]:
            tx.mark_seen(key)
    with store.transaction() as tx:
        tx.mark_seen("k1")
        assert tx.seen([*many, "other"]) == {*many[::2], "k1"}
        assert tx.seen([]) == set()
    with store.transaction() as tx:
        assert tx.seen(["k1", "k3"]) == {"k1"}


def test_committed_order_links_keep_their_encounter(store: Store) -> None:
    with store.transaction() as tx:
        tx.link_orders(["o1"], "FAC|V2")
    with store.transaction() as tx:
        tx.link_orders(["o1", "o2"], "FAC|V1")  # o1 was linked before: the first link wins
        assert (tx.order_link("o1"), tx.order_link("o2")) == ("FAC|V2", "FAC|V1")
    with store.transaction() as tx:
        assert (tx.order_link("o1"), tx.order_link("o2")) == ("FAC|V2", "FAC|V1")
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.link_orders(["o3"], "FAC|V9")
        raise RuntimeError
    with store.transaction() as tx:  # a link rolled back was never made
        tx.link_orders(["o3"], "FAC|V3")
        assert tx.order_link("o3") == "FAC|V3"


def test_an_exception_rolls_the_whole_transaction_back(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.mark_seen("k")
        tx.put(state(admin(1)))
        tx.enqueue(OutboxRow("m1", "FAC|V1", "json", b"{}"))
        raise RuntimeError
    with store.transaction() as tx:
        assert not tx.is_seen("k") and tx.get("FAC|V1") is None
    assert store.pending() == []


def test_emitted_lines_are_replaced_as_a_set(store: Store) -> None:
    with store.transaction() as tx:
        tx.set_emitted("FAC|V1", {"ln-1": LINE})
    with store.transaction() as tx:
        assert tx.emitted("FAC|V1") == {"ln-1": LINE}
        tx.set_emitted("FAC|V1", {})
    with store.transaction() as tx:
        assert tx.emitted("FAC|V1") == {}


def test_the_outbox_is_idempotent_ordered_and_drained_by_confirms(store: Store) -> None:
    with store.transaction() as tx:
        tx.enqueue(OutboxRow("m1", "E", "json", b"1"))
        tx.enqueue(OutboxRow("m1", "E", "dft", b"1d"))
    with store.transaction() as tx:
        tx.enqueue(OutboxRow("m1", "E", "json", b"again"))
        tx.enqueue(OutboxRow("m2", "E", "json", b"2"))
    assert [(r.message_id, r.format, r.body) for r in store.pending()] == [
        ("m1", "json", b"1"),
        ("m1", "dft", b"1d"),
        ("m2", "json", b"2"),
    ]
    store.mark_sent([("m1", "json"), ("m1", "dft")])
    assert [r.message_id for r in store.pending()] == ["m2"]


def test_open_encounters_can_be_filtered_by_idleness(store: Store) -> None:
    with store.transaction() as tx:
        tx.put(state(admin(1), updated_at=100.0))
        other = state(admin(1), updated_at=50.0)
        tx.put(EncounterState(EncounterRef("FAC|V2", "V2"), Encounter("FAC|V2"), 50.0))
        tx.put(EncounterState(EncounterRef("FAC|V3", "V3"), Encounter("FAC|V3", closed=True), 10.0))
        assert other.updated_at == 50.0
    with store.transaction() as tx:
        assert tx.open_encounters() == ["FAC|V1", "FAC|V2"]
        assert tx.open_encounters(idle_before=60.0) == ["FAC|V2"]


def test_every_encounter_key_is_listed_sorted_and_in_pages(store: Store) -> None:
    keys = ["FAC|V3", "FAC|V1", "FAC|V10", "FAC|V2"]
    with store.transaction() as tx:
        assert tx.encounter_keys() == []
        for key in keys:
            tx.put(EncounterState(EncounterRef(key, key[4:]), Encounter(key, closed=key.endswith("2")), 1.0))
        assert tx.encounter_keys() == sorted(keys)  # this transaction's own writes too
    with store.transaction() as tx:
        assert tx.encounter_keys() == ["FAC|V1", "FAC|V10", "FAC|V2", "FAC|V3"]  # open and closed
        assert tx.encounter_keys(limit=2) == ["FAC|V1", "FAC|V10"]
        assert tx.encounter_keys(after="FAC|V10", limit=2) == ["FAC|V2", "FAC|V3"]
        assert tx.encounter_keys(after="FAC|V3") == []


def test_a_failure_mark_round_trips_and_keeps_the_encounter_out_of_idle_sweeps(store: Store) -> None:
    marked = replace(state(admin(1), updated_at=10.0), failed="render_failed")
    with store.transaction() as tx:
        tx.put(marked)
    with store.transaction() as tx:
        assert tx.get("FAC|V1") == marked
        assert tx.open_encounters() == ["FAC|V1"]  # open: counted, closed at the end of a replay
        assert tx.open_encounters(idle_before=60.0) == []  # but not swept until new input clears it
        tx.put(replace(marked, failed=""))
    with store.transaction() as tx:
        assert tx.get("FAC|V1") == replace(marked, failed="")
        assert tx.open_encounters(idle_before=60.0) == ["FAC|V1"]


def a_moment_between() -> float:
    """A cut-off strictly after what was written before and strictly before what is written after."""
    time.sleep(0.02)  # orders the store's clock against this one; nothing is measured
    cutoff = time.time()
    time.sleep(0.02)
    return cutoff


def test_purge_deletes_old_dedup_keys_and_sent_outbox_rows_and_nothing_pending(store: Store) -> None:
    with store.transaction() as tx:
        tx.mark_seen("old-1")
        tx.mark_seen("old-2")
        tx.enqueue(OutboxRow("m-old", "E", "json", b"1"))
        tx.enqueue(OutboxRow("m-pending", "E", "json", b"2"))
    store.mark_sent([("m-old", "json")])
    cutoff = a_moment_between()
    with store.transaction() as tx:
        tx.mark_seen("new")
        tx.enqueue(OutboxRow("m-new", "E", "json", b"3"))
    store.mark_sent([("m-new", "json")])
    assert store.purge(cutoff, limit=1) == Purged(dedup_keys=1, outbox_rows=1)  # at most limit of each
    assert store.purge(cutoff) == Purged(dedup_keys=1, outbox_rows=0)
    assert store.purge(cutoff) == Purged()
    with store.transaction() as tx:
        assert [tx.is_seen(key) for key in ("old-1", "old-2", "new")] == [False, False, True]
    assert [r.message_id for r in store.pending()] == ["m-pending"]
    later = a_moment_between()
    assert store.purge(later) == Purged(dedup_keys=1, outbox_rows=1)
    assert [r.message_id for r in store.pending()] == ["m-pending"]  # never confirmed: never purged
    with store.transaction() as tx:  # the outbox keeps numbering upward after a purge
        tx.enqueue(OutboxRow("m-after", "E", "json", b"4"))
    first, after = store.pending()
    assert (first.message_id, after.message_id) == ("m-pending", "m-after") and after.sequence > first.sequence
