"""One encounter that cannot be coded or rendered affects that encounter alone (issue #12, class 3).

The failing renderer is registered for the test and raises for one encounter key: the adapters
now refuse the identifiers that used to make the ChargeItem renderer raise, and this contract
is about what the service does with *any* failure of pure code on one encounter.
"""

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from connector import service as service_module
from connector.emitters import json_charge
from connector.model import Administration, CodedValue, Coding, Encounter, ParsedRecord
from connector.model.events import EncounterEvent, EncounterEventKind, EncounterRef
from connector.model.messages import ChargeMessage
from connector.policy.model import Policy
from connector.service import CODING_FAILED, RENDER_FAILED, EmitOn, Service, ServiceSettings
from connector.store.base import Store
from connector.store.memory import MemoryStore
from connector.store.sqlite import SqliteStore

ZONE = timezone(timedelta(hours=-5))
BAD = "FAC|VBAD"


def admin(visit: str, n: int, minute: int) -> Administration:
    return Administration(
        id=f"{visit}-a{n}",
        encounter_key=f"FAC|{visit}",
        drug=CodedValue(text="Ondansetron 4 mg/2 mL injection"),
        start=datetime(2026, 3, 2, 8, 0, tzinfo=ZONE) + timedelta(minutes=minute),
        route=CodedValue((Coding("HL70162", "IV"),)),
        method=CodedValue((Coding("HL70165", "IVP"),)),
        version="1",
    )


def record(visit: str, n: int, close: bool = False) -> ParsedRecord:
    ref = EncounterRef(f"FAC|{visit}", visit, "FAC", f"P-{visit}", "FAC")
    kind = EncounterEventKind.CLOSE if close else EncounterEventKind.SEEN
    admins = () if close else (admin(visit, n, 40 * n),)
    return ParsedRecord(f"{visit}-m{n}{'-close' if close else ''}", admins, (EncounterEvent(ref, kind),))


class Renderer:
    """JSON, except for the encounter ``BAD`` while ``broken``; counts the calls for it."""

    def __init__(self) -> None:
        self.broken = True
        self.bad_calls = 0

    def __call__(self, message: ChargeMessage) -> bytes:
        if message.encounter.key == BAD:
            self.bad_calls += 1
            if self.broken:
                raise ValueError("a value the renderer refuses: 'VBAD'")
        return json_charge.render(message)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    made: Store = MemoryStore() if request.param == "memory" else SqliteStore(":memory:")
    yield made
    made.close()


def make(store: Store, policy: Policy, renderer: Renderer, now: list[float]) -> Service:
    settings = ServiceSettings({"json": json_charge.render, "odd": renderer}, EmitOn.CLOSE)
    return Service(store, policy, settings, clock=lambda: now[0])


def charged(store: Store) -> set[str]:
    rows = store.pending()
    store.mark_sent((r.message_id, r.format) for r in rows)
    return {json.loads(r.body)["encounter"]["id"] for r in rows if r.format == "json"}


def test_inputs_of_an_encounter_that_cannot_be_rendered_are_left_out_and_the_rest_commits(
    store: Store, policy: Policy
) -> None:
    renderer, now = Renderer(), [1000.0]
    svc = make(store, policy, renderer, now)
    inputs = [[record("V1", 1)], [record("VBAD", 1)], [record("V1", 2, close=True)], [record("VBAD", 2, close=True)]]
    outcome = svc.handle_inputs(inputs)
    assert sorted(outcome.rejected) == [1, 3]  # both inputs that changed the bad encounter
    failure = outcome.rejected[3]
    assert (failure.code, failure.detail) == (RENDER_FAILED, "odd renderer: ValueError")  # no value quoted
    assert charged(store) == {"V1"}
    with store.transaction() as tx:
        assert tx.get(BAD) is None  # nothing of the left-out inputs was written ...
        assert not tx.is_seen("VBAD-m1") and tx.is_seen("V1-m1")  # ... not even their dedup keys
    renderer.broken = False  # fixed (e.g. mappings corrected): the parked inputs are re-driven
    again = svc.handle_inputs([inputs[1], inputs[3]])
    assert again.rejected == {} and charged(store) == {"VBAD"}


def test_the_idle_sweep_closes_the_others_and_marks_the_one_it_cannot_render(store: Store, policy: Policy) -> None:
    renderer, now = Renderer(), [1000.0]
    svc = make(store, policy, renderer, now)
    svc.handle([record(visit, 1) for visit in ("V1", "VBAD", "V2", "V3")])
    now[0] += 3600
    swept = svc.close(idle_before=now[0] - 60)
    assert swept.messages == 3 and charged(store) == {"V1", "V2", "V3"}
    assert {key: (f.code, f.detail) for key, f in swept.failed.items()} == {
        BAD: (RENDER_FAILED, "odd renderer: ValueError")
    }
    with store.transaction() as tx:
        state = tx.get(BAD)
        assert state is not None and state.failed == RENDER_FAILED and not state.encounter.closed
        assert tx.open_encounters() == [BAD]  # still open (the gauge counts it) ...
        assert tx.open_encounters(idle_before=now[0]) == []  # ... but no sweep retries it
    calls = renderer.bad_calls
    now[0] += 3600
    assert svc.close(idle_before=now[0] - 60).failed == {} and renderer.bad_calls == calls
    svc.handle([record("VBAD", 2)])  # new input clears the mark: the next sweep tries again
    with store.transaction() as tx:
        assert tx.get(BAD).failed == ""  # type: ignore[union-attr]
    renderer.broken = False
    now[0] += 3600
    assert svc.close(idle_before=now[0] - 60).failed == {} and charged(store) == {"VBAD"}


def test_closing_everything_retries_a_failed_encounter_and_reports_it_again(policy: Policy) -> None:
    store, renderer, now = MemoryStore(), Renderer(), [1000.0]
    svc = make(store, policy, renderer, now)
    svc.handle([record("VBAD", 1), record("V1", 1)])
    assert set(svc.close(idle_before=2000.0).failed) == {BAD}
    assert set(svc.close().failed) == {BAD}  # the end of a replay: every open encounter, failed or not


def test_an_encounter_event_that_raises_rejects_only_its_input(policy: Policy, monkeypatch: pytest.MonkeyPatch) -> None:
    original = service_module.apply_event

    def apply_event(encounter: Encounter, event: EncounterEvent) -> Encounter:
        if encounter.key == BAD:
            raise KeyError("a bug")
        return original(encounter, event)

    monkeypatch.setattr(service_module, "apply_event", apply_event)
    store, now = MemoryStore(), [1000.0]
    svc = make(store, policy, Renderer(), now)
    outcome = svc.handle_inputs([[record("V1", 1)], [record("VBAD", 1)], [record("V1", 2, close=True)]])
    assert {i: (f.code, f.detail) for i, f in outcome.rejected.items()} == {
        1: (CODING_FAILED, "encounter event: KeyError")
    }
    assert charged(store) == {"V1"}


def test_an_input_is_left_out_whole_when_one_of_its_records_touches_a_failing_encounter(policy: Policy) -> None:
    store, renderer, now = MemoryStore(), Renderer(), [1000.0]
    svc = make(store, policy, renderer, now)
    batch = [record("V1", 1), record("VBAD", 1), record("VBAD", 2, close=True)]  # one delivery, three records
    outcome = svc.handle_inputs([batch, [record("V2", 1), record("V2", 2, close=True)]])
    assert list(outcome.rejected) == [0]
    with store.transaction() as tx:
        assert tx.get("FAC|V1") is None and not tx.is_seen("V1-m1")
    assert charged(store) == {"V2"}
