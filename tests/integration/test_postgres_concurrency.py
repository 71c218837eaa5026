"""The PostgreSQL store under concurrency, with real connections: serialised encounters, no deadlock, one effect.

Waiting is observed in ``pg_locks`` (a backend waiting on our advisory lock), never inferred
from elapsed time. Encounter keys are unique per test: advisory locks are database-wide.
"""

import multiprocessing
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from broker import expected_charges, hl7_feed
from postgres import LocalPostgres

from connector.bootstrap import local_zone, renderers
from connector.bus.base import Delivery
from connector.bus.inputs import parse_delivery
from connector.model import Encounter
from connector.model.events import EncounterRef
from connector.policy.model import Policy
from connector.service import Service, ServiceSettings
from connector.store.base import EncounterState
from connector.store.postgres import PostgresStore
from connector.store.postgres_transaction import LOCK_SEED

pytestmark = pytest.mark.integration


@pytest.fixture
def dsn(cluster: LocalPostgres) -> Iterator[str]:
    with cluster.fresh_schema("conc") as found:
        yield found


@pytest.fixture
def store(dsn: str) -> Iterator[PostgresStore]:
    made = PostgresStore(dsn, max_size=8)
    yield made
    made.close()


def key(name: str) -> str:
    return f"T{uuid.uuid4().hex[:8]}|{name}"


def bare(encounter_key: str, messages: int = 0) -> EncounterState:
    return EncounterState(EncounterRef(encounter_key, encounter_key), Encounter(encounter_key), 1.0, messages)


def lock_holders(cluster: LocalPostgres, encounter_key: str) -> tuple[int, int]:
    """(granted, waiting) advisory locks on one encounter's key, across the cluster."""
    with cluster.connect() as conn:
        row = conn.execute("SELECT hashtextextended(%s, %s)", (encounter_key, LOCK_SEED)).fetchone()
        assert row is not None
        value = int(str(row[0])) & 0xFFFFFFFFFFFFFFFF
        found = conn.execute(
            "SELECT count(*) FILTER (WHERE granted), count(*) FILTER (WHERE NOT granted) FROM pg_locks "
            "WHERE locktype = 'advisory' AND objsubid = 1 AND classid::bigint = %s AND objid::bigint = %s",
            (value >> 32, value & 0xFFFFFFFF),
        ).fetchone()
        assert found is not None
        return int(str(found[0])), int(str(found[1]))


def eventually(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def joined(threads: list[threading.Thread], timeout: float) -> None:
    """Join every thread, then fail if any is still running: a hang (a deadlock) must not pass."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = [thread.name for thread in threads if thread.is_alive()]
    assert not hung, f"still running after {timeout:.0f}s (deadlocked or hung): {hung}"


def test_a_second_transaction_on_the_same_encounter_waits_and_then_sees_the_first_ones_commit(
    store: PostgresStore, cluster: LocalPostgres
) -> None:
    encounter = key("V1")
    holding, release = threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def first() -> None:
        with store.transaction() as tx:
            tx.lock([encounter])
            tx.mark_seen(f"{encounter}/input-1")
            tx.put(bare(encounter, messages=7))
            holding.set()
            assert release.wait(30)

    def second() -> None:
        with store.transaction() as tx:
            tx.lock([encounter])
            seen["state"] = tx.get(encounter)
            seen["dedup"] = tx.is_seen(f"{encounter}/input-1")

    one, two = threading.Thread(target=first), threading.Thread(target=second)
    one.start()
    assert holding.wait(30)
    two.start()
    eventually(lambda: lock_holders(cluster, encounter) == (1, 1), "the second transaction to wait on the lock")
    assert seen == {}  # still waiting: it has read nothing
    release.set()
    joined([one, two], 60)
    assert seen == {"state": bare(encounter, messages=7), "dedup": True}


def test_reverse_order_key_sets_wait_without_holding_anything_and_never_deadlock(
    store: PostgresStore, cluster: LocalPostgres
) -> None:
    a, b = key("A"), key("B")
    holding, release, done = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with store.transaction() as tx:
            tx.lock([a, b])
            holding.set()
            assert release.wait(30)

    def second() -> None:
        with store.transaction() as tx:
            tx.lock([b, a])  # the reverse order: taken in hash order all the same
        done.set()

    one, two = threading.Thread(target=first), threading.Thread(target=second)
    one.start()
    assert holding.wait(30)
    two.start()
    eventually(lambda: sum(lock_holders(cluster, k)[1] for k in (a, b)) == 1, "the second to wait")
    assert lock_holders(cluster, a)[0] + lock_holders(cluster, b)[0] == 2  # only the first's: none half-taken
    release.set()
    joined([one, two], 60)
    assert done.is_set()


def test_shuffled_overlapping_key_sets_lose_no_update_and_never_deadlock(store: PostgresStore) -> None:
    keys = [key(f"K{n}") for n in range(5)]
    with store.transaction() as tx:
        for k in keys:
            tx.put(bare(k))
    increments = {k: 0 for k in keys}
    count_lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(60):
                chosen = rng.sample(keys, rng.randint(2, len(keys)))  # any order: lock() sorts
                with store.transaction() as tx:
                    tx.lock(chosen)
                    for k in chosen:
                        current = tx.get(k)
                        assert current is not None
                        tx.put(bare(k, current.messages + 1))  # read-modify-write: lost without the lock
                with count_lock:
                    for k in chosen:
                        increments[k] += 1
        except BaseException as error:  # noqa: BLE001 - reported by the test thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    joined(threads, 120)
    assert errors == []
    with store.transaction() as tx:
        final = {k: tx.get(k) for k in keys}
    assert {k: s.messages for k, s in final.items() if s is not None} == increments


def _apply_in_lockstep(dsn: str, policy: Policy, bodies: list[bytes], barrier: object, out: object) -> None:
    """A child process: apply the feed one delivery at a time, meeting the other child before each."""
    store = PostgresStore(dsn)
    service = Service(store, policy, ServiceSettings(renderers(("json",))), clock=time.time)
    duplicates = 0
    for index, body in enumerate(bodies):
        records = parse_delivery(Delivery(index + 1, body), policy, local_zone(None))
        barrier.wait(60)  # type: ignore[attr-defined]
        duplicates += service.handle(records).duplicates
    store.close()
    out.put(duplicates)  # type: ignore[attr-defined]


def test_two_processes_applying_the_same_inputs_at_once_yield_one_effect(
    dsn: str, cluster: LocalPostgres, policy: Policy
) -> None:
    bodies = hl7_feed(12, tag=f"P{uuid.uuid4().hex[:6]}")
    context = multiprocessing.get_context("fork")
    barrier, out = context.Barrier(2), context.Queue()
    children = [context.Process(target=_apply_in_lockstep, args=(dsn, policy, bodies, barrier, out)) for _ in "ab"]
    for child in children:
        child.start()
    duplicates = [out.get(timeout=120) for _ in children]
    for child in children:
        child.join(60)
        assert not child.is_alive() and child.exitcode == 0, f"child exit code {child.exitcode}"
    assert sum(duplicates) == len(bodies)  # every input applied by exactly one of the two
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT message_id, format, body FROM outbox ORDER BY seq").fetchall()
        (seen,) = conn.execute("SELECT count(*) FROM seen").fetchone() or (0,)
    assert seen == len(bodies)
    assert {(m, f): bytes(b) for m, f, b in rows} == expected_charges(bodies)
    assert len(rows) == len(expected_charges(bodies))
