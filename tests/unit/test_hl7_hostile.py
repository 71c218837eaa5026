"""HL7 v2 hostile inputs (issue #12): glued messages, structure, identifiers, BOMs, the time window.

Each rejection is asserted by code and by a detail that names a field or rule, never a value.
"""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from connector.adapters import errors
from connector.adapters.archive import read_stream
from connector.adapters.dispatch import parse_record
from connector.adapters.hl7v2 import parse_hl7
from connector.adapters.sanity import DEFAULT_WINDOW, DEFAULT_WINDOW_TEXT, TimeWindow, parse_window
from connector.cli.main import cli
from connector.config import collect, load
from connector.model import ParsedRecord
from connector.policy.model import Policy
from connector.policy.site import SiteProfile

ZONE = ZoneInfo("America/New_York")
BOM = b"\xef\xbb\xbf"


def ras(
    visit: str = "V2001",
    control: str = "C1",
    drug: str = "313002",
    start: str = "20260302101500",
    *,
    mrn: str = "MRN2001^^^GENHOSP^MR",
    facility: str = "GENHOSP",
    sent: str = "20260302101500",
    extra: tuple[str, ...] = (),
) -> str:
    """A valid one-push RAS^O17 (segments joined by CR, no final terminator); ``extra`` is appended."""
    return "\r".join(
        (
            f"MSH|^~\\&|EPIC|{facility}|IVPUSH|GENHOSP|{sent}||RAS^O17^RAS_O17|{control}|P|2.5.1",
            f"PID|1||{mrn}||ZEBRAFISH^QUINTESSA||19800101|F",
            f"PV1|1|E|ED^B12^01^GENHOSP||||9999^DOCTOR^TEST||||||||||||{visit}^^^GENHOSP^VN",
            "ORC|RE|ORD1^EPC|FIL1^EPC",
            f"RXA|0|1|{start}||{drug}^ondansetron 2 MG/ML^RXNORM|4|mg|||||||||||||CP",
            "RXR|IV^Intravenous^HL70162|||IVP^IV Push^HL70165",
            *extra,
        )
    )


def parse(text: str | bytes, policy: Policy, **kwargs: TimeWindow) -> ParsedRecord:
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return parse_hl7(raw, policy, ZONE, **kwargs)


def rejected(text: str | bytes, policy: Policy, **kwargs: TimeWindow) -> errors.AdapterError:
    with pytest.raises(errors.AdapterError) as caught:
        parse(text, policy, **kwargs)
    return caught.value


def test_the_base_message_is_valid(policy: Policy) -> None:
    (admin,) = parse(ras(), policy).administrations
    assert admin.encounter_key == "GENHOSP|V2001"


# --- class 1: message boundaries --------------------------------------------------------------


@pytest.mark.parametrize(
    ("second", "detail"),
    [
        ("MSH|^~\\&|EPIC|GENHOSP|IVPUSH|GENHOSP|20260302101500||RAS^O17|C2|P|2.5.1", "a second MSH inside segment 6"),
        ("MSH#^~\\&#EPIC#GENHOSP", "a second MSH inside segment 6"),  # other delimiters
        ("MSH|^~\\&", "a second MSH inside segment 6"),  # cut right after the encoding characters
        ("\u00a0MSH|^~\\&|EPIC", "a second MSH inside segment 6"),
    ],
)
def test_a_second_header_glued_to_the_last_segment_rejects_the_whole_input(
    policy: Policy, second: str, detail: str
) -> None:
    error = rejected(ras() + second, policy)
    assert (error.code, error.detail) == ("not_hl7", detail)


def test_a_batch_header_glued_in_a_segment_still_ends_at_the_next_msh_line(policy: Policy) -> None:
    glued = ras() + "BHS|^~\\&|EPIC\r" + ras(visit="V2002", control="C2")
    error = rejected(glued, policy)
    assert (error.code, error.detail) == ("not_hl7", "more than one MSH: send one message at a time")


def test_a_whole_second_message_glued_without_terminator_is_never_merged(policy: Policy) -> None:
    glued = ras() + ras(visit="V2002", control="C2", drug="1807627")
    error = rejected(glued, policy)
    assert error.code == "not_hl7"
    assert "V2002" not in error.detail
    assert "ZEBRAFISH" not in error.detail


@pytest.mark.parametrize("where", ["PID|1||MRN^^^GENHOSP^MRMSH|^~\\&|X", "NTE|1||see MSH|^~\\&|X|Y", "ZRX|1|MSH|^~\\&"])
def test_a_header_embedded_in_any_segment_is_not_hl7(policy: Policy, where: str) -> None:
    assert rejected(ras(extra=(where,)), policy).code == "not_hl7"


def test_text_that_merely_mentions_msh_is_not_a_boundary(policy: Policy) -> None:
    record = parse(ras(extra=("NTE|1||MSH segment resent\\F\\ see log",)), policy)
    assert len(record.administrations) == 1


@pytest.mark.parametrize(
    ("extra", "detail"),
    [
        (("PID|1||MRN2002^^^GENHOSP^MR||OTHER^PATIENT",), "a second PID"),
        (("PV1|1|E|||||||||||||||||V2002^^^GENHOSP^VN",), "a second PV1"),
        (("PID|1||MRN2002", "PV1|1|E|||||||||||||||||V2002", "ORC|RE", "RXA|0|1|20260302111500||1807627^m^RXNORM"),
         "a second PID"),
    ],
)  # fmt: skip
def test_a_ras_with_a_second_patient_or_visit_is_an_unsupported_structure(
    policy: Policy, extra: tuple[str, ...], detail: str
) -> None:
    error = rejected(ras(extra=extra), policy)
    assert (error.code, error.detail) == ("unsupported_structure", detail)


def test_a_patient_after_the_orders_of_a_ras_is_an_unsupported_structure(policy: Policy) -> None:
    lines = ras().split("\r")
    moved = "\r".join([lines[0], lines[3], lines[4], lines[5], lines[1], lines[2]])
    error = rejected(moved, policy)
    assert (error.code, error.detail) == ("unsupported_structure", "PID after the first order")


def test_an_adt_with_a_second_pid_or_pv1_is_rejected_whole(policy: Policy) -> None:
    adt = "MSH|^~\\&|EPIC|GENHOSP|IVPUSH|GENHOSP|20260302180000||ADT^A03|A1|P|2.5.1\rEVN|A03|20260302175500\r"
    adt += "PID|1||MRN2001\rPV1|1|E|||||||||||||||||V2001\r"
    assert len(parse(adt, policy).encounter_events) == 1
    assert rejected(adt + "PID|1||MRN2002\r", policy).code == "unsupported_structure"
    assert rejected(adt + "PV1|1|E|||||||||||||||||V2002\r", policy).code == "unsupported_structure"
    assert rejected(adt.rstrip("\r") + "MSH|^~\\&|EPIC", policy).code == "not_hl7"


def test_the_first_real_problem_is_named(policy: Policy) -> None:
    lines = ras().split("\r")
    no_rxa_no_key = "\r".join([lines[0], lines[1], "PV1|1|E", lines[3]])
    assert rejected(no_rxa_no_key, policy).code == "missing_field"  # not missing_encounter_key
    second_pid_no_rxa = "\r".join([lines[0], lines[1], lines[1], "PV1|1|E"])
    assert rejected(second_pid_no_rxa, policy).code == "unsupported_structure"
    wrong_type = ras().replace("RAS^O17^RAS_O17", "ORM^O01") + "\rPID|1"
    assert rejected(wrong_type, policy).code == "unsupported_message_type"


# --- class 3: identifiers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "detail"),
    [
        (ras(visit="\u00a0"), "PV1-19 empty or only whitespace"),
        (ras(visit="  "), "PV1-19 empty or only whitespace"),
        (ras(visit="V20\\X00\\01"), "PV1-19 holds control characters"),
        (ras(visit="V2001\x07"), "PV1-19 holds control characters"),
        (ras(visit="V\u202e2001"), "PV1-19 holds control characters"),
        (ras(visit="V2001^^^\u3000"), "PV1-19 CX.4 empty or only whitespace"),
        (ras(control=" \u2003 "), "MSH-10 empty or only whitespace"),
        (ras(control="C\\X0D\\1"), "MSH-10 holds control characters"),
        (ras(facility="GEN\x01HOSP"), "MSH-4 holds control characters"),
        (ras(mrn="MRN\\X00\\2001"), "PID-3 holds control characters"),
    ],
)
def test_broken_identifiers_are_bad_identifier_naming_the_field(policy: Policy, message: str, detail: str) -> None:
    error = rejected(message, policy)
    assert (error.code, error.detail) == ("bad_identifier", detail)


def test_no_visit_number_is_missing_encounter_key_only_where_the_site_chain_stops_at_the_fields(
    policy: Policy,
) -> None:
    message = ras(visit="").replace("PID|1||MRN2001^^^GENHOSP^MR||", "PID|1||MRN2001||") + "\r"
    (admin,) = parse(message, policy).administrations  # the default chain has service steps
    assert admin.encounter_key == ""
    fields_only = replace(policy, site=SiteProfile(identity_chain=("PV1-19", "PID-18", "PV1-50")))
    error = rejected(message, fields_only)
    assert (error.code, error.detail) == ("missing_encounter_key", "none of PV1-19, PID-18, PV1-50 carries a number")


def test_an_account_number_fallback_is_checked_too(policy: Policy) -> None:
    message = ras(visit="").replace("||19800101|F", "||19800101|F||||||||||\u00a0")
    assert (rejected(message, policy).detail) == "PID-18 empty or only whitespace"
    good = ras(visit="").replace("||19800101|F", "||19800101|F||||||||||\u00a0A77\u00a0")
    (admin,) = parse(good, policy).administrations
    assert admin.encounter_key == "GENHOSP|A77"


def test_identifiers_are_trimmed_of_unicode_whitespace(policy: Policy) -> None:
    record = parse(ras(visit="\u00a0V2001\u3000", mrn="\u2003MRN2001 ", control=" C1 "), policy)
    (admin,) = record.administrations
    assert admin.encounter_key == "GENHOSP|V2001"
    encounter = record.encounter_events[0].encounter
    assert (encounter.visit_number, encounter.patient_id) == ("V2001", "MRN2001")
    assert admin.source.message_id == "C1"
    assert parse(ras(control="C1\\X0D\\"), policy).dedup_key.endswith("|C1")  # trailing CR: whitespace, trimmed
    assert parse(ras(mrn=""), policy).encounter_events[0].encounter.patient_id == ""  # PID-3 is optional


def test_an_empty_msh10_stays_missing_field(policy: Policy) -> None:
    assert rejected(ras(control=""), policy).code == "missing_field"


# --- class 6: byte-order marks ----------------------------------------------------------------


def test_a_bom_before_a_message_or_its_mllp_frame_is_dropped(policy: Policy) -> None:
    for raw in (BOM + ras().encode(), b"\x0b" + BOM + ras().encode() + b"\x1c\r", BOM + b"\x0b" + ras().encode()):
        assert parse(raw, policy).administrations[0].encounter_key == "GENHOSP|V2001"


@pytest.mark.parametrize("newline", [b"\r", b"\n", b"\r\n"])
def test_a_bom_started_file_with_a_bom_before_every_message_is_every_message(policy: Policy, newline: bytes) -> None:
    messages = [ras(visit=f"V20{n}", control=f"C{n}").replace("\r", newline.decode()).encode() for n in range(10, 13)]
    data = b"".join(BOM + message + newline for message in messages)
    records = list(read_stream(io.BytesIO(data), "file.hl7"))
    keys = [parse_record(r, policy, ZONE, 1 << 20)[0].administrations[0].encounter_key for r in records]
    assert keys == ["GENHOSP|V2010", "GENHOSP|V2011", "GENHOSP|V2012"]
    assert records[1].position == f"byte {len(BOM + messages[0] + newline) + len(BOM)}"


def test_a_bom_before_a_json_document_is_dropped_before_parsing() -> None:
    (record,) = read_stream(io.BytesIO(BOM + b'\n{"resourceType": "Encounter"}'), "x.json")
    assert record.format == "fhir"
    assert not record.data.strip().startswith(BOM)


# --- class 8: the time window -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "where"),
    [
        (ras(start="99991231235959"), "RXA-3"),
        (ras(start="00010101"), "RXA-3"),
        (ras(start="18991231"), "RXA-3"),
        (ras(sent="22000101000000+0000"), "MSH-7"),
        (ras().replace("||CP", "||CP||99990101"), "RXA-22"),
        (ras().replace("RXA|0|1|20260302101500|", "RXA|0|1|20260302101500|30000101|"), "RXA-4"),
        ("MSH|^~\\&|E|GENHOSP|I|G|20260302||ADT^A03|A1|P|2.5\rEVN|A03|00010101\rPV1|1|E|||||||||||||||||V1\r", "EVN-2"),
    ],
)
def test_times_outside_the_default_window_are_bad_timestamp(policy: Policy, message: str, where: str) -> None:
    error = rejected(message, policy)
    assert error.code == "bad_timestamp"
    assert error.detail.startswith(where)


def test_the_window_is_a_parameter_and_its_edges_are_inclusive_then_exclusive(policy: Policy) -> None:
    narrow = parse_window("2026-03-02T15:15:00..2026-03-03")
    assert parse(ras(sent="20260302101500-0500", start="20260302101500-0500"), policy, window=narrow)
    assert rejected(ras(start="20260302101459-0500"), policy, window=narrow).code == "bad_timestamp"
    assert rejected(ras(start="20260303000000+0000"), policy, window=narrow).code == "bad_timestamp"
    assert TimeWindow(datetime(1900, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)) == DEFAULT_WINDOW


@pytest.mark.parametrize("text", ["2020-01-01", "2020-01-01..", "2021-01-01..2020-01-01", "1900..2200", "a..b"])
def test_a_malformed_window_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="time window"):
        parse_window(text)


def test_replay_time_window_option(tmp_path: Path) -> None:
    path = tmp_path / "one.hl7"
    path.write_bytes(ras().encode())
    runner = CliRunner()
    bad = runner.invoke(cli, ["replay", str(path), "--time-window", "2030-01-01"])
    assert bad.exit_code == 2
    assert "--time-window" in bad.output
    done = runner.invoke(cli, ["replay", str(path), "--zone", "UTC", "--time-window", "2027-01-01..2028-01-01"])
    assert done.exit_code == 0
    assert "bad_timestamp x1" in done.output
    done = runner.invoke(cli, ["replay", str(path), "--zone", "UTC"])
    assert "rejects: 0" in done.output


def test_consume_reads_the_window_from_settings_and_refuses_a_malformed_one() -> None:
    settings, problems = collect(environ={"IVPUSH_CODING__TIME_WINDOW": " 2020-01-01..2021-01-01"})
    assert problems == ()
    assert settings is not None
    assert settings.coding.time_window == "2020-01-01..2021-01-01"
    assert load(None, {}, environ={}).coding.time_window == DEFAULT_WINDOW_TEXT
    _, problems = collect(environ={"IVPUSH_CODING__TIME_WINDOW": "2021-01-01..2020-01-01"})
    assert len(problems) == 1
    assert "IVPUSH_CODING__TIME_WINDOW" in str(problems[0])
    assert "FROM must be before TO" in str(problems[0])
