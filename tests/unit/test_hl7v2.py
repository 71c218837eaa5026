"""HL7 v2 inbound adapter: every sample parsed with its key fields, rejects, reader details, fuzz."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from ci import skip_unless_ci
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.adapters import errors
from connector.adapters.errors import AdapterError
from connector.adapters.hl7v2 import parse_hl7
from connector.adapters.hl7v2.encoding import Syntax, unescape
from connector.adapters.hl7v2.framing import read_message
from connector.adapters.hl7v2.timestamps import parse_dtm
from connector.model import AdminStatus, CodedValue, EncounterEventKind, ParsedRecord, PatientClass, SourceRef
from connector.policy.model import Policy

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "hl7"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "samples" / "hl7"
ZONE = ZoneInfo("America/New_York")
VERBATIM = (
    "epic-shaped-ras-o17-given.hl7",
    "jahis-ras-o17-infusion-pump.hl7",
    "jahis-ras-o17-oral.hl7",
    "meditech-shaped-ras-o17-delete-lf.hl7",
    "uhn-cgta-ras-o17-multi-admin.hl7",
)
MAX_BYTES = {"reject-oversize-input.hl7": 1024}  # samples read with a smaller limit


def read(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def parse(raw: bytes, policy: Policy, position: str = "", **kwargs: int) -> ParsedRecord:
    return parse_hl7(raw, policy, ZONE, position, **kwargs)


def coded(value: CodedValue) -> str:
    if value.codings:
        return f"{value.codings[0].system}|{value.codings[0].code}"
    return f"text:{value.text}" if value.text else ""


# --- the table: expected key fields per sample -----------------------------------------------------


@dataclass(frozen=True)
class A:
    drug: str  # first coding "SYSTEM|CODE", or "text:…" when uncoded
    route: str  # first coding "SYSTEM|CODE", "text:…", or "" when no RXR
    start: str  # isoformat, with the offset sent or the site zone's offset
    end: str = ""
    status: str = "given"
    method: tuple[str, ...] = ()  # every method coding, RXR-4 first, then RXR-3


@dataclass(frozen=True)
class Expect:
    file: str
    key: str = ""
    admins: tuple[A, ...] = ()
    event: str = "seen"
    patient_class: str | None = None
    at: str = ""
    payer_ids: tuple[str, ...] = ()
    reject: str = ""


OND = "RXNORM|313002"
MORPHINE = "RXNORM|1807627"
SALINE = "RXNORM|1736854"
IV = "HL70162|IV"
PUSH = ("HL70165|IVP",)
ENC = "GENHOSP|V1001"
SENT = "2026-03-02T10:15:00-05:00"


def t(hhmm: str, day: str = "2026-03-02", offset: str = "-05:00") -> str:
    return f"{day}T{hhmm}:00{offset}"


def uhn(hhmm: str) -> str:
    return t(hhmm, "2012-04-25", "-04:00")


def jahis(hhmmss: str) -> str:
    return f"2011-07-01T{hhmmss}-04:00"


NITRO = "1.3.6.1.4.1.12201.102.2|NITRO"


def push_at(hhmm: str, status: str = "given") -> tuple[A, ...]:
    return (A(OND, IV, t(hhmm), status=status, method=PUSH),)


def ras(
    file: str,
    admins: tuple[A, ...],
    key: str = ENC,
    cls: str = "emergency",
    at: str = SENT,
    payer_ids: tuple[str, ...] = (),
) -> Expect:
    return Expect(file, key, admins, "seen", cls, at, payer_ids)


def adt(file: str, event: str, cls: str, at: str, key: str = ENC, payers: tuple[str, ...] = ()) -> Expect:
    return Expect(file, key, (), event, cls, at, payers)


def reject(file: str, code: str) -> Expect:
    return Expect(file, reject=code)


EXPECTED = [
    # verbatim public samples (shared/samples/hl7)
    ras(
        "uhn-cgta-ras-o17-multi-admin.hl7",
        (
            A(NITRO, "HL70162|INJ", uhn("01:01"), uhn("02:01")),
            A(NITRO, "HL70162|INJ", uhn("02:01"), uhn("03:01")),
            A("text:fish oil", "text:Intravenous", uhn("01:01"), uhn("02:01")),
            A("text:fish oil", "text:Intravenous", uhn("02:01"), uhn("03:01")),
        ),
        key="1.3.6.1.4.1.12201|284675",
        cls="inpatient",
        at="2012-05-01T11:31:00-04:00",  # sent at -05:00, shown at the facility zone's offset (EDT)
    ),
    ras(
        "meditech-shaped-ras-o17-delete-lf.hl7",
        (A("L|POT20/100", IV, t("23:06", "2017-06-09", "-04:00"), status="deleted"),),
        key="COCNW|AF1002484898",
        cls="inpatient",
        at=t("23:07", "2017-06-09", "-04:00"),
    ),
    # these three send neither PV1-19 nor PID-18 nor PV1-50: keyed "" for the service's identity
    # chain steps (order link, ADT visit window, site fallback); see test_hl7_identity.py
    ras(
        "epic-shaped-ras-o17-given.hl7",
        (A("ERX|40840090", IV, t("10:15")),),
        key="",
        cls="inpatient",
        at=t("10:15"),
    ),
    ras(
        "jahis-ras-o17-infusion-pump.hl7",
        tuple(
            A(f"HOT9|{code}", IV, jahis("08:05:21"), jahis("13:05:43"), method=("HL70164|IVP",))
            for code in ("620007329", "620002559")
        ),
        key="",
        cls="inpatient",
        at=jahis("11:38:13.225000"),
    ),
    ras(
        "jahis-ras-o17-oral.hl7",
        (A("HOT9|108665201", "HL70162|P0", jahis("08:30:00")), A("HOT9|110626901", "HL70162|P0", jahis("08:30:00"))),
        key="",
        cls="inpatient",
        at=jahis("11:38:13.225000"),
    ),
    # Epic-shaped
    ras("epic-ras-o17-one-push.hl7", push_at("10:15")),
    ras("epic-ras-o17-given-text.hl7", (A("ERX|40840090", IV, t("11:15")),), key="GENHOSP|V1002", cls="inpatient"),
    ras("epic-ras-o17-held.hl7", (A(OND, IV, t("12:00"), status="not_given"),)),
    ras("epic-ras-o17-refused.hl7", (A(OND, IV, t("12:15"), status="not_given"),)),
    ras(
        "epic-ras-o17-three-admins.hl7",
        (
            A(OND, IV, t("09:00"), method=PUSH),
            A(MORPHINE, IV, t("09:30"), method=PUSH),
            A(SALINE, IV, t("10:00"), t("11:00"), method=("HL70165|INF",)),
        ),
    ),
    ras(
        "epic-ras-o17-two-orders.hl7",
        (A(OND, IV, t("13:00"), method=PUSH), A(MORPHINE, "HL70162|IM", t("13:15"))),
    ),
    # Cerner-shaped: local route dictionaries, piggyback, pump vs push
    ras(
        "cerner-ras-o17-ivpb.hl7",
        (A("RXNORM|2193", "MERCYRTE|IVPB", t("14:05"), t("14:35"), method=("HL70165|IVPB",)),),
        key="MERCY|FIN5001",
        cls="outpatient",
        at=t("14:00"),
    ),
    ras(
        "cerner-ras-o17-iv-push-local-text.hl7",
        (A("RXNORM|3264", "text:IV PUSH", t("14:10")),),
        key="MERCY|FIN5002",
        cls="outpatient",
        at=t("14:00"),
    ),
    ras(
        "cerner-ras-o17-pump-device.hl7",
        (A(SALINE, IV, t("14:15"), t("16:15"), method=("HL70164|IVP",)),),
        key="MERCY|FIN5003",
        cls="outpatient",
        at=t("14:00"),
    ),
    ras(
        "cerner-ras-o17-push-and-pump.hl7",
        (A(OND, IV, t("14:20"), method=("HL70165|IVP", "HL70164|IVP")),),
        key="MERCY|FIN5004",
        cls="outpatient",
        at=t("14:00"),
    ),
    # Meditech-shaped: terminators, PID-18 account numbers, NTE and Z-segments
    ras("meditech-ras-o17-crlf.hl7", (A("L|KETOR30", IV, t("14:55")),), key="COMMHOSP|CH9001", at=t("15:00")),
    ras("meditech-ras-o17-lf-zseg.hl7", (A("L|FAMO20", IV, t("15:10")),), key="COMMACCT|CH9002", at=t("15:00")),
    ras("mllp-framed-ras-o17.hl7", push_at("10:15")),
    # versions and action codes
    ras(
        "ras-o01-v23.hl7",
        (A("NDC|00641607725", IV, t("07:55")),),
        key="GENHOSP|V2301",
        cls="outpatient",
        at=t("08:00"),
    ),
    ras(
        "ras-o01-v231-account-number.hl7",
        (A("LOCAL|0.9NS", IV, t("08:10")),),
        key="GENACCT|ACCT777",
        cls="outpatient",
        at=t("08:15"),
    ),
    ras("ras-o17-v26-action-a.hl7", push_at("10:15")),
    ras("ras-o17-v26-action-u.hl7", push_at("10:15"), at=t("11:30")),
    ras("ras-o17-v26-action-d.hl7", push_at("10:15", "deleted"), at=t("11:45")),
    ras("ras-o17-v27-action-x-truncation.hl7", push_at("10:15")),
    ras("ras-o17-v28-partial.hl7", (A(SALINE, IV, t("10:20"), t("10:45"), status="partial"),)),
    ras("ras-o17-deleted-unknown-status.hl7", (A(OND, IV, t("10:15"), status="deleted"),)),
    # escapes and character sets
    ras("ras-o17-escape-t.hl7", (A("LOCALFORM|LOC123", "HL70162|PO", t("10:15")),)),
    ras("ras-o17-escape-f-s.hl7", (A("LOCALFORM|LOC124", IV, t("10:15")),)),
    ras("ras-o17-escape-x0d0a-br.hl7", (A("LOCALFORM|LOC125", IV, t("10:15"), method=PUSH),)),
    ras("ras-o17-latin1.hl7", (A("LOCALFORM|LOC126", IV, t("10:15")),)),
    ras("ras-o17-utf8.hl7", (A("LOCALFORM|LOC127", IV, t("10:15"), method=PUSH),)),
    ras(
        "ras-o17-iso2022jp.hl7",
        (A("HOT9|620007329", IV, t("10:15"), t("15:15"), method=("HL70164|IVP",)),),
        key="JPHOSP|V9001",
        cls="inpatient",
    ),
    # timestamps
    ras(
        "ras-o17-date-only-summer.hl7",
        (A(OND, IV, "2026-07-04T00:00:00-04:00"),),
        at="2026-07-04T08:30:00-04:00",
    ),
    ras(
        "ras-o17-fraction-offset.hl7",
        # sent at +0000, shown at the facility zone's offset: the same instant
        (A(OND, IV, "2026-03-02T10:15:00.500000-05:00", t("10:17"), method=PUSH),),
        at="2026-03-02T10:15:00.123400-05:00",
    ),
    ras("ras-o17-end-equals-start.hl7", push_at("10:15")),
    ras("ras-o17-infusion-rate.hl7", (A(SALINE, IV, t("10:15"), t("11:15"), method=("HL70165|INF",)),)),
    # grouping, identities, skipped segments
    ras(
        "ras-o17-in1-payers.hl7",
        push_at("10:15"),
        payer_ids=("MCR", "CMS001", "MEDICARE PART B"),  # the primary coverage only (IN1-1 = 1)
    ),
    ras("ras-o17-duplicate-identity.hl7", push_at("10:15") + push_at("11:15")),
    ras("ras-o17-no-rxr.hl7", (A(OND, "", t("10:15")),)),
    ras(
        "ras-o17-obx-nte-z-between.hl7",
        (A(OND, IV, t("10:15"), method=PUSH), A(MORPHINE, "HL70162|IM", t("10:30"))),
    ),
    ras("ras-o17-alt-coding-original-text.hl7", push_at("10:15")),
    ras("ras-o17-rxe-rxr-ignored.hl7", push_at("10:15")),
    ras(
        "ras-o17-rxa-run-then-orc.hl7",
        (A(OND, "", t("10:15")), A(OND, "", t("10:20")), A(MORPHINE, IV, t("10:30"), method=PUSH)),
    ),
    # ADT
    adt("adt-a03-discharge.hl7", "close", "emergency", t("17:55")),
    adt(
        "adt-a04-register-in1.hl7",
        "update",
        "emergency",
        t("09:10"),
        payers=("MCR", "CMS001", "MEDICARE"),
    ),
    adt("adt-a08-update-in1.hl7", "update", "outpatient", t("12:00"), payers=("UHC", "UHC900", "UNITED HEALTHCARE")),
    adt("adt-a06-to-inpatient.hl7", "class_change", "inpatient", t("16:00")),
    adt("adt-a07-to-outpatient-no-evn.hl7", "class_change", "outpatient", t("18:00")),
    adt("adt-a08-observation.hl7", "update", "observation", t("13:00")),
    adt("adt-a04-unmapped-class.hl7", "update", "other", t("13:05")),
    adt("adt-a03-account-number-crlf.hl7", "close", "emergency", t("19:00"), key="GENHOSP|ACC555"),
    # one malformed sample (at least) per reject code
    reject("reject-not-hl7-json.hl7", "not_hl7"),
    reject("reject-not-hl7-duplicate-delimiters.hl7", "not_hl7"),
    reject("reject-not-hl7-two-messages.hl7", "not_hl7"),
    reject("reject-not-hl7-bad-segment-id.hl7", "not_hl7"),
    reject("reject-unsupported-orm-o01.hl7", "unsupported_message_type"),
    # named when A01 was not read and when a RAS without a visit number was rejected here; both
    # are read now (A01 like A04/A08; the missing key is the service's to resolve or reject)
    adt("adt-a01-admit.hl7", "update", "inpatient", t("16:00")),
    ras("ras-no-visit-number.hl7", (A(OND, IV, t("10:15")),), key=""),
    reject("reject-bad-timestamp-rxa3-iso.hl7", "bad_timestamp"),
    reject("reject-bad-timestamp-rxa3-month-13.hl7", "bad_timestamp"),
    reject("reject-bad-timestamp-msh7.hl7", "bad_timestamp"),
    reject("reject-bad-timestamp-rxa3-year-only.hl7", "bad_timestamp"),
    reject("reject-unknown-status.hl7", "unknown_status"),
    reject("reject-missing-field-no-rxa.hl7", "missing_field"),
    reject("reject-missing-field-rxa3-empty.hl7", "missing_field"),
    reject("reject-missing-field-rxa5-empty.hl7", "missing_field"),
    reject("reject-missing-field-msh10-empty.hl7", "missing_field"),
    reject("reject-oversize-input.hl7", "oversize_input"),
]
BY_FILE = {e.file: e for e in EXPECTED}


def test_every_sample_file_has_a_row_in_the_table_and_every_row_a_file() -> None:
    files = {p.name for p in SAMPLES.glob("*.hl7")}
    assert files == set(BY_FILE)
    assert len(EXPECTED) == len(BY_FILE)


def test_the_project_writes_at_least_forty_samples_of_its_own() -> None:
    assert len(set(BY_FILE) - set(VERBATIM)) >= 40


@pytest.mark.parametrize("name", VERBATIM)
def test_the_public_samples_are_byte_for_byte_copies(name: str) -> None:
    if not SHARED.is_dir():
        skip_unless_ci("shared samples not laid out beside the repository (../shared/samples)")
    assert read(name) == (SHARED / name).read_bytes()


@pytest.mark.parametrize("expect", EXPECTED, ids=lambda e: e.file)
def test_each_sample_parses_to_its_expected_key_fields(expect: Expect, policy: Policy) -> None:
    raw = read(expect.file)
    kwargs = {"max_bytes": MAX_BYTES[expect.file]} if expect.file in MAX_BYTES else {}
    if expect.reject:
        with pytest.raises(AdapterError) as caught:
            parse(raw, policy, **kwargs)
        assert caught.value.code == expect.reject
        return
    record = parse(raw, policy, expect.file, **kwargs)
    got = tuple(
        A(
            coded(a.drug),
            coded(a.route),
            a.start.isoformat(),
            a.end.isoformat() if a.end else "",
            a.status.value,
            tuple(f"{c.system}|{c.code}" for c in a.method.codings),
        )
        for a in record.administrations
    )
    assert got == expect.admins
    assert {a.encounter_key for a in record.administrations} <= {expect.key}
    (event,) = record.encounter_events
    assert event.encounter.key == expect.key
    assert event.kind.value == expect.event
    assert (event.patient_class.value if event.patient_class else None) == expect.patient_class
    assert (event.at.isoformat() if event.at else "") == expect.at
    assert event.payer_ids == expect.payer_ids


# --- the UHN grouping and identities ---------------------------------------------------------------


def test_uhn_rxa_rxa_rxr_runs_take_the_route_of_the_rxr_that_closes_them(policy: Policy) -> None:
    admins = parse(read("uhn-cgta-ras-o17-multi-admin.hl7"), policy).administrations
    assert [coded(a.route) for a in admins] == ["HL70162|INJ", "HL70162|INJ", "text:Intravenous", "text:Intravenous"]
    assert [a.route.codings[0].display for a in admins[:2]] == ["Injection", "Injection"]
    # the RXE's own RXRs (ordered routes) come before any RXA and are not an administration's route
    assert all(a.drug.texts()[0] in ("Nitroglycerine", "fish oil") for a in admins)


def test_repeated_identities_in_one_message_get_distinct_ids_that_are_the_same_on_every_parse(
    policy: Policy,
) -> None:
    raw = read("uhn-cgta-ras-o17-multi-admin.hl7")
    first = [a.id for a in parse(raw, policy).administrations]
    assert len(set(first)) == 4
    assert first == [a.id for a in parse(raw, policy).administrations]
    dup = [a.id for a in parse(read("ras-o17-duplicate-identity.hl7"), policy).administrations]
    assert len(set(dup)) == 2
    # the first occurrence keeps the plain identity, so a later message about it alone still matches
    (single,) = parse(read("epic-ras-o17-one-push.hl7"), policy).administrations
    assert dup[0] == single.id


def test_an_update_and_a_delete_of_an_administration_carry_its_id_and_a_newer_version(policy: Policy) -> None:
    added = parse(read("ras-o17-v26-action-a.hl7"), policy).administrations[0]
    updated = parse(read("ras-o17-v26-action-u.hl7"), policy).administrations[0]
    deleted = parse(read("ras-o17-v26-action-d.hl7"), policy).administrations[0]
    assert added.id == updated.id == deleted.id
    assert added.version < updated.version < deleted.version
    assert updated.status is AdminStatus.GIVEN and updated.dose == Decimal("8")
    assert deleted.status is AdminStatus.DELETED
    assert added.version == "2026-03-02T15:15:00+00:00|2026-03-02T15:16:00+00:00"


def test_version_keeps_an_empty_entry_time_part_when_rxa_22_is_not_sent(policy: Policy) -> None:
    (admin,) = parse(read("ras-o17-escape-t.hl7"), policy).administrations
    assert admin.version == "2026-03-02T15:15:00+00:00|"


# --- fields of one administration ---------------------------------------------------------------------


def test_one_push_carries_every_field_the_rules_read(policy: Policy) -> None:
    record = parse(read("epic-ras-o17-one-push.hl7"), policy, "file.hl7@0")
    (admin,) = record.administrations
    assert record.dedup_key == "EPIC|GENHOSP|E0001"
    assert admin.drug.codings[0].display == "ondansetron 2 MG/ML Injectable Solution"
    assert admin.drug.text == "ondansetron 2 MG/ML Injectable Solution"
    assert admin.route.codings[0].display == "Intravenous"
    assert admin.method.codings[0].display == "IV Push"
    assert admin.site == "LA"
    assert admin.dose == Decimal("4")
    assert admin.dose_unit == "mg"
    assert admin.has_rate is False
    assert admin.department == "ED"
    assert admin.encounter_key == "GENHOSP|V1001"
    assert admin.source == SourceRef("hl7v2", "E0001", "file.hl7@0")
    ref = record.encounter_events[0].encounter
    assert (ref.visit_number, ref.assigning_authority, ref.patient_id, ref.facility) == (
        "V1001",
        "GENHOSP",
        "MRN0001",
        "GENHOSP",
    )


def test_local_times_get_the_site_zones_offset_then_and_sent_offsets_move_to_it(policy: Policy) -> None:
    (local,) = parse(read("epic-ras-o17-one-push.hl7"), policy).administrations
    # A fixed offset (the zone's at that moment), not the zone: durations are elapsed time (DST-safe).
    assert local.start.utcoffset() == ZONE.utcoffset(datetime(2026, 3, 2, 10, 15))
    assert local.start.tzinfo is not ZONE
    assert local.start.replace(tzinfo=None) == datetime(2026, 3, 2, 10, 15)
    (offset,) = parse(read("ras-o17-fraction-offset.hl7"), policy).administrations
    # sent at +0000: the same instant, shown at the site zone's offset then (issue #13 part 7)
    assert offset.start == datetime(2026, 3, 2, 15, 15, 0, 500000, tzinfo=UTC)
    assert (offset.start.hour, offset.start.utcoffset()) == (10, timedelta(hours=-5))
    assert offset.end is not None and offset.end.utcoffset() == timedelta(hours=-5)


def test_the_alternate_triplet_and_original_text_are_kept(policy: Policy) -> None:
    (admin,) = parse(read("ras-o17-alt-coding-original-text.hl7"), policy).administrations
    assert [(c.system, c.code, c.display) for c in admin.drug.codings] == [
        ("RXNORM", "313002", "ondansetron 2 MG/ML"),
        ("ERX", "7700", "ONDANSETRON INJ"),
    ]
    assert admin.drug.text == "Zofran 4 mg IV push"
    assert [(c.system, c.code) for c in admin.route.codings] == [("HL70162", "IV"), ("NCIT", "C38276")]


def test_meditech_delete_keeps_the_local_code_and_the_ndc(policy: Policy) -> None:
    (admin,) = parse(read("meditech-shaped-ras-o17-delete-lf.hl7"), policy).administrations
    assert [(c.system, c.code) for c in admin.drug.codings] == [("L", "POT20/100"), ("NDC", "00338070548A")]
    assert admin.status is AdminStatus.DELETED
    assert admin.end is None
    assert admin.route.text == "INTRAVEN."
    assert admin.site == "VAD"
    assert admin.start.utcoffset() == timedelta(hours=-4)  # the site zone's offset then (EDT), fixed


def test_route_without_a_system_defaults_to_table_0162_and_keeps_the_code_as_sent(policy: Policy) -> None:
    (admin,) = parse(read("ras-o01-v23.hl7"), policy).administrations
    assert [(c.system, c.code, c.display) for c in admin.route.codings] == [("HL70162", "IV", "")]


def test_method_and_device_keep_their_own_tables_so_ivp_push_and_ivp_pump_differ(policy: Policy) -> None:
    (both,) = parse(read("cerner-ras-o17-push-and-pump.hl7"), policy).administrations
    assert [(c.system, c.code, c.display) for c in both.method.codings] == [
        ("HL70165", "IVP", "IV Push"),
        ("HL70164", "IVP", "IV Pump"),
    ]
    (pump,) = parse(read("cerner-ras-o17-pump-device.hl7"), policy).administrations
    assert pump.method.text == "IV Pump"
    assert pump.has_rate is True


def test_escapes_are_decoded_in_drug_names(policy: Policy) -> None:
    def drug(name: str) -> CodedValue:
        return parse(read(name), policy).administrations[0].drug

    assert drug("ras-o17-escape-t.hl7").text == "ACETAMINOPHEN&CODEINE 300-30 MG"
    assert drug("ras-o17-escape-f-s.hl7").text == "HEPARIN 100 UNIT|ML ^ FLUSH"
    crlf = drug("ras-o17-escape-x0d0a-br.hl7")
    assert crlf.codings[0].display == "DILTIAZEM\r\n5 MG/ML"
    assert crlf.text == "DILTIAZEM\nINJECTION \\ VIAL"


def test_character_sets_follow_msh_18(policy: Policy) -> None:
    def text(name: str) -> str:
        return parse(read(name), policy).administrations[0].drug.text

    assert text("ras-o17-latin1.hl7") == "SOLUTÉ GLUCOSÉ 5 %"
    assert text("ras-o17-utf8.hl7") == "MÉTOCLOPRAMIDE 10 mg/2 mL – INJ"
    assert text("ras-o17-iso2022jp.hl7") == "ソリタＴ３号輸液５００ｍＬ"


def test_statuses_free_text_and_table_0322_and_rxa_21_delete(policy: Policy) -> None:
    def status(name: str) -> AdminStatus:
        return parse(read(name), policy).administrations[0].status

    assert status("epic-ras-o17-given-text.hl7") is AdminStatus.GIVEN
    assert status("epic-ras-o17-held.hl7") is AdminStatus.NOT_GIVEN
    assert status("epic-ras-o17-refused.hl7") is AdminStatus.NOT_GIVEN
    assert status("ras-o17-v28-partial.hl7") is AdminStatus.PARTIAL
    assert status("ras-o01-v231-account-number.hl7") is AdminStatus.GIVEN  # empty RXA-20: complete
    assert status("ras-o17-v27-action-x-truncation.hl7") is AdminStatus.GIVEN
    assert status("ras-o17-deleted-unknown-status.hl7") is AdminStatus.DELETED


def test_adt_events_carry_the_class_and_payers(policy: Policy) -> None:
    record = parse(read("adt-a04-register-in1.hl7"), policy)
    assert record.administrations == ()
    (event,) = record.encounter_events
    assert event.kind is EncounterEventKind.UPDATE
    assert event.patient_class is PatientClass.EMERGENCY
    assert record.dedup_key == "EPIC|GENHOSP|ADT2"


# --- the verbatim samples without an encounter number, with one spliced into PV1-19 -----------------


def with_visit_number(raw: bytes, visit: str) -> bytes:
    terminator = b"\r\n" if b"\r\n" in raw else b"\r" if b"\r" in raw else b"\n"
    lines = raw.split(terminator)
    for index, line in enumerate(lines):
        if line.startswith(b"PV1|"):
            fields = line.split(b"|")
            fields += [b""] * (20 - len(fields))
            fields[19] = visit.encode()
            lines[index] = b"|".join(fields)
    return terminator.join(lines)


def test_epic_shaped_sample_with_a_visit_number_reads_given_and_erx_codes(policy: Policy) -> None:
    record = parse(with_visit_number(read("epic-shaped-ras-o17-given.hl7"), "V5555"), policy)
    (admin,) = record.administrations
    assert admin.encounter_key == "RORMC|V5555"
    assert (admin.drug.codings[0].system, admin.drug.codings[0].code) == ("ERX", "40840090")
    assert coded(admin.route) == "HL70162|IV" and admin.route.text == "intravenous"
    assert admin.start == datetime(2026, 3, 2, 10, 15, tzinfo=ZONE)
    assert admin.status is AdminStatus.GIVEN
    assert (admin.dose, admin.dose_unit) == (Decimal("100"), "mL")
    assert record.encounter_events[0].patient_class is PatientClass.INPATIENT
    assert record.dedup_key == "EPIC|RORMC|1772464500000"


def test_jahis_infusion_sample_reads_the_pump_device_and_utf8_despite_its_iso_2022_label(policy: Policy) -> None:
    record = parse(with_visit_number(read("jahis-ras-o17-infusion-pump.hl7"), "V7"), policy)
    assert [a.drug.codings[0].code for a in record.administrations] == ["620007329", "620002559"]
    for admin in record.administrations:
        assert coded(admin.route) == "HL70162|IV"
        assert [(c.system, c.code) for c in admin.method.codings] == [("HL70164", "IVP")]
        assert admin.start == datetime(2011, 7, 1, 8, 5, 21, tzinfo=ZONE)
        assert admin.end == datetime(2011, 7, 1, 13, 5, 43, tzinfo=ZONE)
        assert admin.status is AdminStatus.GIVEN
        assert admin.has_rate is True
        assert admin.encounter_key == "SEND|V7"
    assert record.administrations[0].drug.text.startswith("ソリタ")


def test_jahis_oral_sample_reads_two_tablets_with_start_equal_to_end(policy: Policy) -> None:
    record = parse(with_visit_number(read("jahis-ras-o17-oral.hl7"), "V8"), policy)
    assert [(a.drug.codings[0].code, a.dose) for a in record.administrations] == [
        ("108665201", Decimal("1")),
        ("110626901", Decimal("2")),
    ]
    assert all(coded(a.route) == "HL70162|P0" and a.end is None for a in record.administrations)


# --- framing, terminators, limits --------------------------------------------------------------------


def test_terminators_and_mllp_framing_do_not_change_the_result(policy: Policy) -> None:
    raw = read("epic-ras-o17-one-push.hl7")
    variants = [
        raw,
        raw.replace(b"\r", b"\n"),
        raw.replace(b"\r", b"\r\n"),
        b"\x0b" + raw + b"\x1c\r",
        b"\x0b" + raw.replace(b"\r", b"\n") + b"\x1c\r\n",
        raw.rstrip(b"\r"),
        b"\xef\xbb\xbf" + raw,
    ]
    results = {parse(v, policy) for v in variants}
    assert len(results) == 1


def test_inputs_over_one_mebibyte_are_rejected_unread_by_default(policy: Policy) -> None:
    raw = read("epic-ras-o17-one-push.hl7")
    padded = raw + b"NTE|1||" + b"x" * (1024 * 1024 - len(raw) - 8) + b"\r"
    assert len(padded) == 1024 * 1024
    parse(padded, policy)
    with pytest.raises(errors.OversizeInput):
        parse(padded + b"x", policy)


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (errors.NotHL7, "not_hl7"),
        (errors.UnsupportedMessageType, "unsupported_message_type"),
        (errors.MissingEncounterKey, "missing_encounter_key"),
        (errors.BadTimestamp, "bad_timestamp"),
        (errors.UnknownStatus, "unknown_status"),
        (errors.MissingField, "missing_field"),
        (errors.OversizeInput, "oversize_input"),
        (errors.InvalidFhir, "invalid_fhir"),
    ],
)
def test_each_reject_has_its_stable_code(cls: type[AdapterError], code: str) -> None:
    error = cls("RXA-3 not a timestamp")
    assert isinstance(error, AdapterError)
    assert error.code == code
    assert error.detail == "RXA-3 not a timestamp"


@pytest.mark.parametrize("name", [e.file for e in EXPECTED if e.reject])
def test_reject_details_name_fields_and_carry_no_values_from_the_message(name: str, policy: Policy) -> None:
    raw = read(name)
    with pytest.raises(AdapterError) as caught:
        parse(raw, policy, max_bytes=MAX_BYTES.get(name, 1 << 20))
    shown = str(caught.value) + caught.value.detail
    for value in ("TEST", "PATIENT", "MRN", "V1001", "ORD100", "ondansetron", "yesterday", "Maybe", "2026"):
        assert value not in shown


# --- the reader ---------------------------------------------------------------------------------------

SYNTAX = Syntax()


@pytest.mark.parametrize(
    ("escaped", "plain"),
    [
        ("A\\T\\B", "A&B"),
        ("A\\F\\B\\S\\C\\R\\D\\E\\E", "A|B^C~D\\E"),
        ("LINE\\X0D0A\\NEXT", "LINE\r\nNEXT"),
        ("A\\.br\\B", "A\nB"),
        ("\\H\\BOLD\\N\\", "BOLD"),
        ("C:\\temp\\file", "C:\\temp\\file"),  # unknown sequence: kept as sent
        ("TRAILING\\", "TRAILING\\"),  # unterminated: kept as sent
        ("\\XZZ\\", "\\XZZ\\"),  # not hex: kept
        ("\\XC3A9\\", "é"),  # bytes in the message's character set (UTF-8)
    ],
)
def test_unescape_decodes_hl7_escape_sequences(escaped: str, plain: str) -> None:
    assert unescape(escaped, SYNTAX) == plain


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026", datetime(2026, 1, 1, tzinfo=ZONE)),
        ("202603", datetime(2026, 3, 1, tzinfo=ZONE)),
        ("20260302", datetime(2026, 3, 2, tzinfo=ZONE)),
        ("2026030210", datetime(2026, 3, 2, 10, tzinfo=ZONE)),
        ("202603021015", datetime(2026, 3, 2, 10, 15, tzinfo=ZONE)),
        ("20260302101530", datetime(2026, 3, 2, 10, 15, 30, tzinfo=ZONE)),
        ("20260302101530.1", datetime(2026, 3, 2, 10, 15, 30, 100000, tzinfo=ZONE)),
        ("20260302101530.1234", datetime(2026, 3, 2, 10, 15, 30, 123400, tzinfo=ZONE)),
        ("202603021015+0530", datetime(2026, 3, 2, 10, 15, tzinfo=timezone(timedelta(hours=5, minutes=30)))),
        ("20260302-0000", datetime(2026, 3, 2, tzinfo=UTC)),
    ],
)
def test_dtm_precisions_and_offsets(text: str, expected: datetime) -> None:
    got = parse_dtm(text, ZONE, "RXA-3")
    assert got == expected
    assert got.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "20261",
        "2026-03-02",
        "20260230",
        "20260302246000",
        "202603021015+2400",
        "202603021015+0060",
        "20260302101530.",
        "20260302101530.1234567",
        "2026030210.5",
        "202603021015-05",
        "２０２６０３０２",
        "20260302 ",
    ],
)
def test_malformed_dtm_is_a_bad_timestamp(text: str) -> None:
    with pytest.raises(errors.BadTimestamp):
        parse_dtm(text, ZONE, "RXA-3")


def test_dtm_without_a_day_is_rejected_where_a_day_is_needed() -> None:
    with pytest.raises(errors.BadTimestamp, match="RXA-3 has no day"):
        parse_dtm("202603", ZONE, "RXA-3", need_day=True)


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 12, 31)))
@settings(max_examples=200, deadline=None)
def test_dtm_round_trips_any_local_time_to_the_second(moment: datetime) -> None:
    moment = moment.replace(microsecond=0, fold=0)  # the text carries no fold: fold=0 is the documented reading
    parsed = parse_dtm(moment.strftime("%Y%m%d%H%M%S"), ZONE, "RXA-3")
    # Same wall reading, with the offset the zone gives it (fold=0 in a fold or a gap): compared
    # field by field, since PEP 495 makes an inter-zone == false for fold and gap readings.
    assert parsed.replace(tzinfo=None) == moment
    assert parsed.utcoffset() == moment.replace(tzinfo=ZONE).utcoffset()


def test_reader_reads_fields_components_and_msh_numbering() -> None:
    message = read_message(read("uhn-cgta-ras-o17-multi-admin.hl7"))
    assert message.syntax.codec == "latin-1"
    assert message.msh.field(1) == "|"
    assert message.msh.value(9, 2) == "O17"
    pv1 = message.first("PV1")
    assert pv1 is not None
    assert pv1.components(19)[:4] == ["284675", "", "", "1.3.6.1.4.1.12201"]
    assert [s.name for s in message.every("RXA")] == ["RXA"] * 4


# --- fuzz: no input whatsoever lets anything but an AdapterError escape --------------------------------

CORPUS = sorted(p.read_bytes() for p in SAMPLES.glob("*.hl7"))
DELIMITERS = b"|^~\\&\r\n\x0b\x1c"
OPERATIONS = ("truncate", "flip", "separator", "insert", "delete", "duplicate")


def mutate(data: bytearray, op: str, at: int, amount: int, payload: bytes) -> None:
    at = min(at, len(data))
    if op == "truncate":
        del data[at:]
    elif op == "flip" and at < len(data):
        data[at] ^= amount % 255 + 1
    elif op == "separator":
        data[at:at] = bytes([DELIMITERS[amount % len(DELIMITERS)]]) * (amount % 3 + 1)
    elif op == "insert":
        data[at:at] = payload
    elif op == "delete":
        del data[at : at + amount % 40 + 1]
    elif op == "duplicate":
        data[at:at] = data[at : at + amount % 200 + 1]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 4))):
        mutate(
            data,
            draw(st.sampled_from(OPERATIONS)),
            draw(st.integers(0, len(data))),
            draw(st.integers(0, 1000)),
            draw(st.binary(max_size=16)),
        )
    return bytes(data)


FUZZ_INPUTS = st.one_of(
    mutated(),
    st.binary(max_size=300),
    st.binary(max_size=300).map(lambda tail: b"MSH|^~\\&|" + tail),
    st.binary(max_size=40).map(lambda f: b"MSH|^~\\&|A|B|||20260302||RAS^O17|1|P|2.5\rPV1||E" + f + b"\rRXA|" + f),
)


def only_adapter_errors(raw: bytes, policy: Policy) -> None:
    try:
        parse_hl7(raw, policy, ZONE)
    except AdapterError as error:
        assert error.code and error.detail
    except Exception as error:  # the point of the test: name the input that escaped
        raise AssertionError(f"{type(error).__name__} escaped for input {raw!r}") from error


@given(raw=FUZZ_INPUTS)
@settings(max_examples=2_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzzed_bytes_raise_nothing_but_adapter_errors(raw: bytes, policy: Policy) -> None:
    only_adapter_errors(raw, policy)


class Stream:
    """A small deterministic number stream (xorshift64*) seeded by hypothesis."""

    def __init__(self, seed: int) -> None:
        self.state = seed or 0x9E3779B97F4A7C15

    def next(self, bound: int) -> int:
        x = self.state
        x ^= (x >> 12) & 0xFFFFFFFFFFFFFFFF
        x ^= (x << 25) & 0xFFFFFFFFFFFFFFFF
        x ^= (x >> 27) & 0xFFFFFFFFFFFFFFFF
        self.state = x
        return ((x * 0x2545F4914F6CDD1D) & 0xFFFFFFFFFFFFFFFF) % max(bound, 1)


BATCH = 10


@given(seed=st.integers(0, 2**64 - 1))
@settings(max_examples=1_000, deadline=None)
def test_ten_thousand_seeded_mutations_of_the_samples_raise_nothing_but_adapter_errors(
    seed: int, policy: Policy
) -> None:
    # Hypothesis draws are the slow part of fuzzing here, so each example derives BATCH
    # mutated inputs from one seed: 1,000 examples x 10 = 10,000 inputs in a few seconds.
    stream = Stream(seed)
    for _ in range(BATCH):
        data = bytearray(CORPUS[stream.next(len(CORPUS))])
        for _ in range(stream.next(6) + 1):
            payload = bytes(stream.next(256) for _ in range(stream.next(12)))
            op = OPERATIONS[stream.next(len(OPERATIONS))]
            mutate(data, op, stream.next(len(data) + 1), stream.next(1000), payload)
        only_adapter_errors(bytes(data), policy)
