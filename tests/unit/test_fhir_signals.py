"""FHIR administration signals: category → class hint, the site's primary extension, ordered infusion minutes."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from connector.adapters import errors
from connector.adapters.fhir import parse_fhir
from connector.model import Administration, EncounterEvent, PatientClass
from connector.policy.model import Policy
from connector.policy.site import SiteProfile

R4_CATEGORY = "http://terminology.hl7.org/CodeSystem/medication-admin-category"
R5_CATEGORY = "http://terminology.hl7.org/CodeSystem/medication-admin-location"
PRIMARY_URL = "https://hospital.example.org/fhir/StructureDefinition/professional-primary"
INFUSE_OVER = "https://fhir-ehr.cerner.com/r4/StructureDefinition/infuse-over-time"
R4: dict[str, Any] = {
    "resourceType": "MedicationAdministration",
    "id": "ma-sig",
    "status": "completed",
    "medicationCodeableConcept": {"text": "vancomycin"},
    "subject": {"reference": "Patient/PT1"},
    "context": {"reference": "Encounter/E1"},
    "effectiveDateTime": "2026-03-02T09:00:00-05:00",
}
R5: dict[str, Any] = {
    "resourceType": "MedicationAdministration",
    "id": "ma-sig5",
    "status": "completed",
    "medication": {"concept": {"text": "vancomycin"}},
    "subject": {"reference": "Patient/PT1"},
    "encounter": {"reference": "Encounter/E1"},
    "occurenceDateTime": "2026-03-02T09:00:00-05:00",
}


def read(document: dict[str, Any], policy: Policy) -> tuple[Administration, EncounterEvent]:
    (record,) = parse_fhir(json.dumps(document).encode(), policy)
    return record.administrations[0], record.encounter_events[0]


# --- category → class hint -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("inpatient", PatientClass.INPATIENT),
        ("outpatient", PatientClass.OUTPATIENT),
        ("community", PatientClass.OUTPATIENT),
    ],
)
def test_r4_category_is_a_class_hint_on_the_seen_event(code: str, hint: PatientClass, policy: Policy) -> None:
    _, seen = read({**R4, "category": {"coding": [{"system": R4_CATEGORY, "code": code}]}}, policy)
    assert seen.class_hint is hint
    assert seen.patient_class is None  # a hint, never the class itself


def test_r5_category_list_and_its_code_system(policy: Policy) -> None:
    category = [{"text": "ward"}, {"coding": [{"system": R5_CATEGORY, "code": "inpatient"}]}]
    _, seen = read({**R5, "category": category}, policy)
    assert seen.class_hint is PatientClass.INPATIENT


def test_the_category_system_wins_over_other_codings(policy: Policy) -> None:
    concept = {"coding": [{"system": "urn:local", "code": "O"}, {"system": R4_CATEGORY, "code": "inpatient"}]}
    _, seen = read({**R4, "category": concept}, policy)
    assert seen.class_hint is PatientClass.INPATIENT


@pytest.mark.parametrize("category", [None, {"coding": [{"system": R4_CATEGORY, "code": "elsewhere"}]}, {"text": "x"}])
def test_no_or_unknown_category_gives_no_hint(category: dict[str, Any] | None, policy: Policy) -> None:
    document = {**R4, "category": category} if category else R4
    _, seen = read(document, policy)
    assert seen.class_hint is None


# --- primary from the site's extension -----------------------------------------------------------


@pytest.fixture
def site_policy(policy: Policy) -> Policy:
    return dataclasses.replace(policy, site=SiteProfile(primary_fhir_extension=PRIMARY_URL))


@pytest.mark.parametrize(
    ("extension", "primary"),
    [
        ({"valueBoolean": True}, True),
        ({"valueBoolean": False}, False),
        ({"valueCode": "primary"}, True),
        ({"valueString": " Primary "}, True),
        ({"valueString": "secondary"}, False),
    ],
)
def test_primary_extension(extension: dict[str, Any], primary: bool, site_policy: Policy) -> None:
    admin, _ = read({**R4, "extension": [{"url": PRIMARY_URL, **extension}]}, site_policy)
    assert admin.primary is primary


def test_primary_extension_is_not_read_without_a_site_url_or_under_another_url(
    policy: Policy, site_policy: Policy
) -> None:
    assert read({**R4, "extension": [{"url": PRIMARY_URL, "valueBoolean": True}]}, policy)[0].primary is False
    other = {**R4, "extension": [{"url": "https://elsewhere.example/primary", "valueBoolean": True}]}
    assert read(other, site_policy)[0].primary is False


# --- ordered minutes from the request ------------------------------------------------------------


def with_order(order: dict[str, Any], document: dict[str, Any] = R4) -> dict[str, Any]:
    request = {
        "resourceType": "MedicationRequest",
        "id": "rx1",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/PT1"},
        **order,
    }
    if "medicationCodeableConcept" in document:
        request["medicationCodeableConcept"] = {"text": "vancomycin"}
    else:
        request["medication"] = {"concept": {"text": "vancomycin"}}
    return {**document, "contained": [request], "request": {"reference": "#rx1"}}


def dosage(**fields: Any) -> dict[str, Any]:
    return {"dosageInstruction": [fields]}


@pytest.mark.parametrize(
    ("order", "minutes"),
    [
        (dosage(timing={"repeat": {"duration": 30, "durationUnit": "min"}}), 30),
        (dosage(timing={"repeat": {"duration": 1.5, "durationUnit": "h"}}), 90),
        (
            dosage(
                doseAndRate=[
                    {"doseQuantity": {"value": 250, "code": "mL"}, "rateQuantity": {"value": 500, "code": "mL/h"}}
                ]
            ),
            30,
        ),
        (
            dosage(
                doseAndRate=[
                    {
                        "doseQuantity": {"value": 1000, "unit": "mL"},
                        "rateRatio": {
                            "numerator": {"value": 250, "unit": "mL"},
                            "denominator": {"value": 1, "unit": "h"},
                        },
                    }
                ]
            ),
            240,
        ),
        ({"extension": [{"url": INFUSE_OVER, "valueQuantity": {"value": 2, "code": "h"}}]}, 120),
        (dosage(extension=[{"url": INFUSE_OVER, "valueQuantity": {"value": 45, "code": "min"}}]), 45),
    ],
)
def test_ordered_minutes(order: dict[str, Any], minutes: int, policy: Policy) -> None:
    admin, _ = read(with_order(order), policy)
    assert admin.ordered_minutes == minutes
    assert admin.infuse_minutes is None  # the administration's own documented length is apart


def test_ordered_minutes_in_r5(policy: Policy) -> None:
    order = dosage(timing={"repeat": {"duration": 60, "durationUnit": "min"}})
    assert read(with_order(order, R5), policy)[0].ordered_minutes == 60


@pytest.mark.parametrize(
    "order",
    [
        {},
        dosage(timing={"repeat": {"duration": 2, "durationUnit": "wk"}}),  # not an infusion length
        dosage(
            doseAndRate=[{"doseQuantity": {"value": 1, "code": "g"}, "rateQuantity": {"value": 100, "code": "mL/h"}}]
        ),
        dosage(
            doseAndRate=[{"doseQuantity": {"value": 250, "code": "mL"}, "rateQuantity": {"value": 0, "code": "mL/h"}}]
        ),
    ],
)
def test_unreadable_orders_give_no_ordered_minutes(order: dict[str, Any], policy: Policy) -> None:
    assert read(with_order(order), policy)[0].ordered_minutes is None


def test_an_order_outside_the_document_gives_none_and_a_missing_contained_one_is_invalid(policy: Policy) -> None:
    assert read({**R4, "request": {"reference": "MedicationRequest/rx9"}}, policy)[0].ordered_minutes is None
    with pytest.raises(errors.InvalidFhir, match="request"):
        read({**R4, "request": {"reference": "#rx9"}}, policy)


def test_order_in_a_bundle_entry(policy: Policy) -> None:
    order = with_order(dosage(timing={"repeat": {"duration": 20, "durationUnit": "min"}}))
    request = order.pop("contained")[0]
    order["request"] = {"reference": "MedicationRequest/rx1"}
    entries = [{"fullUrl": "urn:uuid:1", "resource": order}, {"fullUrl": "urn:uuid:2", "resource": request}]
    document = json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}).encode()
    (record,) = parse_fhir(document, policy)
    assert record.administrations[0].ordered_minutes == 20
