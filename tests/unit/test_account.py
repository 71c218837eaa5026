"""The patient account number (issue #17, console search): HL7 PID-18, FHIR Encounter.account; merged, never coded."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hl7_build import ORC, PID, RXR, adt, message, parse, pid, pv1, rxa, with_site

from connector.adapters import errors
from connector.adapters.fhir import parse_fhir
from connector.emitters import json_charge
from connector.model import Encounter, EncounterEvent, EncounterEventKind, EncounterRef, PatientClass
from connector.model.changes import apply_event
from connector.policy.model import Policy
from connector.service import Service, ServiceSettings
from connector.store.memory import MemoryStore

ZONE = timezone(timedelta(hours=-5))
KEY = "FAC|V1"
REF = EncounterRef(KEY, "V1", "FAC", "P1", "FAC")


def ras(patient: str = PID, visit: str = "V1", control: str = "C1") -> bytes:
    return message(patient, pv1(visit=visit), ORC, rxa(), RXR, control=control)


def accounts(raw: bytes, policy: Policy) -> list[str]:
    return [event.account for event in parse(raw, policy).encounter_events]


# --- HL7 PID-18 -------------------------------------------------------------------------------------


def test_pid_18_cx_1_is_the_account_of_a_ras_and_an_adt(policy: Policy) -> None:
    assert accounts(ras(pid(account="ACCT-1")), policy) == ["ACCT-1"]
    assert accounts(ras(pid(account="ACCT-1^^^BILLING&1.2.3&ISO^AN")), policy) == ["ACCT-1"]  # CX.1 only
    assert accounts(ras(pid(account="\u00a0ACCT-1 ")), policy) == ["ACCT-1"]  # trimmed
    assert accounts(ras(pid(account="ACCT\\T\\1")), policy) == ["ACCT&1"]  # unescaped
    for trigger in ("A01", "A03", "A04", "A05", "A08"):
        raw = adt(trigger, pid(account="ACCT-2"), pv1(visit="V1"))
        assert accounts(raw, policy) == ["ACCT-2"], trigger


def test_no_pid_18_or_no_pid_is_no_account(policy: Policy) -> None:
    assert accounts(ras(), policy) == [""]
    assert accounts(message(pv1(visit="V1"), ORC, rxa(), RXR), policy) == [""]
    assert accounts(adt("A08", PID, pv1(visit="V1")), policy) == [""]


def test_the_account_does_not_change_the_encounter_key_when_pv1_19_keys_it(policy: Policy) -> None:
    (event,) = parse(ras(pid(account="ACCT-1")), policy).encounter_events
    assert (event.encounter.key, event.account) == ("GENHOSP|V1", "ACCT-1")
    # PID-18 keying the encounter (no PV1-19): the same number is its account
    (keyed,) = parse(ras(pid(account="ACCT-1^^^BILLING"), visit=""), policy).encounter_events
    assert (keyed.encounter.key, keyed.account) == ("BILLING|ACCT-1", "ACCT-1")


@pytest.mark.parametrize("account", ["\u3000", "AC\x07CT", "ACCT\\X00\\1"])
def test_a_sent_but_broken_pid_18_is_left_out_where_it_keys_nothing(policy: Policy, account: str) -> None:
    chains = (policy, with_site(policy, identity_chain=("PV1-19", "order", "visit")))  # read whether or not it keys
    for site in chains:
        (event,) = parse(ras(pid(account=account)), site).encounter_events
        assert (event.encounter.key, event.account) == ("GENHOSP|V1", "")
        (admit,) = parse(adt("A08", pid(account=account), pv1(visit="V1")), site).encounter_events
        assert admit.account == ""


@pytest.mark.parametrize(
    ("account", "detail"),
    [("\u3000", "PID-18 empty or only whitespace"), ("AC\x07CT", "PID-18 holds control characters")],
)  # fmt: skip
def test_a_broken_pid_18_that_would_key_the_encounter_is_bad_identifier_without_its_value(
    policy: Policy, account: str, detail: str
) -> None:
    with pytest.raises(errors.BadIdentifier) as caught:
        parse(ras(pid(account=f"{account}^^^BILLING"), visit=""), policy)
    assert caught.value.detail == detail


# --- FHIR Encounter.account ---------------------------------------------------------------------------

ENCOUNTER: dict[str, Any] = {
    "resourceType": "Encounter",
    "id": "E1",
    "status": "in-progress",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
    "subject": {"reference": "Patient/PT1"},
    "period": {"start": "2026-03-02T08:00:00-05:00"},
}
URN = "urn:uuid:6f1a3c2e-0000-4000-8000-000000000009"


def account_resource(aid: str = "ACC-1", status: str = "active", number: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {"resourceType": "Account", "id": aid, "status": status}
    return {**found, "identifier": [{"system": "urn:oid:1.2.3", "value": number}]} if number else found


def fhir_account(document: dict[str, Any], policy: Policy, *entries: dict[str, Any], urls: tuple[str, ...] = ()) -> str:
    if entries:
        listed = [document, *entries]
        names = urls or tuple(f"urn:uuid:6f1a3c2e-0000-4000-8000-0000000001{i:02d}" for i in range(len(listed)))
        body: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"fullUrl": name, "resource": r} for name, r in zip(names, listed, strict=True)],
        }
    else:
        body = document
    events = [e for r in parse_fhir(json.dumps(body).encode(), policy) for e in r.encounter_events]
    (event,) = [e for e in events if e.kind is not EncounterEventKind.SEEN]
    return event.account


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        ([{"reference": "Account/ACC-1"}], "ACC-1"),  # held elsewhere: the id it names
        ([{"reference": "https://ehr.example.org/fhir/Account/ACC-1/_history/3"}], "ACC-1"),
        ([{"identifier": {"system": "urn:oid:1.2.3", "value": " 900001 "}}], "900001"),  # logical, trimmed
        ([{"reference": "Account/A"}, {"reference": "Account/B"}], "A"),  # the first
        ([{"display": "no reference"}, {"reference": "Account/B"}], "B"),  # the first that names one
        ([{"reference": "Organization/x"}], ""),  # not an Account: names no account
        ([], ""),
    ],
)
def test_the_account_is_the_id_the_first_account_reference_names(
    policy: Policy, account: list[Any], expected: str
) -> None:
    assert fhir_account({**ENCOUNTER, "account": account}, policy) == expected
    assert fhir_account(ENCOUNTER, policy) == ""


def test_an_account_by_urn_contained_or_entered_in_error(policy: Policy) -> None:
    by_urn = {**ENCOUNTER, "account": [{"reference": URN}]}
    assert fhir_account(by_urn, policy, account_resource("ACC-9"), urls=("urn:x", URN)) == "ACC-9"
    # contained: the local id means nothing outside the Encounter, the identifier is the number
    contained = {**ENCOUNTER, "contained": [account_resource("a1", number="900002")], "account": [{"reference": "#a1"}]}
    assert fhir_account(contained, policy) == "900002"
    assert fhir_account({**contained, "contained": [account_resource("a1")]}, policy) == ""
    dead = {**ENCOUNTER, "account": [{"reference": "Account/OLD"}, {"reference": "Account/NEW"}]}
    assert fhir_account(dead, policy, account_resource("OLD", "entered-in-error"), account_resource("NEW")) == "NEW"


@pytest.mark.parametrize(
    "account",
    [
        [{"identifier": {"value": "AC\u200bCT"}}],
        [{"identifier": {"value": " "}}],
        [{"identifier": {"value": "A\u202e"}}],
    ],
)
def test_a_blank_or_broken_account_is_left_out_and_the_next_one_taken(policy: Policy, account: list[Any]) -> None:
    assert fhir_account({**ENCOUNTER, "account": account}, policy) == ""
    second = [*account, {"identifier": {"value": "ACCT-2"}}]
    assert fhir_account({**ENCOUNTER, "account": second}, policy) == "ACCT-2"


# --- merged between messages -----------------------------------------------------------------------


def test_the_latest_account_wins_whatever_the_arrival_order_and_none_sent_keeps_it() -> None:
    at = datetime(2026, 3, 2, 7, 0, tzinfo=ZONE)
    old = EncounterEvent(REF, EncounterEventKind.UPDATE, at, PatientClass.EMERGENCY, version="1", account="OLD")
    new = replace(old, at=at + timedelta(hours=1), version="2", account="NEW")
    silent = replace(old, at=at + timedelta(hours=2), version="3", account="")
    tie = replace(old, version="0", account="TIE")  # same time, older message version: loses to OLD
    orders = [(old, new, silent, tie), (silent, tie, new, old), (new, old, tie, silent), (tie, silent, old, new)]
    for order in orders:
        held = Encounter(KEY)
        for event in order:
            held = apply_event(held, event)
        assert (held.account, held.account_at, held.account_version) == ("NEW", new.at, "2")
    undated = [replace(old, at=None, version=""), replace(new, at=None, version="")]
    results = set()
    for events in (undated, undated[::-1]):
        held = Encounter(KEY)
        for event in events:
            held = apply_event(held, event)
        results.add(held.account)
    assert results == {"OLD"}  # a tie in everything: the larger value, in either order


# --- never coded ----------------------------------------------------------------------------------------


def test_the_account_changes_no_charge_message_or_line_id(policy: Policy) -> None:
    bodies = []
    for patient, account in ((PID, ""), (pid(account="ACCT-1"), "ACCT-1"), (pid(account="ACCT-2"), "ACCT-2")):
        store = MemoryStore()
        service = Service(store, policy, ServiceSettings({"json": json_charge.render}), clock=lambda: 1000.0)
        records = [parse(adt("A04", patient, pv1(visit="V1")), policy), parse(ras(patient, control="C2"), policy)]
        service.handle(records)
        service.close(["GENHOSP|V1"])
        with store.transaction() as tx:
            stored = tx.get("GENHOSP|V1")
        assert stored is not None and stored.encounter.account == account
        bodies.append([row.body for row in store.pending()])
    assert bodies[0] and bodies[0] == bodies[1] == bodies[2]
    assert all(b"ACCT" not in body for body in bodies[1])


def test_a_ras_resolved_by_the_patients_visit_keeps_its_account(policy: Policy) -> None:
    site = with_site(policy, identity_chain=("PV1-19", "order", "visit"))  # PID-18 read, not a key
    store = MemoryStore()
    service = Service(store, site, ServiceSettings({"json": json_charge.render}), clock=lambda: 1000.0)
    admit = parse(adt("A04", PID, pv1(visit="V1"), event="20260302090000"), site)
    service.handle([admit])
    service.handle([parse(ras(pid(account="ACCT-1"), visit="", control="C2"), site)])
    with store.transaction() as tx:
        stored = tx.get("GENHOSP|V1")
    assert stored is not None and len(stored.encounter.administrations) == 1
    assert stored.encounter.account == "ACCT-1"
