r"""A small, strict, fast HL7 v2 reader: framing, character set, delimiters, fields, escapes, DTM.

hl7apy parses a RAS^O17 at well under a hundred messages a second and mis-groups repeated
administrations (shared/docs/hl7-notes.md), so the inbound path splits on the message's own
delimiters instead. Segments are split into fields only when read, and values are unescaped
only when they contain the escape character.

The whole message is decoded to text *before* splitting: in ISO-2022-JP, Big5 or GB 18030 a
multi-byte character can contain the bytes of ``|``, ``^`` or ``\``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache

from connector.adapters.errors import BadTimestamp, NotHL7, OversizeInput

MAX_BYTES = 1 << 20
"""Default size limit of one message (1 MiB): a RAS is a few kB; more is a runaway batch."""

_BOM = b"\xef\xbb\xbf"
_CHARSET_BYTES = 100
_NULL = '""'  # HL7 explicit null: "delete the value"; read as empty

# HL7 table 0211 (MSH-18) → Python codec. ISO IR87/IR159 and MSH-20 "ISO 2022-1994" are the
# Japanese code extensions; iso2022_jp_2 decodes both (a superset of iso2022_jp).
_CHARSETS = {
    "ASCII": "",
    "ISO IR6": "",
    "ISO IR14": "",
    "8859/1": "latin-1",
    "UNICODE": "utf-8",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "ISO IR87": "iso2022_jp_2",
    "ISO IR159": "iso2022_jp_2",
    "ISO 2022-1994": "iso2022_jp_2",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc_kr",
    "BIG-5": "big5",
    **{f"8859/{n}": f"iso8859_{n}" for n in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16)},
}
_JAPANESE = "iso2022_jp_2"


@dataclass(frozen=True, slots=True, eq=False)
class Syntax:
    r"""Delimiters (MSH-1/MSH-2) and character set (MSH-18) of one message.

    Attributes:
        field: Field separator (MSH-1).
        component: Component separator.
        repetition: Repetition separator.
        escape: Escape character.
        subcomponent: Subcomponent separator.
        codec: Python codec the message was decoded with (for ``\Xhh\`` escapes).

    Compared by identity (``eq=False``): instances are shared per header shape by a cache,
    and an identity hash keeps them cheap to use as cache keys.
    """

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    codec: str = "utf-8"


class Segment:
    """One segment; fields are split on first access and numbered as in the standard.

    For MSH, field 1 is the field separator and field 2 the encoding characters, so
    ``field(n)`` is MSH-n for every segment.
    """

    __slots__ = ("_fields", "_plain", "name", "syntax", "text")

    def __init__(self, text: str, syntax: Syntax) -> None:
        self.name = text[:3]
        self.text = text
        self.syntax = syntax
        self._fields: list[str] | None = None
        self._plain = False

    def _split(self) -> list[str]:
        syntax = self.syntax
        text = self.text
        fields = text.split(syntax.field)
        if self.name == "MSH":
            fields.insert(1, syntax.field)
            text = text[4 + len(fields[2]) :]  # MSH-2 holds every delimiter by definition
        # Plain: no repetition, subcomponent, escape or quote anywhere after MSH-2, so a value
        # is its field up to the first component separator (the common shape, checked once).
        self._plain = (
            syntax.escape not in text
            and syntax.repetition not in text
            and syntax.subcomponent not in text
            and '"' not in text
        )
        self._fields = fields
        return fields

    def field(self, number: int) -> str:
        """The raw (still escaped) field, all repetitions; empty when absent."""
        fields = self._fields or self._split()
        return fields[number] if number < len(fields) else ""

    def repetitions(self, number: int) -> list[str]:
        """The raw repetitions of a field (none when the field is empty)."""
        raw = self.field(number)
        return raw.split(self.syntax.repetition) if raw else []

    def components(self, number: int) -> list[str]:
        """Unescaped components of the field's first repetition (first subcomponent of each)."""
        raw = self.field(number)
        if not raw:
            return []
        return components_of(raw.split(self.syntax.repetition, 1)[0], self.syntax)

    def value(self, number: int, component: int = 1) -> str:
        """One unescaped component (first subcomponent) of the field's first repetition."""
        fields = self._fields or self._split()
        if number >= len(fields):
            return ""
        raw = fields[number]
        if self._plain and number > 2:
            if component == 1:
                return raw.partition(self.syntax.component)[0]
            parts = raw.split(self.syntax.component)
            return parts[component - 1] if component <= len(parts) else ""
        if component == 1:
            return raw if raw.isalnum() or not raw else first_value(raw, self.syntax)
        parts = raw.partition(self.syntax.repetition)[0].split(self.syntax.component)
        return first_value(parts[component - 1], self.syntax) if component <= len(parts) else ""

    def values(self, count: int) -> list[str]:
        """``value(n)`` of fields 0 … count - 1 in one pass (cheaper when most are read)."""
        fields = self._fields or self._split()
        syntax = self.syntax
        if self._plain and count > 3:
            cs = syntax.component
            out = [raw if raw.isalnum() or not raw else first_value(raw, syntax) for raw in fields[:3]]
            out += [raw.partition(cs)[0] if cs in raw else raw for raw in fields[3:count]]
        else:
            out = [raw if raw.isalnum() or not raw else first_value(raw, syntax) for raw in fields[:count]]
        if len(out) < count:
            out.extend([""] * (count - len(out)))
        return out


def first_value(raw: str, syntax: Syntax) -> str:
    """First repetition, component and subcomponent of a raw field, unescaped."""
    # Most fields hold no delimiter at all: four substring tests are cheaper than three
    # partitions (and their tuples).
    if (
        syntax.component not in raw
        and syntax.repetition not in raw
        and syntax.subcomponent not in raw
        and syntax.escape not in raw
    ):
        return "" if raw == _NULL else raw
    raw = raw.partition(syntax.repetition)[0].partition(syntax.component)[0].partition(syntax.subcomponent)[0]
    if syntax.escape in raw:
        return unescape(raw, syntax)
    return "" if raw == _NULL else raw


class Message:
    """A decoded message: its syntax and its segments in order (MSH first)."""

    __slots__ = ("segments", "syntax")

    def __init__(self, syntax: Syntax, segments: tuple[Segment, ...]) -> None:
        self.syntax = syntax
        self.segments = segments

    @property
    def msh(self) -> Segment:
        """The message header."""
        return self.segments[0]

    def first(self, name: str) -> Segment | None:
        """The first segment with this id, if any."""
        for segment in self.segments:
            if segment.name == name:
                return segment
        return None

    def every(self, name: str) -> list[Segment]:
        """Every segment with this id, in order."""
        return [segment for segment in self.segments if segment.name == name]


def components_of(repetition: str, syntax: Syntax) -> list[str]:
    """Unescaped components of one raw repetition (first subcomponent of each)."""
    if syntax.subcomponent not in repetition and syntax.escape not in repetition and '"' not in repetition:
        return repetition.split(syntax.component)  # the common shape: nothing to cut or unescape
    out = []
    for raw in repetition.split(syntax.component):
        part = raw.partition(syntax.subcomponent)[0]
        if part == _NULL:
            part = ""
        elif syntax.escape in part:
            part = unescape(part, syntax)
        out.append(part)
    return out


def read_message(raw: bytes, max_bytes: int = MAX_BYTES) -> Message:
    r"""Strip MLLP framing, decode by MSH-18 and split one message into segments.

    Args:
        raw: One message; segments may end with ``\r``, ``\n`` or ``\r\n``.
        max_bytes: Larger inputs are rejected before any work is done.

    Returns:
        The message, MSH first.

    Raises:
        OversizeInput: The input is larger than ``max_bytes``.
        NotHL7: No MSH header, unusable delimiters, a bad segment id or more than one message.
    """
    if len(raw) > max_bytes:
        raise OversizeInput(f"message larger than {max_bytes} bytes")
    data = _unframe(bytes(raw))
    if not data.startswith(b"MSH") or len(data) < 8:
        raise NotHL7("does not start with an MSH segment")
    # Two memchr scans are cheaper than a regex search for the first line end.
    cr, lf = data.find(b"\r"), data.find(b"\n")
    end = cr if lf < 0 or 0 <= cr < lf else lf
    header = data[:end] if end >= 0 else data
    if len(header) < 8:
        raise NotHL7("MSH segment too short for its delimiters")
    fs = header[3:4]
    fields = header.split(fs)  # fields[n - 1] is MSH-n for n >= 2
    # MSH-18/MSH-20 are cut short before they become cache keys: real values are a few bytes.
    syntax = _syntax(
        fs + fields[1],
        fields[17][:_CHARSET_BYTES] if len(fields) > 17 else b"",
        fields[19][:_CHARSET_BYTES] if len(fields) > 19 else b"",
    )
    text = _decode(data, syntax.codec).replace("\r\n", "\n").replace("\r", "\n")
    # One regex pass over the text instead of a Python check per segment.
    bad = _bad_line(syntax.field).search(text)
    if bad is not None:
        raise NotHL7(f"line {text.count(chr(10), 0, bad.start()) + 2} is not a segment")
    if "\nMSH" in text:  # every line is a valid segment by now, so this is a second MSH
        raise NotHL7("more than one MSH: send one message at a time")
    segments = [Segment(line, syntax) for line in text.split("\n") if line and not line[0].isspace()]
    return Message(syntax, tuple(segments))


@lru_cache(maxsize=64)
def _bad_line(field: str) -> re.Pattern[str]:
    """A line break not followed by a blank line or a segment id (``ABC``) and the field separator.

    Searching for the newline first lets the regex engine skip from line to line; the first
    line was already checked to be ``MSH`` and the field separator.
    """
    return re.compile(rf"\n(?![A-Z][A-Z0-9]{{2}}(?:{re.escape(field)}|\n|\Z)|[^\S\n]*(?:\n|\Z))", re.ASCII)


def _unframe(data: bytes) -> bytes:
    """Remove MLLP framing (0x0B … 0x1C 0x0D), a UTF-8 BOM and surrounding blank lines."""
    data = data.strip(b"\r\n\t ")
    if data[:1] == b"\x0b":
        data = data[1:]
    end = data.rfind(b"\x1c")
    if end >= 0 and not data[end + 1 :].strip(b"\r\n"):
        data = data[:end]
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    return data.strip(b"\r\n\t ")


@lru_cache(maxsize=256)
def _syntax(delimiters: bytes, charsets: bytes, scheme: bytes) -> Syntax:
    """Delimiters from MSH-1/MSH-2 and the codec from MSH-18/MSH-20, read from the raw bytes.

    Cached: a feed sends the same header shape in every message.
    """
    if len(delimiters) not in (5, 6):  # v2.7+ may add the truncation character to MSH-2
        raise NotHL7("MSH-2 must hold 4 encoding characters")
    chars = [chr(b) for b in delimiters[:5]]
    if len(set(chars)) != 5 or any(not 0x21 <= ord(c) <= 0x7E or c.isalnum() for c in chars):
        raise NotHL7("MSH-1/MSH-2 delimiters must be 5 distinct punctuation characters")
    fs, cs, rs, es, ss = chars
    return Syntax(fs, cs, rs, es, ss, _codec(charsets.split(rs.encode()), scheme, cs.encode()))


def _codec(charsets: list[bytes], scheme: bytes, component: bytes) -> str:
    names = [" ".join(c.split(component, 1)[0].decode("ascii", "replace").upper().split()) for c in charsets]
    if b"2022" in scheme or any(_CHARSETS.get(n) == _JAPANESE for n in names):
        return _JAPANESE
    for name in names:
        codec = _CHARSETS.get(name)
        if codec:
            return codec
    return ""


def _decode(data: bytes, codec: str) -> str:
    """Decode with the declared codec; fall back to UTF-8, then Latin-1 (which cannot fail).

    Feeds do mislabel: the JAHIS samples declare ISO 2022 and carry UTF-8. Losing a message
    to a wrong label is worse than reading it in the encoding it evidently uses.
    """
    for name in (codec, "utf-8") if codec else ("utf-8",):
        try:
            return data.decode(name)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def unescape(value: str, syntax: Syntax) -> str:
    r"""Replace HL7 escape sequences in one component or subcomponent value.

    ``\F\ \S\ \T\ \R\ \E\`` become the delimiters, ``\Xhh…\`` the bytes decoded in
    the message's character set, ``\.br\``/``\.sp\`` a newline; highlighting, formatting and
    character-set switches are dropped. Unknown or unterminated sequences are kept as sent.
    """
    esc = syntax.escape
    parts = value.split(esc)
    out = [parts[0]]
    index, count = 1, len(parts)
    while index < count:
        if index + 1 >= count:  # an escape character with no closing one: literal text
            out.append(esc + parts[index])
            break
        sequence = parts[index]
        replacement = _escape(sequence, syntax)
        out.append(esc + sequence + esc if replacement is None else replacement)
        out.append(parts[index + 1])
        index += 2
    return "".join(out)


def _escape(sequence: str, syntax: Syntax) -> str | None:
    if len(sequence) == 1:
        return {
            "F": syntax.field,
            "S": syntax.component,
            "T": syntax.subcomponent,
            "R": syntax.repetition,
            "E": syntax.escape,
            "H": "",
            "N": "",
        }.get(sequence)
    head, rest = sequence[:1], sequence[1:]
    if head == "X":
        return _hex_text(rest, syntax.codec)
    if head in ("C", "M"):  # character-set switch: the message was already decoded as a whole
        return "" if _is_hex(rest) else None
    if head == ".":
        command = rest[:2]
        if command in ("br", "sp") and (rest[2:].isdigit() or not rest[2:]):
            return "\n"
        if command in ("in", "ti", "sk", "ce", "fi", "nf") and _is_number(rest[2:]):
            return ""
    return None


def _is_hex(text: str) -> bool:
    return bool(text) and len(text) % 2 == 0 and all(c in "0123456789ABCDEFabcdef" for c in text)


def _is_number(text: str) -> bool:
    return not text or text.lstrip("+-").isdigit()


def _hex_text(digits: str, codec: str) -> str | None:
    if not _is_hex(digits):
        return None
    data = bytes.fromhex(digits)
    return _decode(data, codec)


def parse_dtm(text: str, zone: tzinfo, where: str, need_day: bool = False) -> datetime:
    """Parse an HL7 DTM ``YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]``.

    Args:
        text: The first component of a TS/DTM field, unescaped.
        zone: Zone attached (never converted to) when the value has no offset.
        where: Field name for the reject detail, e.g. ``RXA-3``.
        need_day: Reject values less precise than a day.

    Returns:
        A timezone-aware datetime: the sent offset as a fixed zone, else ``zone``.

    Raises:
        BadTimestamp: The value is not a DTM, is not a real date/time or lacks a day.
    """
    # Sliced by hand rather than with a regex or strptime: this runs several times per
    # administration and was the largest single cost of a RAS after the model objects.
    tz = zone
    if len(text) >= 9 and text[-5] in "+-":  # no offset-free DTM has a sign there
        tz = _ZONES.get(text[-5:]) or _offset_zone(text[-5:], where)
        text = text[:-5]
    if text.isascii() and text.isdigit():
        fraction = ""
    else:
        text, fraction = _with_fraction(text, where)
    size = len(text)
    if size not in _DTM_LENGTHS:
        raise BadTimestamp(f"{where} not a timestamp")
    if need_day and size < 8:
        raise BadTimestamp(f"{where} has no day")
    try:
        if size >= 12:
            return datetime(
                int(text[:4]),
                int(text[4:6]),
                int(text[6:8]),
                int(text[8:10]),
                int(text[10:12]),
                int(text[12:14] or 0),
                int(fraction.ljust(6, "0")) if fraction else 0,
                tzinfo=tz,
            )
        return datetime(int(text[:4]), int(text[4:6] or 1), int(text[6:8] or 1), int(text[8:10] or 0), tzinfo=tz)
    except ValueError as error:
        raise BadTimestamp(f"{where} not a valid date/time") from error


def _with_fraction(text: str, where: str) -> tuple[str, str]:
    """Split ``YYYYMMDDHHMMSS.S+`` into the digits and the fraction digits (1–6 of them)."""
    main, dot, fraction = text.partition(".")
    if not (main.isascii() and main.isdigit()) or not dot or len(main) != 14:
        raise BadTimestamp(f"{where} not a timestamp")
    if not (fraction.isascii() and fraction.isdigit() and len(fraction) <= 6):
        raise BadTimestamp(f"{where} not a timestamp")
    return main, fraction


_DTM_LENGTHS = frozenset({4, 6, 8, 10, 12, 14})
# "+HHMM"/"-HHMM" → zone. Only valid offsets are stored, so it holds at most 2 × 24 × 60 entries.
_ZONES: dict[str, timezone] = {}


def _offset_zone(offset: str, where: str) -> timezone:
    """The fixed zone of a ``±HHMM`` offset, shared between messages."""
    digits = offset[1:]
    if not (digits.isascii() and digits.isdigit()) or int(digits[2:]) >= 60 or int(digits[:2]) >= 24:
        raise BadTimestamp(f"{where} offset not ±HHMM")
    delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    zone = _ZONES[offset] = timezone(-delta if offset[0] == "-" else delta)
    return zone


def utc_iso(moment: datetime, where: str) -> str:
    """UTC ISO 8601 text of an aware datetime, which sorts in time order (used in versions).

    ``isoformat`` leaves out zero microseconds, and that still sorts correctly: after the
    seconds, ``+`` (of ``+00:00``) sorts before ``.`` (of a fraction).

    Raises:
        BadTimestamp: The moment cannot be expressed in UTC (e.g. year 1 with a positive offset).
    """
    try:
        return moment.astimezone(UTC).isoformat()
    except (OverflowError, ValueError) as error:
        raise BadTimestamp(f"{where} out of range") from error
