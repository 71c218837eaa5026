r"""HL7 v2 acknowledgements built in the sender's own syntax: MSH, MSA and, for errors, ERR.

The ACK answers in the delimiters and version of the message it acknowledges (MSH-1/2, MSH-12),
swaps sender and receiver (MSH-3/4 ↔ MSH-5/6), echoes the processing id (MSH-11) and, in
MSA-2, the message control id (MSH-10). An error adds an ERR segment laid out as in v2.5.1:
ERR-1 (the older error code and location, kept for v2.3/v2.4 receivers), ERR-2 location,
ERR-3 HL7 error code (table 0357), ERR-4 severity, ERR-5 ivpush's reject code, ERR-7 the
technical reason and ERR-8 what the sender should do. Reasons name fields and error kinds,
never a value from the message.

The header is read leniently, without the checks ``framing.read_message`` makes: even a
message that is refused is answered in its own syntax, with its control id when it has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

DEFAULT_VERSION = "2.5.1"
_DEFAULT_DELIMITERS = "|^~\\&"
_BOM = b"\xef\xbb\xbf"
_STRIP = b" \t\r\n\x0b"
MAX_TEXT = 200  # ERR-7 / ERR-8 characters we write (TX); MSA-3 is cut at 80 (ST)

# HL7 table 0357 (message error condition codes) used here.
SEGMENT_SEQUENCE_ERROR = 100
REQUIRED_FIELD_MISSING = 101
INTERNAL_ERROR = 207
_TABLE_0357 = {
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    102: "Data type error",
    200: "Unsupported message type",
    INTERNAL_ERROR: "Application internal error",
}


@dataclass(frozen=True, slots=True)
class Header:
    """What an ACK needs from the MSH it answers (raw field text, still escaped).

    Attributes:
        delimiters: MSH-1 and the four encoding characters of MSH-2.
        sending: MSH-3 and MSH-4 (application, facility).
        receiving: MSH-5 and MSH-6.
        trigger: MSH-9.2 (the event, ``O17``), empty when unknown.
        control_id: MSH-10, empty when absent or unreadable.
        processing_id: MSH-11 (``P`` when absent).
        version: MSH-12.1 (``2.5.1`` when absent).
    """

    delimiters: str = _DEFAULT_DELIMITERS
    sending: tuple[str, str] = ("", "")
    receiving: tuple[str, str] = ("", "")
    trigger: str = ""
    control_id: str = ""
    processing_id: str = "P"
    version: str = DEFAULT_VERSION


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a message gets ``AE`` or ``AR`` instead of ``AA``.

    Attributes:
        ack_code: ``AR`` (rejected: fix the message) or ``AE`` (not stored: send it again later).
        code: ivpush's stable reason code (metrics, ERR-5, logs).
        detail: The reason, naming fields and error kinds only.
        hl7_error: HL7 table 0357 code (ERR-3).
        location: (segment, field number) the reason points at, if any (ERR-2).
    """

    ack_code: str
    code: str
    detail: str
    hl7_error: int = SEGMENT_SEQUENCE_ERROR
    location: tuple[str, int] | None = None

    @property
    def advice(self) -> str:
        """What the sender should do (ERR-8)."""
        if self.ack_code == "AE":
            return "not stored: send this message again later"
        return "rejected: correct the message before sending it again"


def read_header(data: bytes) -> Header:
    """The MSH fields an ACK needs; defaults for whatever cannot be read (never raises)."""
    data = data.lstrip(_STRIP)
    if data.startswith(_BOM):
        data = data[len(_BOM) :].lstrip(_STRIP)
    if not data.startswith(b"MSH") or len(data) < 8:
        return Header()
    cr, lf = data.find(b"\r"), data.find(b"\n")
    ends = [n for n in (cr, lf, data.find(b"\x1c")) if n >= 0]
    line = data[: min(ends)] if ends else data
    text = line.decode("latin-1")  # round-trips every byte: echoed fields go back as they came
    delimiters = text[3:8]
    if len(set(delimiters)) != 5 or any(not 0x21 <= ord(c) <= 0x7E or c.isalnum() for c in delimiters):
        return Header()
    fs, cs = delimiters[0], delimiters[1]
    fields = text.split(fs)  # fields[n - 1] is MSH-n for n >= 2

    def get(number: int) -> str:
        return fields[number - 1] if len(fields) >= number else ""

    message_type = get(9).split(cs)
    version = get(12).split(cs, 1)[0].strip()
    return Header(
        delimiters=delimiters,
        sending=(get(3), get(4)),
        receiving=(get(5), get(6)),
        trigger=message_type[1] if len(message_type) > 1 else "",
        control_id=get(10),
        processing_id=get(11) or "P",
        version=version if version and len(version) <= 10 else DEFAULT_VERSION,
    )


def build_ack(header: Header, now: datetime, control_id: str, problem: Problem | None = None) -> bytes:
    """An ACK for the message whose ``header`` is given: ``AA`` without a problem, else its code and ERR.

    Args:
        header: The acknowledged message's header (``read_header``).
        now: Time of the ACK (MSH-7), an aware datetime.
        control_id: The ACK's own control id (MSH-10).
        problem: Why the message was not accepted, if it was not.

    Returns:
        The ACK's bytes, segments ended by ``<CR>`` (no MLLP framing).
    """
    fs, cs, ss = header.delimiters[0], header.delimiters[1], header.delimiters[4]

    def text(value: str, limit: int) -> str:
        return escape(value[:limit], header.delimiters)

    kind = f"ACK{cs}{header.trigger}{cs}ACK"
    msh = fs.join(
        [
            "MSH",
            header.delimiters[1:],
            *header.receiving,
            *header.sending,
            now.strftime("%Y%m%d%H%M%S%z"),
            "",
            kind,
            control_id,
            header.processing_id,
            header.version,
        ]
    )
    code = "AA" if problem is None else problem.ack_code
    msa = fs.join(["MSA", code, header.control_id] + ([text(problem.detail, 80)] if problem else []))
    segments = [msh, msa]
    if problem is not None:
        name = _TABLE_0357.get(problem.hl7_error, "")
        segment, field_number = problem.location or ("", 0)
        where = cs.join([segment, "1", str(field_number)]) if problem.location else ""
        err1 = cs.join([segment, "1" if segment else "", str(field_number) if field_number else "", ""])
        err1 += ss.join([str(problem.hl7_error), name, "HL70357"])
        segments.append(
            fs.join(
                [
                    "ERR",
                    err1,
                    where,
                    cs.join([str(problem.hl7_error), name, "HL70357"]),
                    "E",
                    cs.join([text(problem.code, 20), "", "99IVPUSH"]),
                    "",
                    text(problem.detail, MAX_TEXT),
                    text(problem.advice, MAX_TEXT),
                ]
            )
        )
    return "\r".join(segments).encode("latin-1", "replace") + b"\r"


def escape(value: str, delimiters: str) -> str:
    r"""Our own text as an HL7 value: delimiters escaped, line ends and non-ASCII replaced."""
    fs, cs, rs, es, ss = (delimiters[n] for n in range(5))
    value = "".join(ch if 0x20 <= ord(ch) < 0x7F else "?" for ch in value)
    value = value.replace(es, f"{es}E{es}")
    for char, name in ((fs, "F"), (cs, "S"), (rs, "R"), (ss, "T")):
        value = value.replace(char, f"{es}{name}{es}")
    return value
