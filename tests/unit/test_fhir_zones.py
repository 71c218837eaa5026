"""FHIR instants dated in the facility's zone (site profile), else the default zone (``--zone``)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connector.adapters.archive import Record
from connector.adapters.dispatch import read_record
from connector.adapters.fhir import parse_fhir
from connector.model import Administration, EncounterEvent
from connector.policy.model import Policy
from connector.policy.site import SiteProfile

CHICAGO = ZoneInfo("America/Chicago")
DENVER = ZoneInfo("America/Denver")
MA: dict[str, Any] = {
    "resourceType": "MedicationAdministration",
    "id": "ma-zone",
    "status": "completed",
    "medicationCodeableConcept": {"text": "ondansetron"},
    "subject": {"reference": "Patient/PT1"},
    "context": {"reference": "Encounter/E1"},
    "effectiveDateTime": "2020-05-11T03:27:00Z",
}
ENCOUNTER: dict[str, Any] = {
    "resourceType": "Encounter",
    "id": "E1",
    "status": "finished",
    "class": {"code": "AMB"},
    "subject": {"reference": "Patient/PT1"},
    "serviceProvider": {"reference": "Organization/hosp-a"},
    "period": {"start": "2020-05-10T20:00:00Z", "end": "2020-05-11T04:30:00Z"},
}


def raw(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def admin_of(document: dict[str, Any], policy: Policy, zone: Any = CHICAGO) -> Administration:
    (record,) = parse_fhir(raw(document), policy, local_zone=zone)
    return record.administrations[0]


def event_of(document: dict[str, Any], policy: Policy, zone: Any = CHICAGO) -> EncounterEvent:
    (record,) = parse_fhir(raw(document), policy, local_zone=zone)
    return record.encounter_events[0]


@pytest.fixture
def sited(policy: Policy) -> Policy:
    return dataclasses.replace(policy, site=SiteProfile(zones={"HOSP-A": DENVER}))


def test_utc_instant_is_dated_in_the_default_zone_across_midnight(policy: Policy) -> None:
    admin = admin_of(MA, policy)
    assert admin.start.date() == date(2020, 5, 10)
    assert admin.start.isoformat() == "2020-05-10T22:27:00-05:00"
    assert type(admin.start.tzinfo) is timezone  # a fixed offset, as the store keeps times
    assert admin.start == datetime(2020, 5, 11, 3, 27, tzinfo=UTC)  # the same instant


def test_offset_instant_is_dated_in_the_default_zone_across_midnight(policy: Policy) -> None:
    admin = admin_of({**MA, "effectiveDateTime": "2020-05-11T06:10:00+02:00"}, policy)
    assert admin.start.isoformat() == "2020-05-10T23:10:00-05:00"
    forward = admin_of({**MA, "effectiveDateTime": "2020-05-10T23:30:00-08:00"}, policy)
    assert forward.start.isoformat() == "2020-05-11T02:30:00-05:00"


def test_period_ends_are_dated_in_the_zone(policy: Policy) -> None:
    document = {
        **MA,
        "effectiveDateTime": None,
        "effectivePeriod": {"start": "2020-05-11T04:50:00Z", "end": "2020-05-11T05:20:00Z"},
    }
    del document["effectiveDateTime"]
    admin = admin_of(document, policy)
    assert (admin.start.isoformat(), admin.end and admin.end.isoformat()) == (
        "2020-05-10T23:50:00-05:00",
        "2020-05-11T00:20:00-05:00",
    )


def test_r5_occurence_is_dated_in_the_zone(policy: Policy) -> None:
    document = {
        "resourceType": "MedicationAdministration",
        "id": "ma-r5",
        "status": "completed",
        "medication": {"concept": {"text": "ondansetron"}},
        "subject": {"reference": "Patient/PT1"},
        "encounter": {"reference": "Encounter/E1"},
        "occurenceDateTime": "2020-05-11T03:27:00+00:00",
    }
    assert admin_of(document, policy).start.isoformat() == "2020-05-10T22:27:00-05:00"


def test_daylight_saving_offset_is_the_one_of_each_instant(policy: Policy) -> None:
    before = admin_of({**MA, "effectiveDateTime": "2026-03-08T07:30:00Z"}, policy)
    after = admin_of({**MA, "effectiveDateTime": "2026-03-08T08:30:00Z"}, policy)
    assert before.start.utcoffset() == timedelta(hours=-6)
    assert after.start.utcoffset() == timedelta(hours=-5)
    assert (after.start - before.start) == timedelta(hours=1)


def test_date_only_is_local_midnight_in_the_zone(policy: Policy) -> None:
    admin = admin_of({**MA, "effectiveDateTime": "2020-05-11"}, policy)
    assert admin.start.isoformat() == "2020-05-11T00:00:00-05:00"


def test_without_a_zone_the_offset_is_kept_as_sent(policy: Policy) -> None:
    assert admin_of(MA, policy, zone=None).start.isoformat() == "2020-05-11T03:27:00+00:00"


def test_encounter_is_dated_in_its_facility_zone_else_the_default(policy: Policy, sited: Policy) -> None:
    assert event_of(ENCOUNTER, sited).at == datetime(2020, 5, 10, 22, 30, tzinfo=timezone(timedelta(hours=-6)))
    assert str(event_of(ENCOUNTER, sited).at) == "2020-05-10 22:30:00-06:00"
    assert str(event_of(ENCOUNTER, policy).at) == "2020-05-10 23:30:00-05:00"  # no site zone: --zone
    display_only = {**ENCOUNTER, "serviceProvider": {"display": "hosp-a"}}
    assert str(event_of(display_only, sited).at) == "2020-05-10 22:30:00-06:00"


def test_administration_uses_its_encounter_facility_zone_when_the_bundle_holds_it(sited: Policy) -> None:
    entries = [{"fullUrl": "urn:uuid:1", "resource": ENCOUNTER}, {"fullUrl": "urn:uuid:2", "resource": MA}]
    document = raw({"resourceType": "Bundle", "type": "collection", "entry": entries})
    _, record = parse_fhir(document, sited, local_zone=CHICAGO)
    assert record.administrations[0].start.isoformat() == "2020-05-10T21:27:00-06:00"
    alone = admin_of(MA, sited)  # the Encounter is not in the document: the default zone
    assert alone.start.isoformat() == "2020-05-10T22:27:00-05:00"


def test_dispatch_passes_the_default_zone_to_the_fhir_adapter(policy: Policy) -> None:
    record = Record("feed.ndjson", "line 1", "fhir", raw(MA))
    (parsed,) = read_record(record, policy, CHICAGO, 1 << 20).records
    assert parsed.administrations[0].start.isoformat() == "2020-05-10T22:27:00-05:00"


def test_version_keeps_utc(policy: Policy) -> None:
    document = {**MA, "meta": {"versionId": "2", "lastUpdated": "2020-05-11T03:30:00Z"}}
    assert admin_of(document, policy).version == "000000000002|2020-05-11T03:30:00+00:00"
