"""HL7 v2 encounter identity (issue #13 part 3): the site chain's message steps, hints, visit windows."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from ci import skip_unless_ci
from hl7_build import NEW_YORK, ORC, PID, RXR, adt, message, parse, pid, pv1, pv1_times, rxa, with_site

from connector.adapters import errors
from connector.model import EncounterEventKind, EncounterRef, IdentityHints, VisitWindow
from connector.policy.model import Policy

FIELDS_ONLY = ("PV1-19", "PID-18", "PV1-50")
SHARED = Path(__file__).resolve().parents[3] / "shared" / "samples" / "hl7"


def ras(*, patient: str = PID, visit: str = "", alternate: str = "", orders: tuple[str, ...] = (ORC,)) -> bytes:
    return message(patient, pv1(visit=visit, alternate=alternate), *orders, rxa(), RXR)


def key(raw: bytes, policy: Policy) -> str:
    record = parse(raw, policy)
    assert {a.encounter_key for a in record.administrations} == {record.encounter_events[0].encounter.key}
    return record.encounter_events[0].encounter.key


# --- the message steps, in the site's order ------------------------------------------------------


def test_each_message_step_keys_the_encounter_with_its_authority_else_msh_4(policy: Policy) -> None:
    assert key(ras(visit="V1^^^HOSPA"), policy) == "HOSPA|V1"  # PV1-19 with CX.4
    assert key(ras(visit="V1"), policy) == "GENHOSP|V1"  # PV1-19, MSH-4 authority
    assert key(ras(patient=pid(account="A1^^^ACCTS")), policy) == "ACCTS|A1"  # PID-18
    assert key(ras(alternate="ALT1"), policy) == "GENHOSP|ALT1"  # PV1-50
    assert key(ras(alternate="ALT1^^^ED&1.2.3&ISO"), policy) == "ED|ALT1"  # CX.4 HD.1


def test_the_default_chain_tries_pv1_19_then_pid_18_then_pv1_50(policy: Policy) -> None:
    everything = ras(patient=pid(account="A1"), visit="V1", alternate="ALT1")
    assert key(everything, policy) == "GENHOSP|V1"
    assert key(ras(patient=pid(account="A1"), alternate="ALT1"), policy) == "GENHOSP|A1"


def test_a_site_may_reorder_and_drop_the_message_steps(policy: Policy) -> None:
    everything = ras(patient=pid(account="A1"), visit="V1", alternate="ALT1")
    assert key(everything, with_site(policy, identity_chain=("PV1-50", "PV1-19"))) == "GENHOSP|ALT1"
    account_first = with_site(policy, identity_chain=("PID-18", "PV1-19", "order", "visit"))
    assert key(everything, account_first) == "GENHOSP|A1"
    # PV1-19 dropped from the chain: a message with only a visit number is not keyed by it
    no_visit_step = with_site(policy, identity_chain=("PID-18", "order", "visit"))
    assert parse(ras(visit="V1"), no_visit_step).unresolved is not None


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (ras(visit="\u00a0", patient=pid(account="A1")), "PV1-19 empty or only whitespace"),
        (ras(patient=pid(account="A\x071"), alternate="ALT1"), "PID-18 holds control characters"),
        (ras(alternate="ALT\\X00\\1"), "PV1-50 holds control characters"),
        (ras(alternate="ALT1^^^\u3000"), "PV1-50 CX.4 empty or only whitespace"),
    ],
)
def test_a_sent_but_broken_number_is_a_reject_never_a_fallback(policy: Policy, raw: bytes, detail: str) -> None:
    with pytest.raises(errors.BadIdentifier) as caught:
        parse(raw, policy)
    assert caught.value.detail == detail


# --- no number: hints for the service, or a reject where the site says so ------------------------------


def test_without_any_number_the_record_is_keyed_empty_with_hints_for_the_service(policy: Policy) -> None:
    orders = (
        "ORC|RE|ORD200^EPC|FIL200^EPC|GRP9^EPC",
        rxa("20260302111500"),
        RXR,
        "ORC|RE|ORD100^EPC|FIL100^EPC|GRP9^EPC",
    )
    raw = message(pid(patient="MRN7^^^CLINIC"), pv1(), *orders, rxa("20260302100500"), RXR, facility="GENHOSP")
    record = parse(raw, policy)
    assert [a.encounter_key for a in record.administrations] == ["", ""]
    (event,) = record.encounter_events
    assert event.encounter == EncounterRef("", "", "GENHOSP", "MRN7", "GENHOSP")
    assert record.unresolved == IdentityHints(
        authority="GENHOSP",
        placer_ids=("GENHOSP|GRP9", "GENHOSP|ORD100", "GENHOSP|ORD200"),  # ORC-2 and ORC-4, once each, sorted
        patient_key="CLINIC|MRN7",
        at=datetime(2026, 3, 2, 10, 5, tzinfo=NEW_YORK),  # the earliest RXA-3
    )
    assert record.order_ids == ()


def test_hints_take_the_patients_authority_from_msh_4_when_pid_3_names_none(policy: Policy) -> None:
    hints = parse(ras(patient=pid(patient="MRN7")), policy).unresolved
    assert hints is not None and hints.patient_key == "GENHOSP|MRN7"
    hints = parse(ras(patient=pid(patient="")), policy).unresolved
    assert hints is not None and hints.patient_key == ""


@pytest.mark.parametrize(
    ("chain", "fallback", "rejected"),
    [
        (("PV1-19", "PID-18", "PV1-50", "order", "visit"), "reject", False),
        (("PV1-19", "order"), "reject", False),
        (("PV1-19", "visit"), "reject", False),
        (FIELDS_ONLY, "patient_day", False),
        (FIELDS_ONLY, "reject", True),
    ],
)
def test_only_a_chain_without_service_steps_or_fallback_rejects_in_the_adapter(
    policy: Policy, chain: tuple[str, ...], fallback: str, rejected: bool
) -> None:
    site = with_site(policy, identity_chain=chain, fallback=fallback)
    if rejected:
        with pytest.raises(errors.MissingEncounterKey):
            parse(ras(), site)
    else:
        assert parse(ras(), site).unresolved is not None


def test_a_ras_with_a_visit_number_teaches_its_order_ids(policy: Policy) -> None:
    record = parse(ras(visit="V1^^^OTHER", orders=("ORC|RE|ORD100^EPC|FIL100^EPC|GRP9",)), policy)
    assert record.unresolved is None
    assert record.order_ids == ("GENHOSP|GRP9", "GENHOSP|ORD100")  # MSH-4, as the hints say it


def test_an_adt_without_a_number_changes_no_encounter_and_stays_missing_encounter_key(policy: Policy) -> None:
    with pytest.raises(errors.MissingEncounterKey):
        parse(adt("A08", PID, pv1()), policy)


# --- ADT visit windows ------------------------------------------------------------------------------


def test_an_admit_is_read_like_a_registration_with_its_visit_window(policy: Policy) -> None:
    visit = pv1_times(pv1(visit="V1", cls="I"), admitted="20260302150000", discharged="20260303120000")
    record = parse(adt("A01", PID, visit, "IN1|1|MCR|CMS001|MEDICARE"), policy)
    (event,) = record.encounter_events
    assert event.kind is EncounterEventKind.UPDATE
    assert (event.patient_class, event.location, event.payer_ids) == ("inpatient", "ED", ("MCR", "CMS001", "MEDICARE"))
    assert record.visit == VisitWindow(
        "GENHOSP|MRN0001",
        "GENHOSP|V1",
        datetime(2026, 3, 2, 15, tzinfo=NEW_YORK),
        datetime(2026, 3, 3, 12, tzinfo=NEW_YORK),
    )


def test_a_pre_admit_is_an_update_and_an_open_window_starts_at_the_event(policy: Policy) -> None:
    record = parse(adt("A05", PID, pv1(visit="V1")), policy)
    assert record.encounter_events[0].kind is EncounterEventKind.UPDATE
    assert record.visit == VisitWindow("GENHOSP|MRN0001", "GENHOSP|V1", datetime(2026, 3, 2, 16, tzinfo=NEW_YORK))


def test_a_discharge_closes_the_window_at_pv1_45_else_at_its_event(policy: Policy) -> None:
    admitted = pv1_times(pv1(visit="V1"), admitted="20260302080000")
    closed = parse(adt("A03", PID, admitted, event="20260302175500"), policy).visit
    assert closed is not None and closed.end == datetime(2026, 3, 2, 17, 55, tzinfo=NEW_YORK)
    assert closed.start == datetime(2026, 3, 2, 8, tzinfo=NEW_YORK)
    discharged = pv1_times(pv1(visit="V1"), discharged="20260302170000")
    stated = parse(adt("A03", PID, discharged, event="20260302175500"), policy).visit
    assert stated is not None and stated.end == datetime(2026, 3, 2, 17, tzinfo=NEW_YORK)


def test_no_patient_id_no_window_and_a_broken_admit_time_is_bad_timestamp(policy: Policy) -> None:
    assert parse(adt("A08", pid(patient=""), pv1(visit="V1")), policy).visit is None
    with pytest.raises(errors.BadTimestamp, match="PV1-44"):
        parse(adt("A01", PID, pv1_times(pv1(visit="V1"), admitted="2026-03-02")), policy)


# --- the shared public samples ------------------------------------------------------------------------


def shared(name: str) -> bytes:
    if not SHARED.is_dir():
        skip_unless_ci("shared samples not laid out beside the repository (../shared/samples)")
    return (SHARED / name).read_bytes()


def test_the_shared_samples_without_a_visit_number_are_left_to_the_service_with_their_hints(policy: Policy) -> None:
    epic = parse(shared("epic-shaped-ras-o17-given.hl7"), policy)
    assert epic.unresolved == IdentityHints(
        "RORMC", ("RORMC|900123",), "MC|E1234567", datetime(2026, 3, 2, 10, 15, tzinfo=NEW_YORK)
    )
    pump = parse(shared("jahis-ras-o17-infusion-pump.hl7"), policy).unresolved
    assert pump is not None
    assert (pump.authority, pump.placer_ids, pump.patient_key) == (
        "SEND",
        ("SEND|123456789012345", "SEND|123456789012345_01_001"),
        "SEND|9999013",
    )
    assert pump.at is not None and pump.at.isoformat() == "2011-07-01T08:05:21-04:00"
    oral = parse(shared("jahis-ras-o17-oral.hl7"), policy).unresolved
    assert oral is not None and oral.placer_ids == ("SEND|1", "SEND|123456789012345")


def test_the_shared_samples_with_a_number_are_keyed_and_teach_their_orders(policy: Policy) -> None:
    meditech = parse(shared("meditech-shaped-ras-o17-delete-lf.hl7"), policy)
    assert (meditech.administrations[0].encounter_key, meditech.order_ids) == (
        "COCNW|AF1002484898",
        ("COCNW|14494418",),
    )
    uhn = parse(shared("uhn-cgta-ras-o17-multi-admin.hl7"), policy)
    assert {a.encounter_key for a in uhn.administrations} == {"1.3.6.1.4.1.12201|284675"}
    assert uhn.order_ids == ("UHNG|777", "UHNG|7777")
    assert uhn.unresolved is None
    with pytest.raises(errors.UnsupportedMessageType):
        parse(shared("dft-p03-to-cerner.hl7"), policy)


def test_a_site_that_stops_at_the_fields_rejects_the_three_shared_samples(policy: Policy) -> None:
    site = with_site(policy, identity_chain=FIELDS_ONLY)
    for name in ("epic-shaped-ras-o17-given.hl7", "jahis-ras-o17-infusion-pump.hl7", "jahis-ras-o17-oral.hl7"):
        with pytest.raises(errors.MissingEncounterKey):
            parse(shared(name), site)
    assert parse(shared("meditech-shaped-ras-o17-delete-lf.hl7"), site).administrations


def test_hint_times_are_in_the_facility_zone(policy: Policy) -> None:
    chicago = with_site(policy, zones={"GENHOSP": ZoneInfo("America/Chicago")})
    hints = parse(message(PID, pv1(), ORC, rxa("20260302030000+0000"), RXR), chicago).unresolved
    assert hints is not None and hints.at is not None
    assert (hints.at.date().isoformat(), hints.at.utcoffset()) == ("2026-03-01", timedelta(hours=-6))
