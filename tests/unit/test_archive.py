import io

import pytest

from connector.adapters.archive import Record, read_stream

MSG1 = b"MSH|^~\\&|A|F|B|R|20260302101500||RAS^O17|1|P|2.5\rPID|1\rRXA|0|1|20260302101500"
MSG2 = b"MSH|^~\\&|A|F|B|R|20260302101600||RAS^O17|2|P|2.5\rPID|1\rRXA|0|1|20260302101600"


def records(data: bytes, max_bytes: int = 1 << 20) -> list[Record]:
    return list(read_stream(io.BytesIO(data), "test", max_bytes))


@pytest.mark.parametrize("terminator", [b"\r", b"\n", b"\r\n"])
def test_hl7_files_split_into_messages_whatever_the_terminator(terminator: bytes) -> None:
    data = (MSG1 + b"\r" + MSG2 + b"\r").replace(b"\r", terminator)
    found = records(data)
    assert [r.format for r in found] == ["hl7", "hl7"]
    assert [r.data for r in found] == [MSG1, MSG2]
    assert found[0].position == "byte 0"
    assert found[1].position == f"byte {data.index(b'MSH', 1)}"


def test_batch_envelopes_are_removed_and_every_message_kept() -> None:
    data = b"FHS|^~\\&\rBHS|^~\\&\r" + MSG1 + b"\r" + MSG2 + b"\rBTS|2\rFTS|1\r"
    assert [r.data for r in records(data)] == [MSG1, MSG2]


def test_mllp_captures_yield_one_record_per_frame_with_its_offset() -> None:
    data = b"\x0b" + MSG1 + b"\r\x1c\x0d" + b"\x0b" + MSG2 + b"\r\x1c\x0d"
    found = records(data)
    assert [r.data for r in found] == [MSG1 + b"\r", MSG2 + b"\r"]
    second = data.index(b"\x0b", 1)
    assert [r.position for r in found] == ["byte 0", f"byte {second}"]


def test_a_message_over_the_limit_is_cut_and_flagged_not_dropped() -> None:
    big = MSG1 + b"\rNTE|1||" + b"x" * 5000
    found = records(big + b"\r" + MSG2, max_bytes=1000)
    assert found[0].oversize and len(found[0].data) <= 1000
    assert not found[1].oversize and found[1].data == MSG2


def test_ndjson_yields_one_record_per_line_with_line_numbers() -> None:
    data = b'{"resourceType":"MedicationAdministration","id":"1"}\n\n{"resourceType":"Encounter","id":"2"}\n'
    found = records(data)
    assert [(r.format, r.position) for r in found] == [("fhir", "line 1"), ("fhir", "line 3")]


def test_a_pretty_printed_json_document_is_one_record() -> None:
    data = b'{\n  "resourceType": "Bundle",\n  "entry": []\n}\n'
    found = records(data)
    assert len(found) == 1 and found[0].position == "document" and found[0].data == data


def test_records_are_found_across_chunk_boundaries() -> None:
    messages = [MSG1.replace(b"|1|P", f"|{n}|P".encode()) for n in range(40000)]
    data = b"\n".join(messages) + b"\n"
    assert len(data) > 2 << 20
    found = records(data)
    assert [r.data for r in found] == messages


def test_an_undetectable_file_becomes_one_unknown_record() -> None:
    found = records(b"\x00\x01garbage")
    assert [(r.format, r.position) for r in found] == [("unknown", "byte 0")]


def test_an_empty_file_yields_nothing() -> None:
    assert records(b"  \n") == []
