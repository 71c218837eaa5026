"""Behaviour suite for what a store keeps beside encounter state (memory, SQLite; PostgreSQL imports it).

Outcomes, message history, placer order → encounter links, ADT visit windows and meta, through
the ``Transaction`` protocol. tests/integration/test_store_postgres.py collects these tests again
against a real PostgreSQL.
"""

from collections.abc import Iterator
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from connector.model import ClaimType, CodedValue, Coding, Encounter, PatientClass
from connector.model.administration import Administration, SourceRef
from connector.model.events import EncounterRef, VisitWindow
from connector.model.outcomes import AdministrationOutcome, HistoryEntry, OutcomeKind, Unmapped
from connector.store.base import EncounterState, OutboxRow, Store
from connector.store.memory import MemoryStore
from connector.store.sqlite import SqliteStore

ZONE = timezone(timedelta(hours=-5))
REF = EncounterRef("FAC|V1", "V1", "FAC", "P1", "FAC")
PATIENT = "FAC|MRN1"


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    made: Store = MemoryStore() if request.param == "memory" else SqliteStore(":memory:")
    yield made
    made.close()


def outcome(n: int, kind: OutcomeKind = OutcomeKind.CODED, **changes: object) -> AdministrationOutcome:
    base = AdministrationOutcome(
        administration_id=f"a{n}",
        outcome=kind,
        reason="coded" if kind is OutcomeKind.CODED else "unmapped_route",
        detail=f"started 2026-03-02 10:0{n} -05:00",
        codes=("96365",) if kind is OutcomeKind.CODED else (),
        source=SourceRef("hl7v2", f"MSG{n}", "RXA-1", "feeds/day1.hl7"),
        mappings=("mappings/routes.yaml:12",),
        unmapped=(Unmapped("route", "HL70162", "IVX", "RXR-1"),) if kind is OutcomeKind.NEEDS_REVIEW else (),
    )
    return replace(base, **changes) if changes else base


def entry(sequence: int, key: str = "FAC|V1", body: bytes = b'{"lines":[]}') -> HistoryEntry:
    return HistoryEntry(key, sequence, f"{key}#{sequence}", 1000.5 + sequence, "close", body)


def at(hour: int, day: int = 2, zone: timezone = ZONE) -> datetime:
    return datetime(2026, 3, day, hour, 0, tzinfo=zone)


def test_outcomes_round_trip_in_order_and_are_replaced_as_a_set(store: Store) -> None:
    first = (outcome(2), outcome(1, OutcomeKind.NEEDS_REVIEW), outcome(3, OutcomeKind.NO_LINE, reason="inpatient"))
    with store.transaction() as tx:
        assert tx.outcomes("FAC|V1") == ()
        tx.put_outcomes("FAC|V1", first)
        assert tx.outcomes("FAC|V1") == first  # this transaction's write is visible to it
    with store.transaction() as tx:
        assert tx.outcomes("FAC|V1") == first
        tx.put_outcomes("FAC|V1", [outcome(1)])
    with store.transaction() as tx:
        assert tx.outcomes("FAC|V1") == (outcome(1),)
        tx.put_outcomes("FAC|V1", ())
    with store.transaction() as tx:
        assert tx.outcomes("FAC|V1") == ()


def test_scan_outcomes_lists_every_outcome_by_encounter_key(store: Store) -> None:
    with store.transaction() as tx:
        tx.put_outcomes("FAC|V2", [outcome(1), outcome(2, OutcomeKind.NEEDS_REVIEW)])
        tx.put_outcomes("FAC|V1", [outcome(3)])
        tx.put_outcomes("FAC|V0", [])
    with store.transaction() as tx:
        tx.put_outcomes("FAC|V3", [outcome(4)])  # written in the scanning transaction: seen too
        scanned = list(tx.scan_outcomes())
    assert [(key, o.administration_id) for key, o in scanned] == [
        ("FAC|V1", "a3"),
        ("FAC|V2", "a1"),
        ("FAC|V2", "a2"),
        ("FAC|V3", "a4"),
    ]
    assert scanned[2][1] == outcome(2, OutcomeKind.NEEDS_REVIEW)


def test_history_is_by_sequence_and_a_repeated_sequence_is_ignored(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_history(entry(1))
        tx.add_history(entry(0))
        tx.add_history(entry(0, body=b"a later repeat"))  # same transaction
        tx.add_history(entry(0, key="FAC|V2"))
        assert [e.sequence for e in tx.history("FAC|V1")] == [0, 1]
    with store.transaction() as tx:
        tx.add_history(entry(1, body=b"redelivered"))  # another transaction
        tx.add_history(entry(2))
        assert tx.history("FAC|V1") == [entry(0), entry(1), entry(2)]
    with store.transaction() as tx:
        assert tx.history("FAC|V1") == [entry(0), entry(1), entry(2)]
        assert tx.history("FAC|V2") == [entry(0, key="FAC|V2")]
        assert tx.history("FAC|V9") == []


def test_an_order_link_keeps_its_first_encounter(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.order_link("FAC|O1") is None
        tx.link_orders(["FAC|O1", "FAC|O2"], "FAC|V5")
        assert tx.order_link("FAC|O1") == "FAC|V5"
    with store.transaction() as tx:
        tx.link_orders(["FAC|O1", "FAC|O3"], "FAC|V1")  # smaller, but O1 was linked before
        tx.link_orders(["FAC|O4"], "")  # no encounter: links nothing
        assert [tx.order_link(o) for o in ("FAC|O1", "FAC|O2", "FAC|O3", "FAC|O4")] == [
            "FAC|V5",
            "FAC|V5",
            "FAC|V1",
            None,
        ]
    with store.transaction() as tx:
        assert tx.order_link("FAC|O1") == "FAC|V5" and tx.order_link("FAC|O3") == "FAC|V1"


@pytest.mark.parametrize("claims", [["FAC|V2", "FAC|V1", "FAC|V3"], ["FAC|V3", "FAC|V1", "FAC|V2"]])
def test_claims_in_one_transaction_link_the_smallest_key_whatever_their_order(store: Store, claims: list[str]) -> None:
    with store.transaction() as tx:
        for key in claims:
            tx.link_orders(["FAC|O1"], key)
        assert tx.order_link("FAC|O1") == "FAC|V1"
    with store.transaction() as tx:
        assert tx.order_link("FAC|O1") == "FAC|V1"


def test_a_claim_after_a_mid_transaction_flush_still_takes_the_smallest_key(store: Store) -> None:
    with store.transaction() as tx:
        tx.link_orders(["FAC|O1"], "FAC|V2")
        tx.open_encounters()  # the PostgreSQL store sends its buffered writes here
        tx.link_orders(["FAC|O1"], "FAC|V1")
        assert tx.order_link("FAC|O1") == "FAC|V1"
    with store.transaction() as tx:
        assert tx.order_link("FAC|O1") == "FAC|V1"


def test_visit_at_finds_the_single_covering_visit_comparing_instants(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_visit(VisitWindow(PATIENT, "FAC|V1", at(8), at(12)))
        tx.add_visit(VisitWindow(PATIENT, "FAC|V2", at(8, day=5), None))  # still admitted
        tx.add_visit(VisitWindow("FAC|MRN2", "FAC|V9", at(0), None))
        assert tx.visit_at(PATIENT, at(9)) == "FAC|V1"
    with store.transaction() as tx:
        assert tx.visit_at(PATIENT, at(8)) == "FAC|V1"  # both ends included
        assert tx.visit_at(PATIENT, at(12)) == "FAC|V1"
        assert tx.visit_at(PATIENT, at(17, zone=UTC)) == "FAC|V1"  # 12:00 -05:00
        assert tx.visit_at(PATIENT, datetime(2026, 3, 2, 17, 1, tzinfo=UTC)) is None  # 12:01 -05:00
        assert tx.visit_at(PATIENT, at(7)) is None
        assert tx.visit_at(PATIENT, at(8, day=20)) == "FAC|V2"
        assert tx.visit_at("FAC|NOBODY", at(9)) is None


def test_overlapping_visits_are_ambiguous_and_resolve_nothing(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_visit(VisitWindow(PATIENT, "FAC|V1", at(8), None))
        tx.add_visit(VisitWindow(PATIENT, "FAC|V2", at(10), at(11)))
    with store.transaction() as tx:
        assert tx.visit_at(PATIENT, at(9)) == "FAC|V1"
        assert tx.visit_at(PATIENT, at(10)) is None  # both cover it: never guess
        assert tx.visit_at(PATIENT, at(12)) == "FAC|V1"


@pytest.mark.parametrize("discharge_first", [False, True])
def test_statements_of_one_visit_widen_it_whatever_their_order(store: Store, discharge_first: bool) -> None:
    admit = VisitWindow(PATIENT, "FAC|V1", at(8), None)
    update = VisitWindow(PATIENT, "FAC|V1", at(9), None)
    discharge = VisitWindow(PATIENT, "FAC|V1", at(10), at(14))
    steps = [discharge, admit, update] if discharge_first else [admit, update, discharge]
    for window in steps:
        with store.transaction() as tx:
            tx.add_visit(window)
    with store.transaction() as tx:
        tx.add_visit(VisitWindow(PATIENT, "FAC|V2", at(8, day=4), None))  # a later visit of the patient
        assert [tx.visit_at(PATIENT, at(h)) for h in (7, 8, 14, 15)] == [None, "FAC|V1", "FAC|V1", None]
        assert tx.visit_at(PATIENT, at(9, day=4)) == "FAC|V2"  # the discharge closed the first window


def test_a_window_without_a_start_covers_nothing_until_one_is_stated(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_visit(VisitWindow(PATIENT, "FAC|V1", None, None))
        assert tx.visit_at(PATIENT, at(9)) is None
        tx.add_visit(VisitWindow(PATIENT, "FAC|V1", at(8), None))
        assert tx.visit_at(PATIENT, at(9)) == "FAC|V1"
    with store.transaction() as tx:
        assert tx.visit_at(PATIENT, at(9)) == "FAC|V1"


def test_meta_values_are_set_overwritten_and_kept(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.get_meta("zone") is None
        tx.set_meta("zone", "America/Chicago")
        tx.set_meta("claim_type", "facility")
        assert tx.get_meta("zone") == "America/Chicago"
    with store.transaction() as tx:
        tx.set_meta("zone", "America/New_York")
    with store.transaction() as tx:
        assert (tx.get_meta("zone"), tx.get_meta("claim_type")) == ("America/New_York", "facility")


def test_a_rollback_drops_outcomes_history_links_visits_and_meta(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.put_outcomes("FAC|V1", [outcome(1)])
        tx.add_history(entry(0))
        tx.link_orders(["FAC|O1"], "FAC|V1")
        tx.add_visit(VisitWindow(PATIENT, "FAC|V1", at(8), None))
        tx.set_meta("zone", "UTC")
        raise RuntimeError
    with store.transaction() as tx:
        assert tx.outcomes("FAC|V1") == () and tx.history("FAC|V1") == [] and list(tx.scan_outcomes()) == []
        assert tx.order_link("FAC|O1") is None and tx.visit_at(PATIENT, at(9)) is None
        assert tx.get_meta("zone") is None


def test_purge_leaves_outcomes_history_links_visits_and_meta_alone(store: Store) -> None:
    with store.transaction() as tx:
        tx.mark_seen("k")
        tx.put_outcomes("FAC|V1", [outcome(1)])
        tx.add_history(entry(0))
        tx.link_orders(["FAC|O1"], "FAC|V1")
        tx.add_visit(VisitWindow(PATIENT, "FAC|V1", at(8), None))
        tx.set_meta("zone", "UTC")
        tx.enqueue(OutboxRow("m1", "FAC|V1", "json", b"{}"))
    store.mark_sent([("m1", "json")])
    store.purge(datetime.now(UTC).timestamp() + 3600)
    with store.transaction() as tx:
        assert not tx.is_seen("k")
        assert tx.outcomes("FAC|V1") == (outcome(1),) and tx.history("FAC|V1") == [entry(0)]
        assert tx.order_link("FAC|O1") == "FAC|V1" and tx.visit_at(PATIENT, at(9)) == "FAC|V1"
        assert tx.get_meta("zone") == "UTC"


FULL = Encounter(
    "FAC|V1",
    patient_class=PatientClass.EMERGENCY,
    inpatient_from=at(15),
    class_at=at(9),
    claim_type=ClaimType.PROFESSIONAL,
    payer="bcbs",
    payer_ids=("BCBS-PLAN-7", "BCBSIL", "BLUE CROSS"),
    payer_at=at(7),
    payer_version="20260302120000|ADT7",
    class_version="20260302090000|ADT1",
    place_of_service="23",
    location="ED",
    class_hint=PatientClass.OUTPATIENT,
    facility="FAC",
    separate_same_day=True,
    closed=True,
    account="ACCT-77",
    account_at=at(8),
    account_version="20260302080000|ADT2",
)
ADMIN = Administration(
    id="a1",
    encounter_key="FAC|V1",
    drug=CodedValue((Coding("RXNORM", "26225", "ondansetron"),), "Ondansetron 4 mg"),
    start=at(10),
    ordered_minutes=30,
    source=SourceRef("fhir", "ma-1", "entry 3", "bundles/b1.json"),
)


def test_every_encounter_attribute_and_the_new_administration_fields_round_trip(store: Store) -> None:
    saved = EncounterState(REF, FULL.with_administrations([ADMIN]), 5.0)
    with store.transaction() as tx:
        tx.put(saved)
    with store.transaction() as tx:
        assert tx.get("FAC|V1") == saved


@pytest.mark.parametrize("name", [f.name for f in fields(Encounter) if f.name not in ("key", "administrations")])
def test_a_change_of_any_one_encounter_attribute_is_stored(store: Store, name: str) -> None:
    plain = EncounterState(REF, Encounter("FAC|V1").with_administrations([ADMIN]), 5.0)
    changed = replace(plain, encounter=replace(plain.encounter, **{name: getattr(FULL, name)}))
    assert changed != plain
    with store.transaction() as tx:
        tx.put(plain)
    with store.transaction() as tx:
        assert tx.get("FAC|V1") == plain
        tx.put(changed)
    with store.transaction() as tx:
        assert tx.get("FAC|V1") == changed
