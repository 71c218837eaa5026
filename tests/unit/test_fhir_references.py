"""FHIR references: one key per encounter whatever the reference form; payer (Account → Coverage) and location."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connector.adapters import errors
from connector.adapters.fhir import parse_fhir, read_fhir
from connector.model import EncounterEvent, EncounterEventKind
from connector.policy.model import Policy

MA: dict[str, Any] = {
    "resourceType": "MedicationAdministration",
    "id": "ma-ref",
    "status": "completed",
    "medicationCodeableConcept": {"text": "ondansetron"},
    "subject": {"reference": "Patient/PT1"},
    "context": {"reference": "Encounter/E1"},
    "effectiveDateTime": "2026-03-02T09:00:00-05:00",
}
ENCOUNTER: dict[str, Any] = {
    "resourceType": "Encounter",
    "id": "E1",
    "status": "in-progress",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
    "subject": {"reference": "Patient/PT1"},
    "period": {"start": "2026-03-02T08:00:00-05:00"},
}
URN = "urn:uuid:6f1a3c2e-0000-4000-8000-000000000001"


def raw(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def bundle(*resources: dict[str, Any], urls: tuple[str, ...] = ()) -> bytes:
    entries = [
        {"fullUrl": urls[i] if i < len(urls) else f"urn:uuid:6f1a3c2e-0000-4000-8000-0000000001{i:02d}", "resource": r}
        for i, r in enumerate(resources)
    ]
    return raw({"resourceType": "Bundle", "type": "collection", "entry": entries})


def encounter_event(document: bytes, policy: Policy) -> EncounterEvent:
    events = [
        e for r in parse_fhir(document, policy) for e in r.encounter_events if e.kind is not EncounterEventKind.SEEN
    ]
    (event,) = events
    return event


# --- one key per encounter ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "reference",
    [
        "Encounter/E1",
        "https://ehr.example.org/fhir/Encounter/E1",
        "https://ehr.example.org/fhir/Encounter/E1/_history/3",
        "http://other.example.net/r4/Encounter/E1",
    ],
)
def test_every_literal_reference_form_gives_the_encounter_resource_key(reference: str, policy: Policy) -> None:
    (record,) = parse_fhir(raw({**MA, "context": {"reference": reference}}), policy)
    (encounter,) = parse_fhir(raw(ENCOUNTER), policy)
    assert record.administrations[0].encounter_key == encounter.encounter_events[0].encounter.key == "fhir|E1"
    assert record.encounter_events[0].encounter.assigning_authority == "fhir"


def test_urn_uuid_reference_in_a_bundle_gives_the_entry_encounter_key(policy: Policy) -> None:
    document = bundle(ENCOUNTER, {**MA, "context": {"reference": URN}}, urls=(URN,))
    encounter, admin = parse_fhir(document, policy)
    assert admin.administrations[0].encounter_key == encounter.encounter_events[0].encounter.key == "fhir|E1"


def test_absolute_fullurl_and_relative_reference_in_one_bundle_are_one_encounter(policy: Policy) -> None:
    absolute = "https://ehr.example.org/fhir/Encounter/E1"
    document = bundle(ENCOUNTER, MA, {**MA, "id": "ma-2", "context": {"reference": absolute}}, urls=(absolute,))
    keys = {e.encounter.key for r in parse_fhir(document, policy) for e in r.encounter_events}
    assert keys == {"fhir|E1"}


def test_logical_reference_keeps_its_identifier_system(policy: Policy) -> None:
    logical = {"identifier": {"system": "urn:oid:1.2.3", "value": "E1"}}
    (record,) = parse_fhir(raw({**MA, "context": logical}), policy)
    assert record.administrations[0].encounter_key == "urn:oid:1.2.3|E1"


# --- payer: Encounter.account → Account.coverage → Coverage.payor -----------------------------


def account(*coverages: tuple[str, int | None], status: str = "active") -> dict[str, Any]:
    items = [{"coverage": {"reference": ref}, **({"priority": p} if p is not None else {})} for ref, p in coverages]
    return {"resourceType": "Account", "id": "A1", "status": status, "coverage": items}


def coverage(cid: str, payor: dict[str, Any], status: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "Coverage",
        "id": cid,
        "status": status,
        "beneficiary": {"reference": "Patient/PT1"},
        "payor": [payor],
    }


BCBS = {"resourceType": "Organization", "id": "bcbs", "identifier": [{"value": "BCBS-IL"}], "name": "Blue Cross IL"}
WITH_ACCOUNT = {**ENCOUNTER, "account": [{"reference": "Account/A1"}]}


def test_primary_coverage_is_the_lowest_priority_not_the_first_listed(policy: Policy) -> None:
    document = bundle(
        WITH_ACCOUNT,
        account(("Coverage/c2", 2), ("Coverage/c1", 1)),
        coverage("c2", {"reference": "Organization/aetna", "display": "Aetna"}),
        coverage("c1", {"reference": "Organization/bcbs", "identifier": {"value": "00621"}}),
        BCBS,
    )
    assert encounter_event(document, policy).payer_ids == ("00621", "BCBS-IL", "bcbs", "Blue Cross IL")


def test_without_priorities_the_list_order_decides_and_unprioritised_come_last(policy: Policy) -> None:
    first = bundle(
        WITH_ACCOUNT,
        account(("Coverage/c1", None), ("Coverage/c2", None)),
        coverage("c1", {"reference": "Organization/uhc", "display": "UnitedHealthcare"}),
        coverage("c2", {"reference": "Organization/aetna"}),
    )
    assert encounter_event(first, policy).payer_ids == ("uhc", "UnitedHealthcare")
    ranked = bundle(
        WITH_ACCOUNT,
        account(("Coverage/c1", None), ("Coverage/c2", 3)),
        coverage("c1", {"reference": "Organization/uhc"}),
        coverage("c2", {"reference": "Organization/aetna"}),
    )
    assert encounter_event(ranked, policy).payer_ids == ("aetna",)


def test_contained_account_and_coverage(policy: Policy) -> None:
    document = {
        **ENCOUNTER,
        "contained": [
            {**account(("#cov", 1)), "id": "acc"},
            {**coverage("cov", {"identifier": {"system": "urn:payer", "value": "MEDICARE"}, "display": "Medicare"})},
        ],
        "account": [{"reference": "#acc"}],
    }
    assert encounter_event(raw(document), policy).payer_ids == ("MEDICARE", "Medicare")


def test_contained_organization_gives_its_identifiers_and_name_not_its_local_id(policy: Policy) -> None:
    cov = {**coverage("c1", {"reference": "#org"}), "contained": [{**BCBS, "id": "org"}]}
    document = bundle(WITH_ACCOUNT, account(("Coverage/c1", 1)), cov)
    assert encounter_event(document, policy).payer_ids == ("BCBS-IL", "Blue Cross IL")


def test_payor_of_another_type_is_invalid(policy: Policy) -> None:
    practitioner = {"resourceType": "Practitioner", "id": "dr1"}
    document = bundle(
        WITH_ACCOUNT, account(("Coverage/c1", 1)), coverage("c1", {"reference": "Practitioner/dr1"}), practitioner
    )
    with pytest.raises(errors.InvalidFhir, match=r"Coverage\.payor\[0\]\.reference does not name an Organization"):
        parse_fhir(document, policy)


def test_cancelled_coverage_is_skipped_and_an_unheld_primary_is_not_guessed(policy: Policy) -> None:
    cancelled = bundle(
        WITH_ACCOUNT,
        account(("Coverage/c1", 1), ("Coverage/c2", 2)),
        coverage("c1", {"reference": "Organization/old"}, status="cancelled"),
        coverage("c2", {"reference": "Organization/cigna"}),
    )
    assert encounter_event(cancelled, policy).payer_ids == ("cigna",)
    elsewhere = bundle(
        WITH_ACCOUNT, account(("Coverage/far", 1), ("Coverage/c2", 2)), coverage("c2", {"reference": "Organization/x"})
    )
    assert encounter_event(elsewhere, policy).payer_ids == ()


def test_self_pay_payor_gives_no_person_data(policy: Policy) -> None:
    document = bundle(
        WITH_ACCOUNT, account(("Coverage/c1", 1)), coverage("c1", {"reference": "Patient/PT1", "display": "Doe, Jane"})
    )
    assert encounter_event(document, policy).payer_ids == ()


def test_r5_coverage_insurer(policy: Policy) -> None:
    r5 = {**ENCOUNTER, "status": "completed", "class": [{"coding": [{"code": "AMB"}]}], "actualPeriod": {}}
    del r5["period"]
    cov = {**coverage("c1", {}), "kind": "insurance", "insurer": {"reference": "Organization/bcbs"}}
    del cov["payor"]
    document = bundle({**r5, "account": [{"reference": "Account/A1"}]}, account(("Coverage/c1", 1)), cov, BCBS)
    assert encounter_event(document, policy).payer_ids == ("BCBS-IL", "bcbs", "Blue Cross IL")


def test_no_account_or_an_account_held_elsewhere_gives_no_payer(policy: Policy) -> None:
    assert encounter_event(raw(ENCOUNTER), policy).payer_ids == ()
    assert encounter_event(raw(WITH_ACCOUNT), policy).payer_ids == ()


def test_account_reference_to_another_type_is_invalid(policy: Policy) -> None:
    document = bundle({**ENCOUNTER, "account": [{"reference": "Coverage/c1"}]}, coverage("c1", {"display": "x"}))
    with pytest.raises(errors.InvalidFhir, match=r"Encounter\.account\[0\]"):
        parse_fhir(document, policy)


def test_standalone_account_or_coverage_is_unsupported(policy: Policy) -> None:
    for resource in (account(("Coverage/c1", 1)), coverage("c1", {"reference": "Organization/x"})):
        with pytest.raises(errors.UnsupportedMessageType):
            parse_fhir(raw(resource), policy)


def test_account_in_a_bundle_no_encounter_points_to_has_no_effect(policy: Policy) -> None:
    found = read_fhir(bundle(ENCOUNTER, account(("Coverage/c1", 1)), coverage("c1", {"display": "x"})), policy)
    assert not found.rejects
    assert found.records[0].encounter_events[0].payer_ids == ()


# --- location ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ([{"location": {"reference": "Location/ED-1"}}], "ED-1"),
        ([{"location": {"reference": "https://ehr.example.org/fhir/Location/ED-1/_history/2"}}], "ED-1"),
        ([{"location": {"identifier": {"value": "INFUSION"}}}], "INFUSION"),
        ([{"location": {"display": "somewhere"}, "physicalType": {"coding": [{"code": "wa"}]}}], "wa"),
        ([{"location": {"reference": "Location/A"}}, {"location": {"reference": "Location/B"}}], "A"),
        ([], ""),
    ],
)
def test_location_is_where_the_first_location_points(location: list[Any], expected: str, policy: Policy) -> None:
    assert encounter_event(raw({**ENCOUNTER, "location": location}), policy).location == expected


def test_location_by_urn_and_contained(policy: Policy) -> None:
    loc = {"resourceType": "Location", "id": "OP-INF", "identifier": [{"value": "INF-CHAIR"}]}
    by_urn = bundle({**ENCOUNTER, "location": [{"location": {"reference": URN}}]}, loc, urls=("urn:x", URN))
    assert encounter_event(by_urn, policy).location == "OP-INF"
    contained = {**ENCOUNTER, "contained": [{**loc, "id": "l1"}], "location": [{"location": {"reference": "#l1"}}]}
    assert encounter_event(raw(contained), policy).location == "INF-CHAIR"
