"""FHIR inbound adapter: every sample with its fields, bundles, encounters, versions, rejects, pairing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from ci import skip_unless_ci

from connector.adapters import errors
from connector.adapters.errors import AdapterError
from connector.adapters.fhir import parse_fhir, read_fhir
from connector.model import (
    EMPTY,
    Administration,
    AdminStatus,
    CodedValue,
    Coding,
    Encounter,
    EncounterEvent,
    EncounterEventKind,
    ParsedRecord,
    PatientClass,
    SourceRef,
)
from connector.model.ids import administration_id
from connector.policy.model import Policy

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "fhir"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "samples" / "fhir"
VERBATIM = (
    "medadmin0301-hl7-spec-iv-push.json",
    "oracle-health-r4-ivpb-infusion.json",
    "oracle-health-r4-not-done.json",
    "us-core-ballot-iv-cefazolin-period.json",
    "us-core-ballot-not-done-refused.json",
)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
V2_0162 = "http://terminology.hl7.org/CodeSystem/v2-0162"
V2_0165 = "http://terminology.hl7.org/CodeSystem/v2-0165"
V3_ROUTE = "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"
EST = timezone(timedelta(hours=-5))
CET = timezone(timedelta(hours=1))
IV_ROUTE = CodedValue(
    (
        Coding(V2_0162, "IV", "Intravenous"),
        Coding(SNOMED, "47625008", "Intravenous route (qualifier value)"),
    ),
    "Intravenous",
)
IVP = CodedValue((Coding(V2_0165, "IVP", "IV Push"),), "IV Push")
ONDANSETRON = CodedValue(
    (Coding(RXNORM, "313002", "ondansetron 2 MG/ML Injectable Solution"),), "ondansetron 2 MG/ML Injectable Solution"
)
MORPHINE = CodedValue(
    (Coding(RXNORM, "1807627", "morphine sulfate 4 MG/ML Injectable Solution"),),
    "morphine sulfate 4 MG/ML Injectable Solution",
)


def read(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def records(name: str, policy: Policy, position: str = "") -> list[ParsedRecord]:
    return parse_fhir(read(name), policy, position)


def only(name: str, policy: Policy) -> Administration:
    (record,) = records(name, policy)
    (admin,) = record.administrations
    return admin


def edited(name: str, **changes: Any) -> bytes:
    doc = json.loads(read(name))
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return json.dumps(doc).encode()


def parse_one(raw: bytes, policy: Policy) -> Administration:
    (record,) = parse_fhir(raw, policy)
    (admin,) = record.administrations
    return admin


# --- public samples --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VERBATIM)
def test_public_samples_are_copied_byte_for_byte(name: str) -> None:
    if not SHARED.is_dir():
        skip_unless_ci("shared samples not laid out beside the repository (../shared/samples)")
    assert read(name) == (SHARED / name).read_bytes()


def test_hl7_spec_iv_push_resolves_the_contained_medication(policy: Policy) -> None:
    (record,) = records("medadmin0301-hl7-spec-iv-push.json", policy, "q:7")
    (admin,) = record.administrations
    assert admin.id == administration_id("fhir", "medadmin0301")
    assert admin.drug == CodedValue(
        (Coding("http://hl7.org/fhir/sid/ndc", "0409-6531-02", "Vancomycin Hydrochloride (VANCOMYCIN HYDROCHLORIDE)"),)
    )
    assert admin.route == CodedValue((Coding(SNOMED, "47625008", "Intravenous route (qualifier value)"),))
    assert admin.method == CodedValue(text="IV Push")
    assert admin.start == datetime(2015, 1, 15, 14, 30, tzinfo=CET)
    assert admin.start.utcoffset() == timedelta(hours=1)
    assert admin.end is None
    assert admin.status is AdminStatus.IN_PROGRESS
    assert (admin.dose, admin.dose_unit) == (Decimal(500), "mg")
    assert admin.encounter_key == "fhir|f001"
    assert admin.version == ""
    assert admin.source == SourceRef("fhir", "MedicationAdministration/medadmin0301", "q:7")
    assert record.dedup_key.startswith("MedicationAdministration/medadmin0301/sha256:")
    (seen,) = record.encounter_events
    assert seen.kind is EncounterEventKind.SEEN
    assert (seen.encounter.key, seen.encounter.visit_number, seen.encounter.patient_id) == ("fhir|f001", "f001", "pat1")
    assert seen.patient_class is None


def test_oracle_health_ivpb_uses_ingredients_and_infuse_over_time(policy: Policy) -> None:
    (record,) = records("oracle-health-r4-ivpb-infusion.json", policy)
    (admin,) = record.administrations
    assert [(c.system, c.code) for c in admin.drug.codings] == [
        (RXNORM, "237381"),
        (RXNORM, "204520"),
        (RXNORM, "245220"),
    ]
    assert admin.drug.text == "potassium acetate + K-Sol + Dextrose 10% with 0.2% NaCl"
    assert admin.route == CodedValue(
        (Coding(SNOMED, "47625008", "Intravenous route (qualifier value)"),), "IV Piggyback"
    )
    assert admin.method is EMPTY or admin.method.is_empty
    assert admin.site == "66480008"
    assert admin.infuse_minutes == 120
    assert admin.has_rate
    assert (admin.dose, admin.dose_unit) == (Decimal(250), "mL")
    assert admin.start == datetime(2020, 5, 11, 21, 27, tzinfo=UTC)
    assert admin.end is None
    assert admin.status is AdminStatus.GIVEN
    assert admin.encounter_key == "fhir|97949818"
    assert admin.version == "000197287788|2020-05-11T21:29:30+00:00"
    assert record.dedup_key == "MedicationAdministration/197287785/_history/197287788"
    assert record.encounter_events[0].encounter.patient_id == "12740087"


def test_oracle_health_not_done_is_not_given(policy: Policy) -> None:
    admin = only("oracle-health-r4-not-done.json", policy)
    assert admin.status is AdminStatus.NOT_GIVEN
    assert admin.drug == CodedValue((Coding(RXNORM, "723", "Amoxicillin"),), "amoxicillin")
    assert admin.route.is_empty and admin.method.is_empty
    assert admin.start == datetime(2020, 5, 5, 13, 0, tzinfo=UTC)
    assert admin.dose is None and not admin.has_rate and admin.infuse_minutes is None


@pytest.mark.parametrize("name", ["us-core-ballot-iv-cefazolin-period.json", "us-core-ballot-not-done-refused.json"])
def test_us_core_examples_have_no_encounter(name: str, policy: Policy) -> None:
    with pytest.raises(errors.MissingEncounterKey, match="context absent"):
        records(name, policy)


def test_us_core_cefazolin_period_fields_once_an_encounter_is_added(policy: Policy) -> None:
    raw = edited("us-core-ballot-iv-cefazolin-period.json", context={"reference": "Encounter/E1"})
    admin = parse_one(raw, policy)
    assert admin.drug == CodedValue((Coding(RXNORM, "1665050", "cefazolin 1000 MG Injection"),), "Cefazolin 1 g IV")
    assert admin.route == CodedValue((Coding(SNOMED, "47625008", "Intravenous route"),))
    assert admin.method.is_empty
    assert (admin.start, admin.end) == (
        datetime(2026, 5, 13, 8, 0, tzinfo=UTC),
        datetime(2026, 5, 13, 8, 30, tzinfo=UTC),
    )
    assert (admin.dose, admin.dose_unit) == (Decimal(1), "g")
    assert admin.status is AdminStatus.GIVEN
    assert admin.encounter_key == "fhir|E1"


def test_us_core_refused_dose_keeps_the_reference_display(policy: Policy) -> None:
    raw = edited("us-core-ballot-not-done-refused.json", context={"reference": "Encounter/E1"})
    admin = parse_one(raw, policy)
    assert admin.status is AdminStatus.NOT_GIVEN
    assert admin.drug == CodedValue(text="Axid")  # Medication/uscore-med2 is not in the document
    assert admin.route == CodedValue((Coding(SNOMED, "26643006", "Oral route"),))
    assert admin.start == datetime(2026, 5, 13, 7, 0, tzinfo=UTC)


# --- own administrations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("r4-push-method-v2-0165-ivp.json", IVP),
        (
            "r4-push-method-v3-ivpush.json",
            CodedValue((Coding(V3_ROUTE, "IVPUSH", "Injection, intravenous, push"),), ""),
        ),
        ("r4-push-method-text-iv-push.json", CodedValue(text="IV Push")),
        ("r5-push-method-v2-0165-ivp.json", IVP),
        ("r5-occurrence-spelling.json", CodedValue((Coding(V3_ROUTE, "IVPUSH", "Injection, intravenous, push"),))),
        ("r5-contained-medication-ingredients.json", CodedValue(text="IV Push")),
    ],
)
def test_push_method_signals_are_kept_as_sent(name: str, method: CodedValue, policy: Policy) -> None:
    admin = only(name, policy)
    assert admin.method == method
    assert admin.end is None
    assert not admin.has_rate


def test_r4_push_with_v2_ivp(policy: Policy) -> None:
    admin = only("r4-push-method-v2-0165-ivp.json", policy)
    assert admin.drug == ONDANSETRON
    assert admin.route == IV_ROUTE
    assert admin.start == datetime(2026, 3, 2, 9, 0, tzinfo=EST)
    assert (admin.dose, admin.dose_unit) == (Decimal(4), "mg")
    assert admin.version == "000000000001|2026-03-02T14:05:00+00:00"
    assert admin.encounter_key == "fhir|V1001"


def test_r4_text_only_route_and_fractional_seconds(policy: Policy) -> None:
    admin = only("r4-push-method-text-iv-push.json", policy)
    assert admin.route == CodedValue((Coding(SNOMED, "47625008", "Intravenous route"),))
    assert admin.start == datetime(2026, 3, 2, 10, 15, 0, 250_000, tzinfo=EST)


def test_r4_infusion_with_effective_period_and_rate(policy: Policy) -> None:
    admin = only("r4-infusion-effective-period.json", policy)
    assert admin.start == datetime(2026, 3, 2, 10, 0, tzinfo=EST)
    assert admin.end == datetime(2026, 3, 2, 11, 0, tzinfo=EST)
    assert admin.method == CodedValue((Coding(V2_0165, "INF", "Infuse"),), "Infuse")
    assert admin.has_rate
    assert (admin.dose, admin.dose_unit) == (Decimal(1000), "mL")


def test_cerner_shaped_infuse_over_time_in_hours(policy: Policy) -> None:
    admin = only("r4-cerner-infuse-over-time-hours.json", policy)
    assert admin.infuse_minutes == 90
    assert admin.route.text == "IV Piggyback"
    assert admin.method.is_empty
    assert admin.site == "368208006"
    assert (admin.dose, admin.dose_unit) == (Decimal(1), "g")
    assert admin.has_rate
    assert admin.start == datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    assert admin.version == "000300000002|2026-03-02T16:40:00+00:00"


def test_r4_contained_medication_code_and_text(policy: Policy) -> None:
    admin = only("r4-contained-medication.json", policy)
    assert admin.drug == CodedValue(
        (
            Coding(RXNORM, "1807627", "morphine sulfate 4 MG/ML Injectable Solution"),
            Coding("http://hl7.org/fhir/sid/ndc", "0409-1890-01"),
        ),
        "Morphine 4 mg/mL syringe",
    )
    assert admin.method == IVP


def test_r5_push_reads_medication_concept_encounter_and_occurence(policy: Policy) -> None:
    (record,) = records("r5-push-method-v2-0165-ivp.json", policy)
    (admin,) = record.administrations
    assert admin.drug == ONDANSETRON
    assert admin.route == IV_ROUTE
    assert admin.start == datetime(2026, 3, 2, 8, 10, tzinfo=CET)
    assert admin.encounter_key == "fhir|V2001"
    assert admin.version == "000000000001|2026-03-02T07:15:00+00:00"
    assert record.dedup_key == "MedicationAdministration/ma-r5-push/_history/1"


def test_r5_infusion_period_with_rate_ratio(policy: Policy) -> None:
    admin = only("r5-infusion-occurence-period.json", policy)
    assert (admin.start, admin.end) == (
        datetime(2026, 3, 2, 8, 30, tzinfo=CET),
        datetime(2026, 3, 2, 9, 15, tzinfo=CET),
    )
    assert admin.has_rate
    assert (admin.dose, admin.dose_unit) == (Decimal(500), "mL")


def test_r5_occurrence_spelling_is_read_like_occurence(policy: Policy) -> None:
    admin = only("r5-occurrence-spelling.json", policy)
    assert admin.drug == MORPHINE
    assert admin.start == datetime(2026, 3, 2, 8, 45, tzinfo=CET)


def test_r5_contained_medication_without_code_uses_ingredients(policy: Policy) -> None:
    admin = only("r5-contained-medication-ingredients.json", policy)
    assert admin.drug == CodedValue(
        (Coding(RXNORM, "8640", "prednisone"), Coding(RXNORM, "1736854", "sodium chloride 9 MG/ML")),
        "prednisone + sodium chloride 9 MG/ML",
    )


def test_absolute_encounter_reference_drops_its_base_and_the_version(policy: Policy) -> None:
    (record,) = records("r4-absolute-encounter-reference.json", policy)
    assert record.administrations[0].encounter_key == "fhir|E77"  # the key Encounter/E77 gives
    ref = record.encounter_events[0].encounter
    assert (ref.visit_number, ref.assigning_authority) == ("E77", "fhir")


def test_logical_encounter_reference_uses_the_identifier(policy: Policy) -> None:
    admin = only("r4-logical-encounter-identifier.json", policy)
    assert admin.encounter_key == "urn:oid:2.16.840.1.113883.3.999.1|V1001"


def test_date_without_time_is_midnight_utc(policy: Policy) -> None:
    admin = only("r4-date-only.json", policy)
    assert admin.start == datetime(2026, 3, 2, tzinfo=UTC)


def test_unresolvable_medication_reference_keeps_the_display(policy: Policy) -> None:
    admin = only("r4-medication-reference-display-only.json", policy)
    assert admin.drug == CodedValue(text="ketorolac 15 mg/mL")


# --- identity, versions, corrections -------------------------------------------------------------


def test_without_version_id_the_dedup_key_is_a_content_hash(policy: Policy) -> None:
    raw = read("r4-no-meta-content-hash.json")
    (first,) = parse_fhir(raw, policy)
    (again,) = parse_fhir(orjson.dumps(json.loads(raw)), policy)  # other whitespace, same content
    assert first.dedup_key.startswith("MedicationAdministration/ma-r4-no-meta/sha256:")
    assert first.dedup_key == again.dedup_key
    changed = edited("r4-no-meta-content-hash.json", effectiveDateTime="2026-03-02T12:01:00Z")
    assert parse_fhir(changed, policy)[0].dedup_key != first.dedup_key


def test_versions_of_one_resource_share_the_id_and_order_by_version(policy: Policy) -> None:
    v1, v2 = only("update-v1.json", policy), only("update-v2.json", policy)
    assert v1.id == v2.id == administration_id("fhir", "ma-upd")
    assert (v1.status, v2.status) == (AdminStatus.IN_PROGRESS, AdminStatus.GIVEN)
    assert v1.version < v2.version
    for order in ((v1, v2), (v2, v1)):
        (current,) = Encounter("fhir|V1001").with_administrations(order).administrations
        assert current == v2


def test_version_ten_sorts_after_nine(policy: Policy) -> None:
    v9, v10 = only("update-v9.json", policy), only("update-v10.json", policy)
    assert v9.version == "000000000009|2026-03-02T14:00:00+00:00"
    assert v10.version == "000000000010|2026-03-02T14:01:00+00:00"
    assert v9.version < v10.version
    assert v9.end is None and v10.end == datetime(2026, 3, 2, 9, 32, tzinfo=EST)
    for order in ((v9, v10), (v10, v9)):
        assert Encounter("fhir|V1001").with_administrations(order).administrations == (v10,)


@pytest.mark.parametrize(
    ("given", "erased"),
    [
        ("r4-push-method-v2-0165-ivp.json", "r4-entered-in-error.json"),
        ("r5-push-method-v2-0165-ivp.json", "r5-entered-in-error.json"),
    ],
)
def test_entered_in_error_supersedes_the_same_administration(given: str, erased: str, policy: Policy) -> None:
    first, error = only(given, policy), only(erased, policy)
    assert error.status is AdminStatus.ENTERED_IN_ERROR
    assert error.id == first.id and error.version > first.version
    assert Encounter(first.encounter_key).with_administrations([error, first]).administrations == (error,)


def test_non_numeric_version_id_is_kept_as_sent(policy: Policy) -> None:
    raw = edited("update-v1.json", meta={"versionId": "v.abc-2", "lastUpdated": "2026-03-02T15:00:00+01:00"})
    (record,) = parse_fhir(raw, policy)
    assert record.administrations[0].version == "v.abc-2|2026-03-02T14:00:00+00:00"
    assert record.dedup_key == "MedicationAdministration/ma-upd/_history/v.abc-2"


# --- bundles -------------------------------------------------------------------------------------


def test_transaction_bundle_resolves_a_urn_medication_and_skips_patient(policy: Policy) -> None:
    (record,) = records("bundle-transaction-r4.json", policy)
    (admin,) = record.administrations
    assert admin.drug == CodedValue(
        (Coding(RXNORM, "313002", "ondansetron 2 MG/ML Injectable Solution"),), "Ondansetron 4 mg/2 mL vial"
    )
    assert admin.id == administration_id("fhir", "ma-tx-1")
    assert admin.start == datetime(2026, 3, 2, 9, 5, tzinfo=EST)


def test_batch_bundle_resolves_medication_by_type_and_id(policy: Policy) -> None:
    first, second = records("bundle-batch-r4.json", policy)
    assert first.dedup_key == "MedicationAdministration/ma-batch-1/_history/1"
    assert first.administrations[0].drug == CodedValue(
        (Coding(RXNORM, "1807627", "morphine sulfate 4 MG/ML Injectable Solution"),)
    )
    infusion = second.administrations[0]
    assert infusion.drug.codings[0].code == "1736854"
    assert infusion.end == datetime(2026, 3, 2, 11, 0, tzinfo=EST)


def test_collection_bundle_r5_gives_encounter_and_administrations_in_order(policy: Policy) -> None:
    encounter, push, infusion = records("bundle-collection-r5.json", policy)
    (event,) = encounter.encounter_events
    assert (event.kind, event.patient_class, event.encounter.key) == (
        EncounterEventKind.UPDATE,
        PatientClass.EMERGENCY,
        "fhir|V2001",
    )
    assert push.administrations[0].drug == ONDANSETRON
    assert push.administrations[0].encounter_key == event.encounter.key
    drug = infusion.administrations[0].drug
    assert drug == CodedValue(
        (Coding(RXNORM, "2193", "ceftriaxone 1000 MG Injection"),), "ceftriaxone 1000 MG Injection"
    )
    assert infusion.administrations[0].method.is_empty


def test_message_bundle_skips_header_and_patient(policy: Policy) -> None:
    encounter, admin = records("bundle-message-r4.json", policy)
    assert encounter.dedup_key.startswith("Encounter/V1001/")
    assert encounter.encounter_events[0].encounter.facility == "GENHOSP"
    assert admin.administrations[0].encounter_key == "fhir|V1001"
    assert admin.administrations[0].method == IVP


def test_searchset_bundle_resolves_included_medication(policy: Policy) -> None:
    first, second = records("bundle-searchset-r4.json", policy)
    assert first.administrations[0].drug.codings[0].code == "1807627"
    assert second.administrations[0].drug == ONDANSETRON


def test_a_bad_administration_is_rejected_on_its_own_and_the_rest_of_the_bundle_kept(policy: Policy) -> None:
    raw = read("reject-unknown-status-bundle-one-bad.json")
    found = read_fhir(raw, policy)
    assert [r.administrations[0].source.message_id for r in found.records] == ["MedicationAdministration/ma-rej-18"]
    ((part, error),) = [(p.part, p.error) for p in found.rejects]
    assert (part, type(error)) == ("entry[1]", errors.UnknownStatus)
    assert error.detail == "Bundle.entry[1]: MedicationAdministration.status not in the status mapping"
    with pytest.raises(errors.UnknownStatus):  # parse_fhir: one fate per document
        records("reject-unknown-status-bundle-one-bad.json", policy)


# --- encounters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "patient_class", "at", "facility"),
    [
        (
            "encounter-r4-finished-emer.json",
            EncounterEventKind.CLOSE,
            PatientClass.EMERGENCY,
            datetime(2026, 3, 2, 13, 20, tzinfo=EST),
            "GENHOSP",
        ),
        (
            "encounter-r4-in-progress-amb.json",
            EncounterEventKind.UPDATE,
            PatientClass.OUTPATIENT,
            datetime(2026, 3, 2, 7, 55, tzinfo=EST),
            "GENHOSP",
        ),
        (
            "encounter-r4-finished-obsenc.json",
            EncounterEventKind.CLOSE,
            PatientClass.OBSERVATION,
            datetime(2026, 3, 2, 20, 0, tzinfo=EST),
            "GENHOSP",
        ),
        (
            "encounter-r4-in-progress-imp.json",
            EncounterEventKind.UPDATE,
            PatientClass.INPATIENT,
            datetime(2026, 3, 2, 12, 0, tzinfo=EST),
            "GENHOSP",
        ),
        (
            "encounter-r5-completed-obsenc.json",
            EncounterEventKind.CLOSE,
            PatientClass.OBSERVATION,
            datetime(2026, 3, 2, 19, 45, tzinfo=CET),
            "Sample Community Hospital",
        ),
        (
            "encounter-r5-discharged-amb.json",
            EncounterEventKind.CLOSE,
            PatientClass.OUTPATIENT,
            datetime(2026, 3, 2, 10, 30, tzinfo=CET),
            "Sample Community Hospital",
        ),
        (
            "encounter-r5-in-progress-emer.json",
            EncounterEventKind.UPDATE,
            PatientClass.EMERGENCY,
            datetime(2026, 3, 2, 6, 15, tzinfo=CET),
            "Sample Community Hospital",
        ),
        (
            "encounter-r5-in-progress-imp.json",
            EncounterEventKind.UPDATE,
            PatientClass.INPATIENT,
            datetime(2026, 3, 2, 10, 0, tzinfo=CET),
            "Sample Community Hospital",
        ),
    ],
)
def test_encounters(
    name: str, kind: EncounterEventKind, patient_class: PatientClass, at: datetime, facility: str, policy: Policy
) -> None:
    (record,) = records(name, policy)
    assert record.administrations == ()
    (event,) = record.encounter_events
    assert isinstance(event, EncounterEvent)
    assert (event.kind, event.patient_class, event.at, event.at.utcoffset() if event.at else None) == (
        kind,
        patient_class,
        at,
        at.utcoffset(),
    )
    visit = json.loads(read(name))["id"]
    assert event.encounter.key == f"fhir|{visit}"
    assert (event.encounter.visit_number, event.encounter.assigning_authority) == (visit, "fhir")
    assert event.encounter.patient_id in {"PT0001", "PT0002"}
    assert event.encounter.facility == facility
    assert event.payer_ids == ()


def test_encounter_class_the_mapping_does_not_know_is_other(policy: Policy) -> None:
    raw = edited("encounter-r4-in-progress-amb.json", **{"class": {"code": "HH"}})
    assert parse_fhir(raw, policy)[0].encounter_events[0].patient_class is PatientClass.OTHER


# --- rejects -------------------------------------------------------------------------------------

REJECTS = {
    "reject-not-json.json": errors.InvalidFhir,
    "reject-invalid-unknown-element.json": errors.InvalidFhir,
    "reject-invalid-bundle-unknown-resource-type.json": errors.InvalidFhir,
    "reject-invalid-no-zone.json": errors.InvalidFhir,
    "reject-invalid-contained-missing.json": errors.InvalidFhir,
    "reject-invalid-mixed-versions.json": errors.InvalidFhir,
    "reject-invalid-message-without-header.json": errors.InvalidFhir,
    "reject-invalid-period-end-before-start.json": errors.InvalidFhir,
    "reject-unsupported-patient.json": errors.UnsupportedMessageType,
    "reject-unsupported-bundle-document.json": errors.UnsupportedMessageType,
    "reject-unsupported-bundle-no-administrations.json": errors.UnsupportedMessageType,
    "reject-unsupported-transaction-delete.json": errors.UnsupportedMessageType,
    "reject-missing-encounter-key-r4-no-context.json": errors.MissingEncounterKey,
    "reject-missing-encounter-key-r5-no-encounter.json": errors.MissingEncounterKey,
    "reject-missing-encounter-key-episode-of-care.json": errors.MissingEncounterKey,
    "reject-missing-field-no-effective.json": errors.MissingField,
    "reject-missing-field-r5-no-occurence.json": errors.MissingField,
    "reject-unknown-status-given.json": errors.UnknownStatus,
    "reject-unknown-status-encounter-r4-completed.json": errors.UnknownStatus,
    "reject-unknown-status-bundle-one-bad.json": errors.UnknownStatus,
    "reject-bad-timestamp-year-only.json": errors.BadTimestamp,
}


def _strings(node: object) -> set[str]:
    if isinstance(node, dict):
        return {s for key, value in node.items() if key not in ("resourceType", "type") for s in _strings(value)}
    if isinstance(node, list):
        return {s for item in node for s in _strings(item)}
    return {node} if isinstance(node, str) and len(node) >= 4 else set()


@pytest.mark.parametrize(("name", "error"), sorted(REJECTS.items()))
def test_rejects(name: str, error: type[AdapterError], policy: Policy) -> None:
    with pytest.raises(error) as caught:
        records(name, policy)
    assert type(caught.value) is error
    try:
        values = _strings(json.loads(read(name)))
    except json.JSONDecodeError:
        values = set()
    leaked = {v for v in values if v in caught.value.detail}
    assert not leaked, f"detail carries input values: {leaked}"


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        # an element the models do not know is never named: the sender chose the name
        ("reject-invalid-unknown-element.json", "MedicationAdministration: unknown element (extra_forbidden)"),
        ("reject-invalid-bundle-unknown-resource-type.json", "Bundle.entry[0].resource.resourceType"),
        ("reject-invalid-no-zone.json", "MedicationAdministration.effectiveDateTime"),
        ("reject-missing-field-no-effective.json", "effective[x] absent"),
        ("reject-unknown-status-given.json", "MedicationAdministration.status"),
        ("reject-not-json.json", "not JSON"),
    ],
)
def test_reject_details_name_the_element(name: str, detail: str, policy: Policy) -> None:
    with pytest.raises(AdapterError) as caught:
        records(name, policy)
    assert detail in caught.value.detail


def test_oversize_input_is_rejected_unread(policy: Policy) -> None:
    raw = read("reject-oversize.json")
    assert len(raw) > 1024
    with pytest.raises(errors.OversizeInput):
        parse_fhir(raw, policy, max_bytes=1024)
    assert parse_fhir(raw, policy)[0].administrations  # fine under the default limit
    with pytest.raises(errors.OversizeInput):
        parse_fhir(b" " * ((1 << 20) + 1), policy)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"[]", errors.InvalidFhir),
        (b'"MedicationAdministration"', errors.InvalidFhir),
        (b'{"resourceType": 5}', errors.InvalidFhir),
        (b"{}", errors.InvalidFhir),
        (b"", errors.InvalidFhir),
        (b"\xff\xfe{", errors.InvalidFhir),
        (b'{"resourceType": "ChargeItem"}', errors.UnsupportedMessageType),
        # NDJSON (bulk export) is split into lines by the archive reader; two lines are not one document
        (b'{"resourceType": "Encounter"}\n{"resourceType": "Encounter"}\n', errors.InvalidFhir),
        (b'{"resourceType": "Bundle", "type": "collection", "entry": 5}', errors.InvalidFhir),
    ],
)
def test_malformed_documents(raw: bytes, error: type[AdapterError], policy: Policy) -> None:
    with pytest.raises(error):
        parse_fhir(raw, policy)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        # fhir.resources accepts these; the adapter's own JSON type checks do not
        ({"effectiveDateTime": 1772460000}, errors.InvalidFhir),
        ({"medicationCodeableConcept": '{"text": "x"}'}, errors.InvalidFhir),
        ({"dosage": {"dose": {"value": "4", "unit": "mg"}}}, errors.InvalidFhir),
        ({"effectiveDateTime": "2026-03-02T09:00:60-05:00"}, errors.BadTimestamp),
        ({"effectiveDateTime": "2026-03"}, errors.BadTimestamp),
        ({"effectiveDateTime": None, "effectivePeriod": {"end": "2026-03-02T09:00:00Z"}}, errors.MissingField),
        ({"status": "unknown-code"}, errors.UnknownStatus),
        ({"context": {"reference": "urn:uuid:6f1a3c2e-0000-4000-8000-00000000000f"}}, errors.MissingEncounterKey),
        ({"context": {"display": "somewhere"}}, errors.MissingEncounterKey),
        ({"meta": {"versionId": "1", "lastUpdated": "2026-03-02"}}, errors.InvalidFhir),
        (
            {
                "extension": [
                    {
                        "url": "https://fhir-ehr.cerner.com/r4/StructureDefinition/infuse-over-time",
                        "valueQuantity": {"value": 2, "code": "d"},
                    }
                ]
            },
            errors.InvalidFhir,
        ),
        (
            {
                "extension": [
                    {
                        "url": "https://fhir-ehr.cerner.com/r4/StructureDefinition/infuse-over-time",
                        "valueQuantity": {"value": 1e300, "code": "min"},
                    }
                ]
            },
            errors.InvalidFhir,
        ),
        ({"contained": [{"resourceType": "NotAResource", "id": "x"}]}, errors.InvalidFhir),
        ({"contained": [{"resourceType": "Coding", "id": "x"}]}, errors.InvalidFhir),
        # fhir.resources raises a bare AttributeError for a primitive extension sent as a JSON string
        ({"_status": "5"}, errors.InvalidFhir),
        ({"_effectiveDateTime": "[1]"}, errors.InvalidFhir),
    ],
)
def test_edge_cases_rejected(changes: dict[str, Any], error: type[AdapterError], policy: Policy) -> None:
    with pytest.raises(error):
        parse_fhir(edited("r4-push-method-v2-0165-ivp.json", **changes), policy)


def test_r5_with_both_spellings_of_occurrence_is_invalid(policy: Policy) -> None:
    raw = edited("r5-push-method-v2-0165-ivp.json", occurrenceDateTime="2026-03-02T08:11:00+01:00")
    with pytest.raises(errors.InvalidFhir, match="occurrenceDateTime"):
        parse_fhir(raw, policy)


def test_r5_occurence_timing_is_a_missing_field(policy: Policy) -> None:
    raw = edited(
        "r5-push-method-v2-0165-ivp.json",
        occurenceDateTime=None,
        occurenceTiming={"event": ["2026-03-02T08:10:00+01:00"]},
    )
    with pytest.raises(errors.MissingField, match="occurenceTiming"):
        parse_fhir(raw, policy)


def test_nine_digit_fractions_are_truncated_to_microseconds(policy: Policy) -> None:
    raw = edited("r4-push-method-v2-0165-ivp.json", effectiveDateTime="2026-03-02T09:00:00.123456789-05:00")
    assert parse_one(raw, policy).start == datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=EST)


def test_zero_length_period_has_no_end(policy: Policy) -> None:
    raw = edited(
        "r4-push-method-v2-0165-ivp.json",
        effectiveDateTime=None,
        effectivePeriod={"start": "2026-03-02T09:00:00-05:00", "end": "2026-03-02T09:00:00-05:00"},
    )
    admin = parse_one(raw, policy)
    assert admin.end is None


# --- pairing with the HL7 rendering of the same encounters ---------------------------------------

PAIRED = json.loads((SAMPLES / "paired" / "expected.json").read_text(encoding="utf-8"))


def _codings(value: CodedValue, policy: Policy) -> list[list[str]]:
    return [[policy.canonical_system(c.system), c.code, c.display] for c in value.codings]


@pytest.mark.parametrize("name", ["paired-01", "paired-02", "paired-03"])
def test_paired_encounters_match_the_expected_table(name: str, policy: Policy) -> None:
    expected = PAIRED[name]
    found = [a for r in records(f"paired/{name}.json", policy) for a in r.administrations]
    assert [a.source.message_id for a in found] == [
        f"MedicationAdministration/{e['fhir_id']}" for e in expected["administrations"]
    ]
    for admin, want in zip(found, expected["administrations"], strict=True):
        got = {
            "fhir_id": admin.source.message_id.split("/", 1)[1],
            "drug": _codings(admin.drug, policy),
            "drug_text": admin.drug.text,
            "route": _codings(admin.route, policy),
            "route_text": admin.route.text,
            "method": _codings(admin.method, policy),
            "method_text": admin.method.text,
            "start": admin.start.isoformat(),
            "end": admin.end.isoformat() if admin.end else None,
            "status": admin.status.value,
        }
        assert got == want
        assert admin.encounter_key == f"fhir|{expected['visit_number']}"
