"""The service: dedup, emission at close, deltas after close (credit + rebill), determinism."""

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.emitters import json_charge
from connector.model import Administration, AdminStatus, CodedValue, Coding, Encounter, ParsedRecord
from connector.model.events import EncounterEvent, EncounterEventKind, EncounterRef
from connector.model.messages import Action
from connector.policy.model import Policy
from connector.rules import evaluate
from connector.service import EmitOn, Service, ServiceSettings
from connector.store.memory import MemoryStore
from connector.store.sqlite import SqliteStore

ZONE = timezone(timedelta(hours=-5))
REF = EncounterRef("FAC|V1", "V1", "FAC", "P1", "FAC")
DRUGS = ["Ondansetron 4 mg/2 mL injection", "Morphine 4 mg/mL inj", "cefTRIAXone 1 g IVPB", "Sodium chloride 0.9%"]


def admin(n: int, minute: int, drug: str = DRUGS[0], **changes: object) -> Administration:
    made = Administration(
        id=f"a{n}",
        encounter_key="FAC|V1",
        drug=CodedValue(text=drug),
        start=datetime(2026, 3, 2, 8, 0, tzinfo=ZONE) + timedelta(minutes=minute),
        route=CodedValue((Coding("HL70162", "IV"),)),
        method=CodedValue((Coding("HL70165", "IVP"),)),
        version="1",
    )
    return replace(made, **changes) if changes else made


def record(key: str, *admins: Administration, close: bool = False) -> ParsedRecord:
    events = (EncounterEvent(REF, EncounterEventKind.CLOSE if close else EncounterEventKind.SEEN),)
    return ParsedRecord(key, tuple(admins), events)


class Capture:
    """Collects the JSON messages a service queued, by draining its store's outbox."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.messages: list[dict[str, object]] = []

    def drain(self) -> list[dict[str, object]]:
        rows = self.service.store.pending()
        self.service.store.mark_sent((r.message_id, r.format) for r in rows)
        fresh = [json.loads(r.body) for r in rows]
        self.messages.extend(fresh)
        return fresh


def service(policy: Policy, emit_on: EmitOn = EmitOn.CLOSE, sqlite: bool = False) -> Service:
    store = SqliteStore(":memory:") if sqlite else MemoryStore()
    return Service(store, policy, ServiceSettings({"json": json_charge.render}, emit_on), clock=lambda: 1000.0)


def net(messages: list[dict[str, object]]) -> dict[str, tuple[str, int, str]]:
    current: dict[str, tuple[str, int, str]] = {}
    for msg in messages:
        for line in msg["lines"]:  # type: ignore[attr-defined]
            if line["action"] == Action.CHARGE.value:
                current[line["line_id"]] = (line["code"], line["units"], line["service_date"])
            else:
                current.pop(line["line_id"])
    return current


def test_nothing_is_emitted_before_close_and_everything_at_close(policy: Policy) -> None:
    svc = service(policy)
    out = Capture(svc)
    svc.handle([record("m1", admin(1, 0)), record("m2", admin(2, 45))])
    assert out.drain() == []
    svc.handle([record("m3", close=True)])
    (msg,) = out.drain()
    assert msg["schema"] == "ivpush.charge/1"
    assert [(ln["action"], ln["code"]) for ln in msg["lines"]] == [("charge", "96374"), ("charge", "96376")]
    assert msg["encounter"] == {
        "id": "V1",
        "assigning_authority": "FAC",
        "patient_id": "P1",
        "patient_class": "outpatient",
        "facility": "FAC",
    }


def test_a_redelivered_input_has_no_effect(policy: Policy) -> None:
    svc = service(policy, EmitOn.CHANGE)
    out = Capture(svc)
    first = svc.handle([record("m1", admin(1, 0))])
    again = svc.handle([record("m1", admin(1, 0))])
    assert (first.duplicates, again.duplicates) == (0, 1)
    assert len(out.drain()) == 1


def test_a_correction_after_close_is_a_credit_and_a_rebill(policy: Policy) -> None:
    svc = service(policy)
    out = Capture(svc)
    svc.handle([record("m1", admin(1, 0), admin(2, 45)), record("m2", close=True)])
    out.drain()
    svc.handle([record("m3", admin(2, 45, version="2", status=AdminStatus.DELETED))])
    (msg,) = out.drain()
    assert [(ln["action"], ln["code"]) for ln in msg["lines"]] == [("credit", "96376")]


def test_late_administrations_after_close_still_produce_deltas(policy: Policy) -> None:
    svc = service(policy)
    out = Capture(svc)
    svc.handle([record("m1", admin(1, 0)), record("m2", close=True)])
    svc.handle([record("m3", admin(2, 5, DRUGS[1]))])
    assert [[(ln["action"], ln["code"]) for ln in m["lines"]] for m in out.drain()] == [
        [("charge", "96374")],
        [("charge", "96375")],
    ]


def test_idle_encounters_are_closed_and_emitted(policy: Policy) -> None:
    svc = service(policy)
    out = Capture(svc)
    svc.handle([record("m1", admin(1, 0))])
    svc.close(idle_before=999.0)
    assert out.drain() == []
    svc.close(idle_before=1001.0)
    assert len(out.drain()) == 1


def test_replaying_the_same_inputs_gives_byte_identical_output(policy: Policy) -> None:
    def run() -> list[bytes]:
        svc = service(policy, sqlite=True)
        svc.handle([record("m1", admin(1, 0), admin(2, 31, DRUGS[2], end=None)), record("m2", close=True)])
        svc.handle([record("m3", admin(1, 0, version="2", status=AdminStatus.NOT_GIVEN))])
        return [r.body for r in svc.store.pending()]

    assert run() == run()


@st.composite
def feeds(draw: st.DrawFn) -> tuple[list[Administration], list[Administration]]:
    count = draw(st.integers(1, 8))
    first = [admin(n, draw(st.integers(0, 600)), draw(st.sampled_from(DRUGS))) for n in range(count)]
    fixes = []
    for original in draw(st.lists(st.sampled_from(first), max_size=4, unique_by=lambda a: a.id)):
        change = draw(st.sampled_from(["delete", "move", "drug", "error"]))
        if change == "delete":
            fixes.append(replace(original, version="2", status=AdminStatus.DELETED))
        elif change == "error":
            fixes.append(replace(original, version="2", status=AdminStatus.ENTERED_IN_ERROR))
        elif change == "move":
            fixes.append(
                replace(original, version="2", start=original.start + timedelta(minutes=draw(st.integers(-90, 90))))
            )
        else:
            fixes.append(replace(original, version="2", drug=CodedValue(text=draw(st.sampled_from(DRUGS)))))
    added = [
        admin(100 + n, draw(st.integers(0, 600)), draw(st.sampled_from(DRUGS))) for n in range(draw(st.integers(0, 3)))
    ]
    return first, fixes + added


@settings(max_examples=150, deadline=None)
@given(feed=feeds())
def test_corrections_after_close_net_to_a_fresh_replay_of_the_corrected_feed(
    feed: tuple[list[Administration], list[Administration]], policy: Policy
) -> None:
    first, later = feed
    svc = service(policy)
    out = Capture(svc)
    svc.handle([record("m1", *first), record("close", close=True)])
    svc.handle([record("m2", *later)])
    out.drain()
    fresh = evaluate(Encounter("FAC|V1", closed=True).with_administrations(first + later), policy)
    assert net(out.messages) == {ln.line_id: (ln.code, ln.units, ln.service_date.isoformat()) for ln in fresh.lines}


def test_message_ids_are_distinct_even_when_a_line_comes_back(policy: Policy) -> None:
    svc = service(policy, EmitOn.CHANGE)
    out = Capture(svc)
    svc.handle([record("m1", admin(1, 0))])
    svc.handle([record("m2", admin(1, 0, version="2", status=AdminStatus.DELETED))])
    svc.handle([record("m3", admin(1, 0, version="3"))])
    ids = [m["message_id"] for m in out.drain()]
    assert len(ids) == 3 and len(set(ids)) == 3
