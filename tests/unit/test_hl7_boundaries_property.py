"""Property: concatenated and truncated RAS messages never put a line on another message's encounter.

Files are built from valid RAS messages, each with its own visit, control id and drug codes, joined
with or without terminators, with byte-order marks, with CR, LF or CRLF segments, and some cut
short. They are read as a replay reads them (``archive.read_stream`` then ``parse_record``):

- every administration read carries the encounter key, control id and drug of one message;
- a complete message with clean joints on both sides is read exactly (all its administrations);
- a complete message glued to a neighbour's header (no terminator between) is rejected, never merged.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.adapters.archive import read_stream
from connector.adapters.dispatch import parse_record
from connector.adapters.errors import AdapterError, NotHL7
from connector.adapters.hl7v2 import parse_hl7
from connector.model import Administration
from connector.policy.model import Policy

ZONE = ZoneInfo("America/New_York")
BOM = b"\xef\xbb\xbf"
HEADER = len(b"MSH|^~\\&|")  # a neighbour cut shorter than this no longer shows a header
DRUG_CODE = re.compile(r"([1-9][0-9]*)0[0-9]+")  # written as <message index>0<n>


def message(index: int, admins: int, newline: str) -> bytes:
    """Message ``index``: visit ``V<index>``, control id ``C<index>``, drugs ``<index>0<n>``."""
    segments = [
        f"MSH|^~\\&|EPIC|GENHOSP|IVPUSH|GENHOSP|20260302101500||RAS^O17^RAS_O17|C{index}|P|2.5.1",
        f"PID|1||MRN{index}^^^GENHOSP^MR||DOE^JANE||19800101|F",
        f"PV1|1|E|ED^B12^01^GENHOSP||||9999^DOCTOR^TEST||||||||||||V{index}^^^GENHOSP^VN",
        f"ORC|RE|ORD{index}^EPC|FIL{index}^EPC",
    ]
    for n in range(admins):
        segments.append(f"RXA|0|{n + 1}|2026030210{n:02d}00||{index}0{n}^drug {index}-{n}^RXNORM|4|mg|||||||||||||CP")
        segments.append("RXR|IV^Intravenous^HL70162|||IVP^IV Push^HL70165")
    return newline.join(segments).encode()


@dataclass(frozen=True)
class Part:
    """One message of a file as written: its bytes (maybe cut) and what surrounds it."""

    index: int
    data: bytes
    complete: bool
    admins: int
    bom: bool
    after: bytes  # separator written after the message ("" glues the next one on)


@st.composite
def files(draw: st.DrawFn) -> list[Part]:
    parts = []
    for index in range(1, draw(st.integers(1, 4)) + 1):
        admins = draw(st.integers(1, 3))
        full = message(index, admins, draw(st.sampled_from(["\r", "\n", "\r\n"])))
        cut = draw(st.one_of(st.none(), st.integers(1, len(full) - 1)))
        data = full if cut is None else full[:cut]
        after = draw(st.sampled_from([b"", b"\r", b"\n", b"\r\n", b"\n\n", b"\r\n\r\n"]))
        parts.append(Part(index, data, cut is None, admins, draw(st.booleans()), after))
    return parts


def layout(parts: list[Part]) -> bytes:
    return b"".join((BOM if part.bom else b"") + part.data + part.after for part in parts)


def clean_joint(before: Part | None) -> bool:
    """Whether the message after ``before`` starts on its own line."""
    return before is None or (before.data + before.after)[-1:] in (b"\r", b"\n")


def read(data: bytes, policy: Policy) -> list[Administration]:
    admins: list[Administration] = []
    for record in read_stream(io.BytesIO(data), "prop.hl7"):
        try:
            for parsed in parse_record(record, policy, ZONE, 1 << 20):
                admins.extend(parsed.administrations)
        except AdapterError:
            continue
    return admins


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=files())
def test_concatenations_and_truncations_never_cross_encounters(policy: Policy, parts: list[Part]) -> None:
    admins = read(layout(parts), policy)
    by_message: dict[int, list[Administration]] = {}
    for admin in admins:
        index = int(admin.source.message_id.removeprefix("C"))
        assert admin.encounter_key == f"GENHOSP|V{index}", "a line on another message's encounter"
        # A message cut inside RXA-5 and glued to the next one's first bytes reads a drug code
        # like "M" or "1MSH": its own, cut short. A whole code names the message it was written in.
        code = DRUG_CODE.fullmatch(admin.drug.codings[0].code)
        assert code is None or int(code[1]) == index, "another message's administration"
        by_message.setdefault(index, []).append(admin)

    if len(parts[0].data) < len(b"MSH"):
        return  # the file does not start like HL7: one unknown record, rejected whole
    for position, part in enumerate(parts):
        before = parts[position - 1] if position else None
        after = parts[position + 1] if position + 1 < len(parts) else None
        found = len(by_message.get(part.index, []))
        if not part.complete:
            continue  # a cut message may be rejected or keep what it has (checked above)
        glued_before = not clean_joint(before) and before is not None and len(before.data) > HEADER
        glued_after = not clean_joint(part) and after is not None and len(after.data) >= HEADER
        if glued_after or (glued_before and before is not None and before.complete):
            assert found == 0, f"message {part.index} merged with a glued neighbour"
        elif clean_joint(before) and clean_joint(part) and (after is None or len(after.data) >= len(b"MSH")):
            # (a fragment shorter than "MSH" on the next line is a bad line of this message: rejected)
            assert found == part.admins, f"message {part.index} not read exactly"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=st.integers(1, 3),
    second=st.integers(1, 3),
    joint=st.sampled_from([b"", b"\r", b"\n", b"\r\n", BOM, b"\r" + BOM, b"\x1c\r\x0b", b"|", b"^"]),
    newline=st.sampled_from(["\r", "\n", "\r\n"]),
)
def test_two_messages_given_as_one_are_always_rejected(
    policy: Policy, first: int, second: int, joint: bytes, newline: str
) -> None:
    raw = message(1, first, newline) + joint + message(2, second, newline)
    try:
        parse_hl7(raw, policy, ZONE)
    except NotHL7:
        return
    raise AssertionError("two messages read as one")
