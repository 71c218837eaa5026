"""hl7apy as the structural reference: the fast reader must read the same field values it does."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from ci import import_or_skip
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.adapters.errors import AdapterError
from connector.adapters.hl7v2.framing import read_message
from connector.adapters.hl7v2.segments import Message

hl7apy_parser = import_or_skip("hl7apy.parser")  # a test dependency: its absence fails under CI
hl7apy_consts = import_or_skip("hl7apy.consts")
HL7apyException = import_or_skip("hl7apy.exceptions").HL7apyException

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "hl7"
BASIC_ESCAPES = {"F": "|", "S": "^", "T": "&", "R": "~", "E": "\\"}


@dataclass(frozen=True)
class Fields:
    msh_10: str
    pv1_19_1: str
    rxa: tuple[tuple[str, str, str], ...]  # (RXA-3, RXA-5.1, RXA-20) per RXA, in order


def oracle_unescape(value: str) -> str | None:
    """hl7apy returns values still escaped: undo the five delimiter escapes, None if others are used."""
    if "\\" not in value:
        return value
    if any(sequence not in BASIC_ESCAPES for sequence in re.findall(r"\\([^\\]*)\\", value)):
        return None
    return re.sub(r"\\([FSTRE])\\", lambda m: BASIC_ESCAPES[m.group(1)], value)


def reference_text(raw: bytes) -> str:
    """The message as hl7apy needs it: unframed, decoded, ``\\r``-terminated."""
    data = raw.strip(b"\x0b\x1c\r\n")
    header = data.split(b"\r", 1)[0].split(b"\n", 1)[0]
    if b"8859/1" in header:
        text = data.decode("latin-1")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("iso2022_jp")
    if "\x1b" in text:
        text = data.decode("iso2022_jp")
    return text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")


def by_hl7apy(text: str) -> Fields:
    message = hl7apy_parser.parse_message(
        text, validation_level=hl7apy_consts.VALIDATION_LEVEL.TOLERANT, find_groups=False
    )
    children = list(message.children)
    pv1 = [c for c in children if c.name == "PV1"]

    def first_component(field: Any) -> str:
        return str(getattr(field, f"{field.datatype.lower()}_1").value) if field.datatype != "DTM" else field.value

    rxa = tuple(
        (first_component(c.rxa_3), first_component(c.rxa_5), str(c.rxa_20.value)) for c in children if c.name == "RXA"
    )
    return Fields(
        msh_10=str(message.msh.msh_10.value),
        pv1_19_1=str(pv1[0].pv1_19.cx_1.value) if pv1 else "",
        rxa=rxa,
    )


def by_reader(message: Message) -> Fields:
    pv1 = message.first("PV1")
    return Fields(
        msh_10=message.msh.value(10),
        pv1_19_1=pv1.value(19) if pv1 else "",
        rxa=tuple((s.value(3), s.value(5), s.value(20)) for s in message.every("RXA")),
    )


def unescaped(fields: Fields) -> Fields | None:
    values = [fields.msh_10, fields.pv1_19_1, *(v for row in fields.rxa for v in row)]
    plain = [oracle_unescape(v) for v in values]
    if any(p is None for p in plain):
        return None
    it = iter(p for p in plain if p is not None)
    msh_10, pv1_19_1 = next(it), next(it)
    return Fields(msh_10, pv1_19_1, tuple((next(it), next(it), next(it)) for _ in fields.rxa))


def ras_samples() -> list[str]:
    names = []
    for path in sorted(SAMPLES.glob("*.hl7")):
        if b"|RAS^" in path.read_bytes().split(b"\r", 1)[0].split(b"\n", 1)[0]:
            names.append(path.name)
    return names


@functools.cache
def comparison(name: str) -> tuple[Fields, Fields] | str:
    """(reader, hl7apy unescaped) for one sample, or why it is not compared."""
    raw = (SAMPLES / name).read_bytes()
    try:
        message = read_message(raw)
    except AdapterError:
        return "not one readable message (the reader rejects it by design)"
    try:
        reference = by_hl7apy(reference_text(raw))
    except (HL7apyException, ValueError) as error:  # a sample hl7apy cannot read is not compared
        return f"hl7apy cannot parse it: {type(error).__name__}"
    expected = unescaped(reference)
    if expected is None:
        return "escape sequences hl7apy leaves unresolved"
    return by_reader(message), expected


@pytest.mark.parametrize("name", ras_samples())
def test_reader_reads_the_same_rxa_pv1_and_msh_values_as_hl7apy(name: str) -> None:
    compared = comparison(name)
    if isinstance(compared, str):
        pytest.skip(compared)
    ours, theirs = compared
    assert ours == theirs


def test_most_ras_samples_are_compared_with_hl7apy() -> None:
    compared = [name for name in ras_samples() if not isinstance(comparison(name), str)]
    assert len(compared) >= 35


# --- generated messages: joined from generated field values, read by both ---------------------------

DELIMITER_ESCAPES = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\"))
CODE = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_/", max_size=12)
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30).filter(
    lambda text: text != '""'  # HL7's explicit null, which the reader reads as empty
)


def escape(text: str) -> str:
    for plain, escaped in DELIMITER_ESCAPES:
        text = text.replace(plain, escaped)
    return text


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    moment = draw(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 12, 31)))
    text = moment.strftime(draw(st.sampled_from(["%Y%m%d", "%Y%m%d%H%M", "%Y%m%d%H%M%S"])))
    return text + draw(st.sampled_from(["", "-0500", "+0000", "+0930"]))


@dataclass(frozen=True)
class Generated:
    text: str
    control_id: str
    visit: str
    rxa: tuple[tuple[str, str, str, str], ...]  # (RXA-3, RXA-5.1, RXA-5.2 unescaped, RXA-20)


@st.composite
def ras_messages(draw: st.DrawFn) -> Generated:
    version = draw(st.sampled_from(["2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8"]))
    control_id = draw(CODE.filter(bool))
    visit = draw(CODE)
    authority = draw(st.sampled_from(["", "GENHOSP", "1.2.3&1.2.3.4&ISO"]))
    segments = [
        f"MSH|^~\\&|APP|FAC|||{draw(timestamps())}||RAS^O17^RAS_O17|{control_id}|P|{version}",
        f"PID|1||MRN{draw(CODE)}^^^FAC^MR||TEST^PATIENT",
        f"PV1|1|{draw(st.sampled_from(['E', 'O', 'I']))}|ED||||||||||||||||{visit}^^^{authority}",
        f"ORC|RE|{draw(CODE)}",
    ]
    rows = []
    for _ in range(draw(st.integers(1, 3))):
        start, code, text = draw(timestamps()), draw(CODE), draw(TEXT)
        status = draw(st.sampled_from(["", "CP", "RE", "NA", "PA", "Given", "Held"]))
        segments.append(f"RXA|0|1|{start}||{code}^{escape(text)}^RXNORM|1|mg|||||||||||||{status}")
        segments.append(f"RXR|{draw(st.sampled_from(['IV^Intravenous^HL70162', 'IM', '^IV PUSH']))}")
        rows.append((start, code, text, status))
    return Generated("\r".join(segments), control_id, visit, tuple(rows))


@given(generated=ras_messages())
@settings(max_examples=100, deadline=None)
def test_reader_agrees_with_hl7apy_on_generated_ras_o17_messages(generated: Generated) -> None:
    message = read_message(generated.text.encode("utf-8"))
    reference = by_hl7apy(generated.text)
    assert unescaped(reference) == by_reader(message)
    # and both agree with what was generated, so neither can be wrong in the same way
    assert by_reader(message) == Fields(
        generated.control_id, generated.visit, tuple((r[0], r[1], r[3]) for r in generated.rxa)
    )
    assert [s.value(5, 2) for s in message.every("RXA")] == [r[2] for r in generated.rxa]
