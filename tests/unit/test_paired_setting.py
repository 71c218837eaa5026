"""Payer by coverage priority and dates in the facility zone, the same through HL7 v2 and FHIR (issue #13)."""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connector.adapters.fhir import parse_fhir
from connector.adapters.hl7v2 import parse_hl7
from connector.emitters import json_charge
from connector.model import ParsedRecord
from connector.policy.model import Policy
from connector.service import Service, ServiceSettings
from connector.store.memory import MemoryStore

CHICAGO = ZoneInfo("America/Chicago")
# Two pushes of ondansetron at 03:27Z and 04:27Z on 3 March: 21:27 and 22:27 on 2 March in Chicago.
HL7_ADT = "\r".join(
    [
        "MSH|^~\\&|EPIC|GENHOSP|IVPUSH|GENHOSP|20260303020000+0000||ADT^A04^ADT_A01|ADT1|P|2.5.1",
        "EVN|A04|20260303020000+0000",
        "PID|1||MRN0001^^^GENHOSP^MR||TEST^PATIENT||19800101|F",
        "PV1|1|E|ED^B12^01^GENHOSP" + "|" * 16 + "V500^^^GENHOSP",
        "IN1|1|PLAN-A|60054|AETNA" + "|" * 18 + "2",
        "IN1|2|PLAN-B|MCR|MEDICARE" + "|" * 18 + "1",
    ]
).encode()


def hl7_ras(control: str, rxa_sub: str, start: str) -> bytes:
    return "\r".join(
        [
            f"MSH|^~\\&|EPIC|GENHOSP|IVPUSH|GENHOSP|{start}||RAS^O17^RAS_O17|{control}|P|2.5.1",
            "PID|1||MRN0001^^^GENHOSP^MR||TEST^PATIENT||19800101|F",
            "PV1|1|E|ED^B12^01^GENHOSP" + "|" * 16 + "V500^^^GENHOSP",
            "ORC|RE|ORD100^EPC|FIL100^EPC",
            f"RXA|0|{rxa_sub}|{start}||313002^ondansetron 2 MG/ML^RXNORM|4|mg|||||||||||||CP",
            "RXR|IV^Intravenous^HL70162|||IVP^IV Push^HL70165",
        ]
    ).encode()


def fhir_bundle() -> bytes:
    def coverage(cid: str, payor: str) -> dict[str, Any]:
        return {
            "fullUrl": f"urn:uuid:{cid}",
            "resource": {
                "resourceType": "Coverage",
                "id": cid,
                "status": "active",
                "beneficiary": {"reference": "Patient/PT0001"},
                "payor": [{"display": payor}],
            },
        }

    def push(mid: str, at: str) -> dict[str, Any]:
        return {
            "resource": {
                "resourceType": "MedicationAdministration",
                "id": mid,
                "meta": {"versionId": "1"},
                "status": "completed",
                "medicationCodeableConcept": {
                    "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "313002"}],
                    "text": "ondansetron 2 MG/ML",
                },
                "subject": {"reference": "Patient/PT0001"},
                "context": {"reference": "Encounter/V500"},
                "effectiveDateTime": at,
                "dosage": {
                    "route": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0162", "code": "IV"}]},
                    "method": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0165", "code": "IVP"}]},
                },
            }
        }

    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "Encounter",
                    "id": "V500",
                    "meta": {"versionId": "1"},
                    "status": "in-progress",
                    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
                    "subject": {"reference": "Patient/PT0001"},
                    "account": [{"reference": "urn:uuid:acct-1"}],
                }
            },
            {
                "fullUrl": "urn:uuid:acct-1",
                "resource": {
                    "resourceType": "Account",
                    "id": "acct-1",
                    "status": "active",
                    "coverage": [
                        {"coverage": {"reference": "urn:uuid:cov-a"}, "priority": 2},
                        {"coverage": {"reference": "urn:uuid:cov-b"}, "priority": 1},
                    ],
                },
            },
            coverage("cov-a", "AETNA"),
            coverage("cov-b", "MEDICARE"),
            push("ma-1", "2026-03-03T03:27:00Z"),
            push("ma-2", "2026-03-03T04:27:00Z"),
        ],
    }
    return json.dumps(bundle).encode()


def charges(records: list[ParsedRecord], policy: Policy) -> list[dict[str, Any]]:
    svc = Service(MemoryStore(), policy, ServiceSettings({"json": json_charge.render}), clock=lambda: 1000.0)
    svc.handle(records)
    svc.close()
    return [json.loads(row.body) for row in svc.store.pending()]


def summary(bodies: list[dict[str, Any]]) -> list[tuple[str, str, str, int, tuple[str, ...]]]:
    return sorted(
        (b["policy"], line["code"], line["service_date"], line["units"], tuple(line["flags"]))
        for b in bodies
        for line in b["lines"]
    )


@pytest.fixture
def expected() -> list[tuple[str, str, str, int, tuple[str, ...]]]:
    return [
        ("medicare", "96374", "2026-03-02", 1, ("no_mue_on_file",)),
        ("medicare", "96376", "2026-03-02", 1, ("no_mue_on_file",)),
    ]


def test_hl7_the_primary_coverage_by_in1_22_and_local_dates(policy: Policy, expected: list[Any]) -> None:
    records = [
        parse_hl7(HL7_ADT, policy, CHICAGO),
        parse_hl7(hl7_ras("R1", "1", "20260303032700+0000"), policy, CHICAGO),
        parse_hl7(hl7_ras("R2", "2", "20260303042700+0000"), policy, CHICAGO),
    ]
    assert records[1].administrations[0].start.isoformat() == "2026-03-02T21:27:00-06:00"
    assert summary(charges(records, policy)) == expected


def test_fhir_the_primary_coverage_by_account_priority_and_local_dates(policy: Policy, expected: list[Any]) -> None:
    records = parse_fhir(fhir_bundle(), policy, local_zone=CHICAGO)
    starts = sorted(a.start.isoformat() for r in records for a in r.administrations)
    assert starts == ["2026-03-02T21:27:00-06:00", "2026-03-02T22:27:00-06:00"]
    assert summary(charges(list(records), policy)) == expected


def test_without_a_facility_zone_the_sent_offset_decides_the_date(policy: Policy) -> None:
    """coding-rules.md §6: only when the facility's zone is unknown does the sent offset decide."""
    hl7 = parse_hl7(hl7_ras("R1", "1", "20260302232700-0500"), policy, None)
    assert hl7.administrations[0].start.isoformat() == "2026-03-02T23:27:00-05:00"
    local = parse_hl7(hl7_ras("R2", "1", "20260302232700"), policy, None)  # no offset, no zone: UTC
    assert local.administrations[0].start.isoformat() == "2026-03-02T23:27:00+00:00"
    fhir = parse_fhir(fhir_bundle(), policy)
    assert sorted(a.start.isoformat() for r in fhir for a in r.administrations)[0] == "2026-03-03T03:27:00+00:00"
