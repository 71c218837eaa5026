r"""HL7 v2 text helpers for outbound messages: escaping, DTM/DT formatting, segment assembly.

Only the standard delimiters are used (``|^~\&``). Every value placed in a message goes
through :func:`escape`, so a delimiter inside a value can never change the message's
structure:

* ``\`` → ``\E\`` (handled in the same single pass as the others, so escapes are never
  escaped twice), ``|`` → ``\F\``, ``^`` → ``\S\``, ``&`` → ``\T\``, ``~`` → ``\R\``;
* a line break (``\r\n``, ``\n`` or ``\r``) → ``\.br\`` — a bare ``\r`` would end the segment;
* any other C0 control character or DEL → ``\Xhh\`` (``0x0B``/``0x1C`` would break MLLP framing).

:func:`unescape` is the inverse (``\.br\`` reads back as ``\n``); the connector's readers have
their own, this one exists so tests and tools can read back what the emitters wrote.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime

FIELD = "|"
COMPONENT = "^"
REPETITION = "~"
ESCAPE = "\\"
SUBCOMPONENT = "&"
ENCODING_CHARACTERS = COMPONENT + REPETITION + ESCAPE + SUBCOMPONENT
SEGMENT_TERMINATOR = "\r"

_LINE_BREAK = "\\.br\\"
_ESCAPES: dict[int, str] = {
    ord(ESCAPE): "\\E\\",
    ord(FIELD): "\\F\\",
    ord(COMPONENT): "\\S\\",
    ord(SUBCOMPONENT): "\\T\\",
    ord(REPETITION): "\\R\\",
    ord("\n"): _LINE_BREAK,
    **{code: f"\\X{code:02X}\\" for code in (*range(0x20), 0x7F) if code not in (0x0A, 0x0D)},
}
_CRLF = re.compile(r"\r\n?")
_ESCAPE_SEQUENCE = re.compile(r"\\(F|S|T|R|E|\.br|X(?:[0-9A-Fa-f]{2})+)\\")
_UNESCAPES = {"F": FIELD, "S": COMPONENT, "T": SUBCOMPONENT, "R": REPETITION, "E": ESCAPE, ".br": "\n"}


def escape(value: str) -> str:
    r"""Escape one value for any HL7 v2 field, component or subcomponent.

    Args:
        value: Text as the connector holds it.

    Returns:
        The value with delimiters, line breaks and control characters escaped.
    """
    return _CRLF.sub("\n", value).translate(_ESCAPES)


def unescape(value: str) -> str:
    r"""Undo :func:`escape` (and the standard ``\Xhh\`` escapes, decoded as Latin-1 bytes).

    Args:
        value: One component or subcomponent value, still escaped.

    Returns:
        The plain text; unknown escape sequences are left as they are.
    """

    def replace(match: re.Match[str]) -> str:
        token = match.group(1)
        if token.startswith("X"):
            return bytes.fromhex(token[1:]).decode("latin-1")
        return _UNESCAPES[token]

    return _ESCAPE_SEQUENCE.sub(replace, value)


def components(*values: str) -> str:
    """Escape the values and join them as the components of one field, trailing empties dropped."""
    return COMPONENT.join(escape(v) for v in values).rstrip(COMPONENT)


def repetitions(values: Iterable[str]) -> str:
    """Join already-built field values as repetitions of one field."""
    return REPETITION.join(values)


def segment(name: str, fields: Sequence[str]) -> str:
    r"""One segment (with its terminator) from built field values, trailing empty fields dropped.

    Args:
        name: Segment id such as ``PID``.
        fields: Field 1, 2, … already escaped (for MSH, from MSH-2: MSH-1 is the separator).

    Returns:
        The segment text ending with ``\r``.
    """
    text = FIELD.join((name, *fields)).rstrip(FIELD)
    return text + SEGMENT_TERMINATOR


def dtm(moment: datetime) -> str:
    """An HL7 DTM to the second, with the UTC offset when the time has one (``YYYYMMDDHHMMSS+ZZZZ``)."""
    text = moment.strftime("%Y%m%d%H%M%S")
    offset = moment.utcoffset()
    if offset is None:
        return text
    minutes = round(offset.total_seconds() / 60)
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}{minutes:02d}"


def dt(day: date) -> str:
    """An HL7 date (``YYYYMMDD``)."""
    return day.strftime("%Y%m%d")
