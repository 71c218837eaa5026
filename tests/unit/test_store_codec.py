"""The storage codec: new fields round trip, rows written before them decode to their defaults."""

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from store_rows import OLD_ADMIN, OLD_ATTRS

from connector.model import Administration, CodedValue, Coding, Encounter, PatientClass, SourceRef
from connector.model.outcomes import AdministrationOutcome, HistoryEntry, OutcomeKind, Unmapped
from connector.store import codec

ZONE = timezone(timedelta(hours=-6))


def test_an_encounter_row_written_before_the_new_fields_decodes_to_their_defaults() -> None:
    encounter = codec.encounter_from_dicts(OLD_ATTRS, ())
    assert encounter.patient_class is PatientClass.OUTPATIENT  # stored outpatient stays outpatient
    assert (encounter.payer_ids, encounter.payer_at, encounter.location, encounter.class_hint) == ((), None, "", None)
    assert (encounter.account, encounter.account_at, encounter.account_version) == ("", None, "")
    assert codec.encounter_attrs_to_dict(encounter).items() >= OLD_ATTRS.items()


def test_the_new_encounter_fields_round_trip() -> None:
    encounter = Encounter(
        "FAC|V1",
        payer_ids=("PLAN-1", "AETNA"),
        payer_at=datetime(2026, 3, 2, 7, tzinfo=ZONE),
        location="ED",
        class_hint=PatientClass.INPATIENT,
    )
    assert encounter.patient_class is PatientClass.UNKNOWN
    assert codec.encounter_from_dicts(codec.encounter_attrs_to_dict(encounter), ()) == encounter


def test_the_account_round_trips_and_is_encoded_only_when_sent() -> None:
    bare = Encounter("FAC|V1", location="ED")
    assert not {"account", "account_at", "account_version"} & codec.encounter_attrs_to_dict(bare).keys()
    sent = replace(bare, account="ACCT-1", account_at=datetime(2026, 3, 2, 7, tzinfo=ZONE), account_version="v1")
    assert codec.encounter_from_dicts(codec.encounter_attrs_to_dict(sent), ()) == sent
    named_zone = replace(sent, account_at=datetime(2026, 3, 2, 7, tzinfo=ZoneInfo("America/Chicago")))
    stored = codec.as_stored_encounter(named_zone)
    assert stored.account_at is not None and stored.account_at == named_zone.account_at
    assert type(stored.account_at.tzinfo) is timezone  # what a store read gives back


def test_an_administration_row_written_before_the_new_fields_decodes_to_their_defaults() -> None:
    admin = codec.administration_from_dict(OLD_ADMIN)
    assert admin.ordered_minutes is None and admin.source == SourceRef("hl7v2", "MSG1", "RXA-1")
    assert codec.administration_to_dict(admin) == OLD_ADMIN  # and encodes as before


def test_ordered_minutes_and_the_source_file_round_trip() -> None:
    admin = Administration(
        "a1",
        "FAC|V1",
        CodedValue((Coding("RXNORM", "26225"),)),
        datetime(2026, 3, 2, 10, tzinfo=ZONE),
        ordered_minutes=30,
        source=SourceRef("fhir", "ma-1", "entry 2", "bundles/b.json"),
    )
    assert codec.administration_from_dict(codec.administration_to_dict(admin)) == admin


def test_outcomes_and_history_round_trip() -> None:
    outcome = AdministrationOutcome(
        "a1",
        OutcomeKind.NEEDS_REVIEW,
        "unmapped_route",
        "route IVX (HL70162) is not mapped",
        codes=("96365",),
        source=SourceRef("hl7v2", "MSG1", "RXR-1"),
        mappings=("mappings/drugs.yaml:40",),
        unmapped=(Unmapped("route", "HL70162", "IVX", "RXR-1"), Unmapped("payer", "", "ACME", "IN1-3")),
    )
    assert codec.outcome_from_dict(codec.outcome_to_dict(outcome)) == outcome
    assert codec.outcome_from_dict(codec.outcome_to_dict(AdministrationOutcome("a2", OutcomeKind.CODED, "coded", "")))
    entry = HistoryEntry("FAC|V1", 3, "FAC|V1#3", 1700000000.25, "change", b'{"lines": []}')
    assert codec.history_from_row(codec.history_to_row(entry)) == entry
