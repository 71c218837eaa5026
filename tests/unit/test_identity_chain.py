"""The identity chain's service steps: order link, ADT visit window, site fallback, reject (issue #13 part 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hl7_build import NEW_YORK, ORC, RXR, adt, message, parse, pid, pv1, pv1_times, rxa, with_site

from connector.adapters.hl7v2 import parse_hl7
from connector.emitters import json_charge
from connector.identity import MISSING_ENCOUNTER_KEY
from connector.model import ParsedRecord
from connector.policy.model import Policy
from connector.service import Outcome, Service, ServiceSettings
from connector.store.memory import MemoryStore

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "hl7"


def service(policy: Policy, key: bytes = b"site secret") -> Service:
    settings = ServiceSettings({"json": json_charge.render}, identity_key=key)
    return Service(MemoryStore(), policy, settings, clock=lambda: 1000.0)


def charged_keys(svc: Service) -> list[tuple[str, str]]:
    bodies = [json.loads(row.body) for row in svc.store.pending()]
    return sorted({(b["encounter"]["assigning_authority"], b["encounter"]["id"]) for b in bodies})


def unkeyed_ras(policy: Policy, control: str, order: str = ORC, start: str = "20260302101500") -> ParsedRecord:
    """A RAS whose PV1 carries no visit number (PV1-19, PID-18 and PV1-50 empty): the order's 2nd give."""
    second = rxa(start).replace("RXA|0|1|", "RXA|0|2|")
    return parse(message(pid(), pv1(), order, second, RXR, control=control, sent=start), policy)


def handle(svc: Service, *records: ParsedRecord) -> Outcome:
    outcome = svc.handle_inputs([[r] for r in records])
    svc.close()
    return outcome


def test_a_message_without_a_visit_number_joins_the_encounter_its_order_was_first_seen_with(policy: Policy) -> None:
    keyed = parse(message(pid(), pv1(visit="V100"), ORC, rxa("20260302100000"), RXR, control="C1"), policy)
    assert keyed.order_ids == ("GENHOSP|ORD100",)
    svc = service(policy)
    svc.handle([keyed])  # an earlier batch taught the link
    later = unkeyed_ras(policy, "C2", start="20260302110000")
    assert later.unresolved is not None
    outcome = handle(svc, later)
    assert outcome.rejected == {}
    assert charged_keys(svc) == [("GENHOSP", "V100")]
    with svc.store.transaction() as tx:
        state = tx.get("GENHOSP|V100")
    assert state is not None
    assert len(state.encounter.administrations) == 2


def test_the_order_link_learned_in_the_same_batch_counts(policy: Policy) -> None:
    keyed = parse(message(pid(), pv1(visit="V100"), ORC, rxa("20260302100000"), RXR, control="C1"), policy)
    svc = service(policy)
    outcome = handle(svc, keyed, unkeyed_ras(policy, "C2", start="20260302110000"))
    assert outcome.rejected == {}
    assert charged_keys(svc) == [("GENHOSP", "V100")]


def test_the_patients_adt_visit_window_names_the_encounter(policy: Policy) -> None:
    admit = adt("A04", pid(), pv1_times(pv1(visit="V200"), admitted="20260302090000"), event="20260302090000")
    svc = service(policy)
    svc.handle([parse(admit, policy)])
    other_order = "ORC|RE|ORD999^EPC|FIL999^EPC"
    outcome = handle(svc, unkeyed_ras(policy, "C3", order=other_order, start="20260302101500"))
    assert outcome.rejected == {}
    assert charged_keys(svc) == [("GENHOSP", "V200")]


def test_two_visits_covering_the_time_are_never_guessed_between(policy: Policy) -> None:
    svc = service(policy)
    for visit in ("V201", "V202"):
        window = pv1_times(pv1(visit=visit), admitted="20260302090000")
        svc.handle([parse(adt("A04", pid(), window, control=visit), policy)])
    outcome = handle(svc, unkeyed_ras(policy, "C4", order="ORC|RE|ORD998^EPC"))
    assert [f.code for f in outcome.rejected.values()] == [MISSING_ENCOUNTER_KEY]


def test_with_nothing_to_go_on_the_input_is_rejected_and_the_others_commit(policy: Policy) -> None:
    svc = service(policy)
    keyed = parse(message(pid(), pv1(visit="V300"), "ORC|RE|ORD300^EPC", rxa(), RXR, control="C5"), policy)
    outcome = handle(svc, unkeyed_ras(policy, "C6", order="ORC|RE|ORD301^EPC"), keyed)
    assert {i: f.code for i, f in outcome.rejected.items()} == {0: MISSING_ENCOUNTER_KEY}
    assert charged_keys(svc) == [("GENHOSP", "V300")]
    with svc.store.transaction() as tx:
        assert not tx.is_seen(unkeyed_ras(policy, "C6").dedup_key)  # left out: a redrive applies it


def test_the_patient_day_fallback_keys_one_encounter_per_patient_and_day_without_phi(policy: Policy) -> None:
    site = with_site(policy, fallback="patient_day")
    svc = service(site)
    first = parse(message(pid(), pv1(), "ORC|RE|ORD400^EPC", rxa("20260302101500"), RXR, control="C7"), site)
    second = parse(message(pid(), pv1(), "ORC|RE|ORD401^EPC", rxa("20260302121500"), RXR, control="C8"), site)
    handle(svc, first, second)
    (key,) = charged_keys(svc)
    assert key[0] == "GENHOSP"
    assert key[1].startswith("pd-")
    assert "MRN0001" not in key[1]
    bodies = [json.loads(row.body) for row in svc.store.pending()]
    assert [line["code"] for line in bodies[0]["lines"]] == ["96374", "96376"]
    other_key = service(site, b"another secret")
    handle(other_key, first, second)
    assert charged_keys(other_key) != [key]  # keyed by the site's secret: not a digest anyone can recompute
    without = handle(service(site, b""), first, second)
    assert [f.code for f in without.rejected.values()] == [MISSING_ENCOUNTER_KEY] * 2


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="the shared samples are beside the repository")
def test_the_shared_samples_without_a_visit_number_are_chargeable_under_the_patient_day_fallback(
    policy: Policy,
) -> None:
    site = with_site(policy, fallback="patient_day")
    unkeyed = []
    for path in sorted(SAMPLES.glob("*ras*.hl7")):
        record = parse_hl7(path.read_bytes(), site, NEW_YORK)
        if record.unresolved is not None:
            unkeyed.append(record)
    assert len(unkeyed) == 3
    default = handle(service(policy), *unkeyed)
    assert sorted(f.code for f in default.rejected.values()) == [MISSING_ENCOUNTER_KEY] * 3
    fallback = handle(service(site), *unkeyed)
    assert fallback.rejected == {}
    assert fallback.administrations >= 3


def test_a_standing_order_reused_on_a_later_visit_does_not_bill_the_discharged_one(policy: Policy) -> None:
    svc = service(policy)
    first = parse(message(pid(), pv1(visit="V1"), ORC, rxa("20260302100000"), RXR, control="C1"), policy)
    discharge = adt("A03", pid(), pv1_times(pv1(visit="V1"), "20260302090000", "20260302180000"), control="D1")
    second_visit = adt("A04", pid(), pv1_times(pv1(visit="V2"), admitted="20260309090000"), control="A2")
    handle(svc, first, parse(discharge, policy), parse(second_visit, policy))
    later = unkeyed_ras(policy, "C9", start="20260309101500")
    assert handle(svc, later).rejected == {}
    with svc.store.transaction() as tx:
        v1, v2 = tx.get("GENHOSP|V1"), tx.get("GENHOSP|V2")
    assert v1 is not None and v2 is not None
    assert [a.start.date().isoformat() for a in v1.encounter.administrations] == ["2026-03-02"]
    assert [a.start.date().isoformat() for a in v2.encounter.administrations] == ["2026-03-09"]


def test_a_batch_resolves_like_separate_batches_a_discharge_closes_the_window(policy: Policy) -> None:
    admit = parse(adt("A04", pid(), pv1_times(pv1(visit="V7"), admitted="20260302090000"), control="A1"), policy)
    close = adt("A03", pid(), pv1_times(pv1(visit="V7"), "20260302090000", "20260302100000"), control="A3")
    after = "20260302120000"  # two hours after the discharge
    together = handle(service(policy), admit, parse(close, policy), unkeyed_ras(policy, "C1", "ORC|RE|O7^EPC", after))
    apart = service(policy)
    apart.handle([admit])
    apart.handle([parse(close, policy)])
    separate = handle(apart, unkeyed_ras(policy, "C1", "ORC|RE|O7^EPC", after))
    assert [f.code for f in together.rejected.values()] == [f.code for f in separate.rejected.values()]
    assert [f.code for f in separate.rejected.values()] == [MISSING_ENCOUNTER_KEY]


def test_the_encounter_the_chain_resolves_to_is_locked_with_the_others(policy: Policy) -> None:
    locked: list[list[str]] = []
    svc = service(policy)
    original = svc.store.transaction

    def transaction() -> object:
        context = original()
        tx = context.__enter__()
        real_lock = tx.lock

        def lock(keys: object) -> None:
            locked.append(sorted(keys))  # type: ignore[call-overload]
            real_lock(keys)  # type: ignore[arg-type]

        tx.lock = lock  # type: ignore[method-assign]

        class Wrapped:
            def __enter__(self) -> object:
                return tx

            def __exit__(self, *exc: object) -> object:
                return context.__exit__(*exc)  # type: ignore[arg-type]

        return Wrapped()

    svc.store.transaction = transaction  # type: ignore[method-assign]
    svc.handle([parse(message(pid(), pv1(visit="V100"), ORC, rxa(), RXR, control="C1"), policy)])
    svc.handle([unkeyed_ras(policy, "C2", start="20260302110000")])
    assert locked[-1] == ["GENHOSP|V100"]
