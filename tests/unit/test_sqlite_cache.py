"""The SQLite store's decoded-state cache: invisible except in speed.

Every scenario runs on a store with the cache and on one without (``cache_administrations=0``:
every read decodes what the file holds) and the two must return the same states, down to
``repr`` (so also the zone objects of times).
"""

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from connector.model import CodedValue, Coding, Encounter, PatientClass
from connector.model.administration import Administration
from connector.model.events import EncounterRef
from connector.store.base import EncounterState, Transaction
from connector.store.sqlite import SqliteStore
from connector.store.state_cache import CachedState, StateCache

FIXED = timezone(timedelta(hours=-5))
LOCAL = ZoneInfo("America/New_York")  # what HL7 times sent without an offset carry
REF = EncounterRef("FAC|V1", "V1", "FAC", "P1", "FAC")


def admin(n: int, zone: timezone | ZoneInfo = FIXED, **changes: object) -> Administration:
    base = Administration(
        id=f"a{n}",
        encounter_key="FAC|V1",
        drug=CodedValue((Coding("RXNORM", "26225", "ondansetron"),), "Ondansetron 4 mg"),
        start=datetime(2026, 3, 8, 1, n, tzinfo=zone),
        route=CodedValue((Coding("HL70162", "IV"),)),
        version="1",
    )
    return replace(base, **changes) if changes else base


def state(*admins: Administration, updated_at: float = 1.0, **attrs: object) -> EncounterState:
    encounter = replace(Encounter("FAC|V1"), **attrs).with_administrations(admins)
    return EncounterState(REF, encounter, updated_at)


Step = Callable[[Transaction], None]


def run(steps: list[tuple[Step, bool]], cache: int) -> list[str]:
    """Apply each step in its own transaction (rolled back when its flag says so); record every read."""
    store = SqliteStore(":memory:", cache_administrations=cache)
    reads: list[str] = []
    for step, fail in steps:
        try:
            with store.transaction() as tx:
                step(tx)
                reads.append(repr(tx.get("FAC|V1")))
                if fail:
                    raise RuntimeError("roll back")
        except RuntimeError:
            pass
        with store.transaction() as tx:
            reads.append(repr(tx.get("FAC|V1")))
    store.close()
    return reads


def same_with_and_without_cache(steps: list[tuple[Step, bool]]) -> list[str]:
    cached, uncached = run(steps, cache=1000), run(steps, cache=0)
    assert cached == uncached
    return cached


def extend(*admins: Administration, **attrs: object) -> Step:
    """What the service does: read, apply, write back."""

    def step(tx: Transaction) -> None:
        current = tx.get("FAC|V1") or state()
        encounter = replace(current.encounter, **attrs).with_administrations(admins)
        tx.put(replace(current, encounter=encounter, updated_at=current.updated_at + 1))

    return step


def test_a_rolled_back_write_leaves_nothing_cached() -> None:
    reads = same_with_and_without_cache(
        [
            (extend(admin(1)), False),
            (extend(admin(2), patient_class=PatientClass.OBSERVATION), True),
            (extend(admin(1, version="2")), True),
            (extend(admin(3)), False),
        ]
    )
    assert "a2" not in reads[-1] and "'a3'" in reads[-1] and "version='2'" not in reads[-1]
    assert "OBSERVATION" not in reads[-1]


def test_local_zone_times_read_back_as_the_file_holds_them() -> None:
    """A ZoneInfo time is stored as its offset; the cached state must not keep the ZoneInfo."""
    reads = same_with_and_without_cache(
        [
            (extend(admin(1, LOCAL), inpatient_from=datetime(2026, 3, 8, 3, 0, tzinfo=LOCAL)), False),
            (extend(admin(2, LOCAL, end=datetime(2026, 3, 8, 4, 0, tzinfo=LOCAL))), False),
        ]
    )
    assert "ZoneInfo" not in reads[-1]


def test_rewrites_and_same_instant_other_offset_match_the_file() -> None:
    utc_twin = admin(1, start=admin(1).start.astimezone(UTC))  # equal, yet stored text differs
    reads = same_with_and_without_cache(
        [
            (extend(admin(1), admin(2)), False),
            (extend(utc_twin), False),
            (extend(admin(2, version="2", status=admin(2).status)), False),
            (extend(class_at=datetime(2026, 3, 8, 5, 0, tzinfo=FIXED)), False),
            (extend(class_at=datetime(2026, 3, 8, 10, 0, tzinfo=UTC)), False),
            (extend(closed=True), False),
        ]
    )
    last = reads[-1]
    assert "version='2'" in last and "closed=True" in last and "10, 0, tzinfo=datetime.timezone.utc" in last


def test_a_put_without_a_get_keeps_what_the_file_already_holds() -> None:
    def blind_put(tx: Transaction) -> None:
        tx.put(state(admin(3), updated_at=5.0))

    reads = same_with_and_without_cache([(extend(admin(1), admin(2)), False), (blind_put, False)])
    assert all(f"'a{n}'" in reads[-1] for n in (1, 2, 3))


def test_synchronous_is_full_unless_asked_and_rejects_typos() -> None:
    store = SqliteStore(":memory:")
    assert store.synchronous == "FULL"
    store.set_synchronous("normal")
    assert store.synchronous == "NORMAL"
    with pytest.raises(ValueError, match="FULL or NORMAL"):
        store.set_synchronous("OFF")
    store.close()


def entry(n_admins: int) -> CachedState:
    admins = tuple(admin(n) for n in range(n_admins))
    return CachedState(state(*admins), {a.id: a for a in admins})


def test_the_cache_evicts_least_recently_used_beyond_its_bound() -> None:
    cache = StateCache(max_administrations=10)
    cache.put("a", entry(3))  # weight 4
    cache.put("b", entry(3))
    assert cache.get("a") is not None  # b is now the least recently used
    cache.put("c", entry(3))
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    assert cache.weight == 8 and len(cache) == 2
    cache.put("huge", entry(20))  # larger than the whole bound: not held, nothing evicted for it
    assert cache.get("huge") is None and len(cache) == 2
    cache.put("a", entry(1))  # replacing re-weighs
    assert cache.weight == 6
    cache.discard(["a", "nope"])
    assert cache.weight == 4
    cache.clear()
    assert len(cache) == 0 and cache.weight == 0
    with pytest.raises(ValueError, match=">= 0"):
        StateCache(-1)
