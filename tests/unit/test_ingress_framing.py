"""MLLP framing, ACK building and the edge's cheap checks (no sockets, no broker)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from broker import RAS
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from connector.ingress import accept
from connector.ingress.accept import BadDocument, check_hl7, fhir_documents, framing_problem
from connector.ingress.ack import INTERNAL_ERROR, Header, Problem, build_ack, escape, read_header
from connector.ingress.listener import AckIds, answer_for
from connector.ingress.mllp import Frame, MllpDecoder, Oversize, Unframed, wrap
from connector.ingress.publisher import Stored
from connector.ingress.settings import Address, parse_address

NOW = datetime(2026, 3, 2, 8, 40, tzinfo=UTC)
STAMP = "20260302084000"


def ras(control: str = "CTRL-1", enc: int = 7) -> bytes:
    return RAS.format(stamp=STAMP, control=control, enc=enc, n=0, drug="7052^Morphine^RXNORM").encode()


def strict(ack: bytes) -> object:
    """The ACK parsed by hl7apy with strict validation, and validated."""
    message = parse_message(ack.decode("ascii"), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert message.validate()
    return message


# --- MLLP decoding ----------------------------------------------------------------------------


def test_frames_split_across_reads_and_several_in_one_read_come_out_in_order() -> None:
    decoder = MllpDecoder(1 << 20)
    stream = wrap(ras("A")) + wrap(ras("B")) + wrap(ras("C"))
    events = []
    for start in range(0, len(stream), 7):  # 7-byte reads cut frames and markers anywhere
        events += decoder.feed(stream[start : start + 7])
    assert events == [Frame(ras("A")), Frame(ras("B")), Frame(ras("C"))]
    assert not decoder.pending


def test_white_space_between_frames_is_ignored_and_a_lone_end_block_ends_a_frame() -> None:
    decoder = MllpDecoder(1 << 20)
    events = decoder.feed(b"\r\n " + b"\x0bONE\x1c" + b"\r\n\r" + b"\x0bTWO\x1c\r")
    assert events == [Frame(b"ONE"), Frame(b"TWO")]


def test_a_partial_frame_is_pending_until_its_end_block_arrives() -> None:
    decoder = MllpDecoder(1 << 20)
    assert decoder.feed(b"\x0bMSH|^~\\&|partial") == []
    assert decoder.pending
    assert decoder.feed(b" rest\x1c\r") == [Frame(b"MSH|^~\\&|partial rest")]


def test_an_oversize_frame_is_not_kept_but_reported_with_its_head_and_size_and_the_next_frame_is_read() -> None:
    decoder = MllpDecoder(100)
    big = ras("BIG") + b"\rNTE|1||" + b"x" * 5000
    events = decoder.feed(wrap(big)[:3000]) + decoder.feed(wrap(big)[3000:] + wrap(b"small"))
    assert len(events) == 2
    oversize = events[0]
    assert isinstance(oversize, Oversize)
    assert oversize.size == len(big)
    assert oversize.head.startswith(b"MSH|") and len(oversize.head) <= 4096
    assert events[1] == Frame(b"small")


def test_bytes_without_a_start_block_are_an_unframed_event_not_a_message() -> None:
    decoder = MllpDecoder(1 << 20)
    events = decoder.feed(ras("RAW") + b"\x1c\r")
    assert events == [Unframed(ras("RAW"), len(ras("RAW")))]


# --- the edge's checks ------------------------------------------------------------------------


def test_a_well_formed_message_with_a_control_id_is_accepted() -> None:
    assert check_hl7(ras(), 1 << 20) is None


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"not a message", "not_hl7"),
        (b"", "not_hl7"),
        (ras().replace(b"|CTRL-1|", b"||"), "missing_control_id"),
        (ras() + b"\rthis line is not a segment", "not_hl7"),
        (ras() + b"\r" + ras("SECOND"), "not_hl7"),
        (ras() + b"\rNTE|" + b"x" * 2000, "oversize_input"),
    ],
)
def test_what_cannot_be_accepted_is_rejected_ar_with_a_code(data: bytes, code: str) -> None:
    problem = check_hl7(data, 1000)
    assert problem is not None
    assert (problem.ack_code, problem.code) == ("AR", code)


def test_framing_problems_are_ar_and_name_the_limit_or_the_start_block() -> None:
    assert framing_problem(Oversize(b"", 10), 5).detail == "message larger than 5 bytes"
    assert framing_problem(Unframed(b"", 1), 5).code == "mllp_framing"


def test_unstored_jobs_are_answered_ae_and_stored_ones_aa() -> None:
    assert answer_for(Stored(True, "confirmed")) is None
    problem = answer_for(Stored(False, "broker_unavailable"))
    assert problem is not None
    assert (problem.ack_code, problem.hl7_error) == ("AE", INTERNAL_ERROR)
    assert "unreachable" in problem.detail


def test_fhir_bodies_are_a_resource_or_ndjson_lines_each_a_resource() -> None:
    assert fhir_documents(b'{"resourceType": "Bundle", "type": "batch"}', ndjson=False) == [
        b'{"resourceType": "Bundle", "type": "batch"}'
    ]
    body = b'\xef\xbb\xbf{"resourceType":"Encounter"}\n\n{"resourceType":"MedicationAdministration"}\r\n'
    assert fhir_documents(body, ndjson=True) == [
        b'{"resourceType":"Encounter"}',
        b'{"resourceType":"MedicationAdministration"}',
    ]


@pytest.mark.parametrize(
    ("body", "ndjson", "detail"),
    [
        (b"{not json", False, "the body is not valid JSON"),
        (b"[1, 2]", False, "the body is not a JSON object"),
        (b'{"id": "x"}', False, "the body has no resourceType"),
        (b'{"resourceType":"Encounter"}\n{"resourceType": ""}', True, "line 2 has no resourceType"),
        (b"\n \n", True, "no resource in the NDJSON body"),
    ],
)
def test_fhir_bodies_that_are_not_resources_are_refused_naming_where(body: bytes, ndjson: bool, detail: str) -> None:
    with pytest.raises(BadDocument) as caught:
        fhir_documents(body, ndjson)
    assert caught.value.detail == detail
    assert caught.value.code == "invalid_fhir"


# --- ACKs ---------------------------------------------------------------------------------------


def test_an_aa_answers_in_the_senders_syntax_swapping_sender_and_receiver_and_validates() -> None:
    ack = build_ack(read_header(ras("CTRL-9")), NOW, "ACK1")
    assert ack.split(b"\r")[:2] == [
        b"MSH|^~\\&|BILLING|GENHOSP|PYXIS|GENHOSP|20260302084000+0000||ACK^O17^ACK|ACK1|P|2.5.1",
        b"MSA|AA|CTRL-9",
    ]
    message = strict(ack)
    assert message.msa.msa_1.value == "AA"  # type: ignore[attr-defined]


@pytest.mark.parametrize("ack_code", ["AR", "AE"])
def test_an_error_ack_carries_an_err_segment_in_the_v251_layout_that_validates(ack_code: str) -> None:
    problem = Problem(ack_code, "missing_control_id", "MSH-10 | is ^ empty", 101, ("MSH", 10))
    ack = build_ack(read_header(ras("C-1")), NOW, "ACK2", problem)
    message = strict(ack)
    err = message.err  # type: ignore[attr-defined]
    assert message.msa.msa_1.value == ack_code  # type: ignore[attr-defined]
    assert message.msa.msa_2.value == "C-1"  # type: ignore[attr-defined]
    assert err.err_3.to_er7() == "101^Required field missing^HL70357"
    assert err.err_4.value == "E"
    assert err.err_2.to_er7() == "MSH^1^10"
    assert err.err_5.to_er7() == "missing_control_id^^99IVPUSH"
    assert err.err_7.to_er7() == "MSH-10 \\F\\ is \\S\\ empty"  # our own text, escaped
    assert b"ERR|MSH^1^10^101&Required field missing&HL70357|" in ack  # ERR-1 for v2.3/v2.4 receivers


def test_the_ack_uses_the_messages_own_delimiters_and_version() -> None:
    message = b"MSH#*!@%#LAB#FAC#RCV#RFAC#20260302##RAS*O17*RAS_O17#X-1#T#2.3.1*IT\rPID#1"
    header = read_header(message)
    assert header == Header("#*!@%", ("LAB", "FAC"), ("RCV", "RFAC"), "O17", "X-1", "T", "2.3.1")
    ack = build_ack(header, NOW, "A", Problem("AE", "unconfirmed", "no confirm # in time"))
    lines = ack.split(b"\r")
    assert lines[0] == b"MSH#*!@%#RCV#RFAC#LAB#FAC#20260302084000+0000##ACK*O17*ACK#A#T#2.3.1"
    assert lines[1] == b"MSA#AE#X-1#no confirm @F@ in time"
    assert lines[2].startswith(b"ERR#***100%Segment sequence error%HL70357##100*Segment sequence error*HL70357#E#")


def test_a_message_without_a_readable_header_still_gets_an_ack_with_defaults() -> None:
    for data in (b"", b"garbage", b"MSH|^^^^|x", b"\x0b\xef\xbb\xbfMSH"):
        header = read_header(data)
        assert header == Header()
        ack = build_ack(header, NOW, "A", Problem("AR", "not_hl7", "does not start with an MSH segment"))
        message = parse_message(ack.decode("ascii"), find_groups=True)  # MSA-2 has nothing to echo
        assert message.msa.msa_1.value == "AR"
        assert message.msh.msh_12.value == "2.5.1"


def test_a_header_is_read_past_a_bom_and_mllp_start_and_keeps_non_ascii_bytes_as_sent() -> None:
    header = read_header(b"\x0b\xef\xbb\xbfMSH|^~\\&|CAF\xc9|F|R|RF|2026||RAS^O17|Z9|P|2.5.1\r")
    assert header.control_id == "Z9"
    ack = build_ack(header, NOW, "A")
    assert b"|R|RF|CAF\xc9|F|" in ack  # echoed byte for byte


def test_our_text_is_escaped_and_made_ascii() -> None:
    assert escape("a|b^c~d\\e&f\r\né", "|^~\\&") == "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f???"


def test_ack_control_ids_are_unique_and_fit_msh_10() -> None:
    ids = AckIds()
    made = {ids.next(NOW) for _ in range(1000)}
    assert len(made) == 1000
    assert all(len(i) == 20 for i in made)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("0.0.0.0:2575", Address("0.0.0.0", 2575)),
        (":2575", Address("127.0.0.1", 2575)),
        ("2575", Address("127.0.0.1", 2575)),
        ("[::1]:8080", Address("::1", 8080)),
        ("host.example:0", Address("host.example", 0)),
    ],
)
def test_listener_addresses_default_to_loopback(text: str, address: Address) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["host", "host:", "host:99999", "[::1]8080", "host:-1"])
def test_bad_listener_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"port|IPv6"):
        parse_address(text)


def test_a_reader_failure_is_an_ar_naming_only_the_error_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_data: bytes, _max_bytes: int) -> None:
        raise ValueError("PATIENT^NAME in the message")

    monkeypatch.setattr(accept, "read_message", broken)
    problem = check_hl7(ras(), 1 << 20)
    assert problem is not None
    assert (problem.ack_code, problem.code, problem.detail) == (
        "AR",
        "unreadable",
        "the message could not be read (ValueError)",
    )
