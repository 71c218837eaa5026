"""HL7 v2 framing: one message's bytes → its syntax and segments, or a reject.

hl7apy parses a RAS^O17 at well under a hundred messages a second and mis-groups repeated
administrations (shared/docs/hl7-notes.md), so the inbound path splits on the message's own
delimiters instead. This module finds the message in its framing (MLLP, BOM, blank lines),
reads its header, decodes it and checks that every line is a segment of one message.
"""

from __future__ import annotations

import re
from functools import lru_cache

from connector.adapters.errors import NotHL7, OversizeInput
from connector.adapters.hl7v2.encoding import Syntax, decode_text, syntax_of
from connector.adapters.hl7v2.segments import Message, Segment, is_plain

MAX_BYTES = 1 << 20
"""Default size limit of one message (1 MiB): a RAS is a few kB; more is a runaway batch."""

_BOM = b"\xef\xbb\xbf"
_CHARSET_BYTES = 100
# The segment cache must stay small whatever a feed sends: only ASCII lines of at most 512
# characters and 64 fields are kept (~5 KB each at worst), the 2048 most recent (~10 MB; a real
# feed's PID, PV1, IN1, ORC and RXR lines take a few hundred bytes). It holds patient segments
# (PHI) in memory for as long as the process runs, as the state does; nothing reads it but this
# module.
_MEMO_LINE = 512
_MEMO_FIELDS = 64
# Segments a feed sends again, unchanged, with every administration of a visit or an order
# (patient, visit, insurance, order and route); an RXA, OBX or NTE is new every time.
_REPEATING = frozenset({"PID", "PD1", "PV1", "PV2", "IN1", "IN2", "ORC", "TQ1", "RXO", "RXE", "RXR"})


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
    syntax = syntax_of(
        fs + fields[1],
        fields[17][:_CHARSET_BYTES] if len(fields) > 17 else b"",
        fields[19][:_CHARSET_BYTES] if len(fields) > 19 else b"",
    )
    text = decode_text(data, syntax.codec).replace("\r\n", "\n").replace("\r", "\n")
    # One regex pass over the text instead of a Python check per segment.
    bad = _bad_line(syntax.field).search(text)
    if bad is not None:
        raise NotHL7(f"line {text.count(chr(10), 0, bad.start()) + 2} is not a segment")
    _no_second_header(text)  # one scan when no second "MSH" occurs (the common case)
    # One scan of everything after the header decides for all other segments whether they are
    # plain (see ``Segment``); a message with an escape anywhere has each segment checked alone.
    body = text.find("\n")
    if body < 0:
        return Message(syntax, (Segment(text, syntax),))
    plain = True if is_plain(text[body:], syntax) else None
    # The header line was checked above; blank and whitespace-only lines are skipped.
    segments = [Segment(text[:body], syntax)]
    for line in text[body + 1 :].split("\n"):
        if not line or line[0].isspace():
            continue
        if (
            line[:3] in _REPEATING
            and len(line) <= _MEMO_LINE
            and line.isascii()
            and line.count(syntax.field) < _MEMO_FIELDS
        ):
            segments.append(_repeating_segment(line, syntax))
        else:
            segments.append(Segment(line, syntax, plain))
    return Message(syntax, tuple(segments))


@lru_cache(maxsize=2048)
def _repeating_segment(line: str, syntax: Syntax) -> Segment:
    """A segment a feed sends again with every administration of a visit or order, read once.

    Shared between messages: a ``Segment`` is never changed once built, and whether it is plain
    depends on its own text and delimiters only (checked here, not taken from the message).
    """
    return Segment(line, syntax)


@lru_cache(maxsize=64)
def _bad_line(field: str) -> re.Pattern[str]:
    """A line break not followed by a blank line or a segment id (``ABC``) and the field separator.

    Searching for the newline first lets the regex engine skip from line to line; the first
    line was already checked to be ``MSH`` and the field separator.
    """
    return re.compile(rf"\n(?![A-Z][A-Z0-9]{{2}}(?:{re.escape(field)}|\n|\Z)|[^\S\n]*(?:\n|\Z))", re.ASCII)


_GLUED = re.compile(r"MSH[!-/:-@\[-`{-~]{5}", re.ASCII)
"""``MSH``, a field separator and the encoding characters: the start of another message."""


def _no_second_header(text: str) -> None:
    r"""Reject a second message: an MSH segment, or an MSH header embedded in a segment.

    Every line is a valid segment by now, so an ``MSH`` at a line start is a second message.
    Inside a segment, ``MSH|^~\&`` can never be a value (its delimiters would have to be
    escaped): it is the next message glued on without a terminator, whose segments would
    otherwise be read as this one's (another patient's drug on this encounter). The whole
    input is rejected: where the first message ends is not known.

    Raises:
        NotHL7: Naming the segment number, never a value.
    """
    found = text.find("MSH", 3)
    while found >= 0:
        if text[found - 1] == "\n":
            raise NotHL7("more than one MSH: send one message at a time")
        if _GLUED.match(text, found):
            segment = sum(1 for line in text[:found].split("\n") if line.strip())
            raise NotHL7(f"a second MSH inside segment {segment}")
        found = text.find("MSH", found + 3)


def _unframe(data: bytes) -> bytes:
    """Remove MLLP framing (0x0B … 0x1C 0x0D), UTF-8 BOMs and surrounding blank lines."""
    data = data.strip(b"\r\n\t ")
    if data.startswith(_BOM):  # a BOM before the MLLP start block
        data = data[len(_BOM) :].strip(b"\r\n\t ")
    if data[:1] == b"\x0b":
        data = data[1:]
    end = data.rfind(b"\x1c")
    if end >= 0 and not data[end + 1 :].strip(b"\r\n"):
        data = data[:end]
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    return data.strip(b"\r\n\t ")
