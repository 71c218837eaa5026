"""What the feed says about the setting: class, payer, place of service, reviews and outcomes (issue #13)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from connector.emitters import json_charge
from connector.model import (
    Administration,
    ClaimType,
    CodedValue,
    Coding,
    Encounter,
    OutcomeKind,
    ParsedRecord,
    PatientClass,
    SourceRef,
)
from connector.model.changes import apply_event
from connector.model.events import EncounterEvent, EncounterEventKind, EncounterRef
from connector.policy.model import Policy
from connector.policy.site import SiteProfile
from connector.rules import evaluate
from connector.rules.outcomes import outcomes
from connector.service import Service, ServiceSettings
from connector.store.memory import MemoryStore

CHICAGO_CDT = timezone(timedelta(hours=-5))
KEY = "FAC|V1"
REF = EncounterRef(KEY, "V1", "FAC", "P1", "FAC")
IV = CodedValue((Coding("HL70162", "IV"),))
PUSH = CodedValue((Coding("HL70165", "IVP"),))


def admin(n: int, minute: int, drug: str = "Ondansetron 4 mg/2 mL injection", **changes: object) -> Administration:
    made = Administration(
        id=f"a{n}",
        encounter_key=KEY,
        drug=CodedValue(text=drug),
        start=datetime(2026, 3, 2, 8, 0, tzinfo=CHICAGO_CDT) + timedelta(minutes=minute),
        route=IV,
        method=PUSH,
        version="1",
        source=SourceRef("hl7v2", f"MSG{n}", "0"),
    )
    return replace(made, **changes) if changes else made


def encounter(*admins: Administration, **changes: object) -> Encounter:
    return replace(Encounter(KEY, administrations=tuple(sorted(admins, key=lambda a: (a.start, a.id)))), **changes)


def test_an_encounter_the_feed_never_classed_is_coded_as_outpatient_under_review(policy: Policy) -> None:
    coded = encounter(admin(1, 0), admin(2, 60))
    result = evaluate(coded, policy)
    assert result.patient_class is PatientClass.OUTPATIENT
    assert [line.code for line in result.lines] == ["96374", "96376"]
    assert all("needs_review" in line.flags for line in result.lines)
    assert all("Patient class unknown" in line.reason for line in result.lines)
    found = outcomes(coded, result, policy)
    assert {(o.outcome, o.reason) for o in found} == {(OutcomeKind.NEEDS_REVIEW, "unknown_class")}


def test_a_category_hint_informs_the_class_when_nothing_else_has(policy: Policy) -> None:
    inpatient = encounter(admin(1, 0), class_hint=PatientClass.INPATIENT)
    result = evaluate(inpatient, policy)
    assert result.lines == ()
    assert [(o.outcome, o.reason) for o in outcomes(inpatient, result, policy)] == [(OutcomeKind.NO_LINE, "inpatient")]
    outpatient = evaluate(encounter(admin(1, 0), class_hint=PatientClass.OUTPATIENT), policy)
    assert [(line.code, line.flags) for line in outpatient.lines] == [("96374", ("no_mue_on_file",))]
    # the encounter's own class wins over the hint
    own = evaluate(
        encounter(admin(1, 0), patient_class=PatientClass.EMERGENCY, class_hint=PatientClass.INPATIENT), policy
    )
    assert [line.code for line in own.lines] == ["96374"]


def test_payer_identifiers_pick_the_policy_and_unknown_ones_are_named_for_review(policy: Policy) -> None:
    base = dict(patient_class=PatientClass.EMERGENCY)
    medicare = evaluate(encounter(admin(1, 0), payer_ids=("MEDICARE",), **base), policy)
    assert medicare.policy == "medicare"
    assert medicare.policy_version.startswith(policy.payer("medicare").version)
    assert any("payer_map.yaml:" in m for m in medicare.mappings)
    unknown = encounter(admin(1, 0), payer_ids=("ACME-77", "Acme Health"), **base)
    result = evaluate(unknown, policy)
    assert result.policy == "default"
    assert all("needs_review" in line.flags for line in result.lines)
    assert "'ACME-77', 'Acme Health'" in result.lines[0].reason
    (found,) = outcomes(unknown, result, policy)
    assert (found.outcome, found.reason) == (OutcomeKind.NEEDS_REVIEW, "unmapped_payer")
    assert [(u.kind, u.code, u.field) for u in found.unmapped] == [
        ("payer", "ACME-77", "IN1-2/IN1-3/IN1-4"),
        ("payer", "Acme Health", "IN1-2/IN1-3/IN1-4"),
    ]


def test_place_of_service_from_the_class_drives_the_bcbs_professional_write_off(policy: Policy) -> None:
    emergency = encounter(
        admin(1, 0),
        patient_class=PatientClass.EMERGENCY,
        claim_type=ClaimType.PROFESSIONAL,
        payer_ids=("BCBS",),
        separate_same_day=False,
    )
    result = evaluate(emergency, policy)
    assert result.policy == "bcbs"
    assert result.place_of_service == "23"
    assert all("write_off" in line.flags for line in result.lines)


def test_a_documented_duration_far_beyond_the_order_is_coded_but_flagged(policy: Policy) -> None:
    long = admin(1, 0, "cefTRIAXone 1 g IVPB", method=CodedValue(), end=datetime(2026, 3, 2, 18, 0, tzinfo=CHICAGO_CDT))
    coded = encounter(replace(long, ordered_minutes=30), patient_class=PatientClass.EMERGENCY)
    result = evaluate(coded, policy)
    assert [line.code for line in result.lines] == ["96365", "96366"]
    assert all("needs_review" in line.flags for line in result.lines)
    assert "documented 600 min, ordered over 30 min" in result.lines[0].reason
    plain = evaluate(encounter(replace(long, ordered_minutes=480), patient_class=PatientClass.EMERGENCY), policy)
    assert all("needs_review" not in line.flags for line in plain.lines)


def test_an_unmapped_route_is_needs_review_naming_code_system_and_field(policy: Policy) -> None:
    local = admin(1, 0, route=CodedValue((Coding("HL70162", "IVPX"),)), method=CodedValue())
    coded = encounter(local, patient_class=PatientClass.EMERGENCY)
    (found,) = outcomes(coded, evaluate(coded, policy), policy)
    assert (found.outcome, found.reason) == (OutcomeKind.NEEDS_REVIEW, "unmapped_route")
    assert [(u.kind, u.system, u.code, u.field) for u in found.unmapped] == [("route", "HL70162", "IVPX", "RXR-1")]
    assert found.source.message_id == "MSG1"


def test_a_payer_change_after_charges_went_out_is_credit_and_rebill(policy: Policy) -> None:
    store = MemoryStore()
    service = Service(store, policy, ServiceSettings({"json": json_charge.render}), clock=lambda: 1000.0)
    at = datetime(2026, 3, 2, 7, 0, tzinfo=CHICAGO_CDT)
    admit = EncounterEvent(REF, EncounterEventKind.UPDATE, at, PatientClass.EMERGENCY, ("MEDICARE",))
    service.handle([ParsedRecord("adt1", (), (admit,)), ParsedRecord("ras1", (admin(1, 0),))])
    service.close([KEY])
    later = replace(admit, at=at + timedelta(hours=1), payer_ids=("AETNA",))
    service.handle([ParsedRecord("adt2", (), (later,))])
    service.close([KEY])
    bodies = [json.loads(row.body) for row in store.pending()]
    assert [body["policy"] for body in bodies] == ["medicare", "aetna"]
    assert [[item["action"] for item in body["lines"]] for body in bodies] == [["charge"], ["credit", "charge"]]
    with store.transaction() as tx:
        history = tx.history(KEY)
        stored = tx.outcomes(KEY)
    assert [entry.message_id for entry in history] == [body["message_id"] for body in bodies]
    assert [(o.outcome, o.reason) for o in stored] == [(OutcomeKind.CODED, "coded")]


def test_the_newer_message_wins_a_tie_in_event_time_whatever_the_arrival_order() -> None:
    at = datetime(2026, 3, 2, 7, 0, tzinfo=CHICAGO_CDT)
    v1 = EncounterEvent(REF, EncounterEventKind.UPDATE, at, PatientClass.EMERGENCY, ("MEDICARE",), "ED", version="1")
    v2 = EncounterEvent(REF, EncounterEventKind.UPDATE, at, PatientClass.OUTPATIENT, ("AETNA",), "INF", version="2")
    for order in ((v1, v2), (v2, v1)):
        held = Encounter(KEY)
        for event in order:
            held = apply_event(held, event)
        assert (held.payer_ids, held.patient_class, held.location) == (("AETNA",), PatientClass.OUTPATIENT, "INF")
    undated = [replace(v1, at=None, version=""), replace(v2, at=None, version="")]
    results = set()
    for order in (undated, undated[::-1]):
        held = Encounter(KEY)
        for event in order:
            held = apply_event(held, event)
        results.add((held.payer_ids, held.patient_class, held.location))
    assert len(results) == 1


def test_times_are_dated_in_the_encounters_facility_zone_however_they_arrived(policy: Policy) -> None:
    site = replace(policy, site=SiteProfile(zones={"ORG1": ZoneInfo("America/Chicago")}))
    utc = admin(1, 0, start=datetime(2026, 3, 3, 3, 27, tzinfo=UTC))
    coded = evaluate(encounter(utc, patient_class=PatientClass.EMERGENCY, facility="ORG1"), site)
    assert [line.service_date.isoformat() for line in coded.lines] == ["2026-03-02"]
    assert "2026-03-02 21:27-06:00" in coded.lines[0].reason
    elsewhere = evaluate(encounter(utc, patient_class=PatientClass.EMERGENCY, facility="ORG2"), site)
    assert [line.service_date.isoformat() for line in elsewhere.lines] == ["2026-03-03"]


def test_an_unmapped_method_flags_the_line_and_the_outcome_names_it(policy: Policy) -> None:
    local = admin(1, 0, method=CodedValue((Coding("99LOCAL", "ZZQ"),)))
    coded = encounter(local, patient_class=PatientClass.EMERGENCY)
    result = evaluate(coded, policy)
    assert all("needs_review" in line.flags for line in result.lines)
    (found,) = outcomes(coded, result, policy)
    assert (found.outcome, found.reason) == (OutcomeKind.NEEDS_REVIEW, "unmapped_method")
    assert [(u.kind, u.system, u.code) for u in found.unmapped] == [("method", "99LOCAL", "ZZQ")]
