r"""HL7 v2 character sets, delimiters and escapes: what a message's MSH says about its own syntax.

The whole message is decoded to text *before* splitting: in ISO-2022-JP, Big5 or GB 18030 a
multi-byte character can contain the bytes of ``|``, ``^`` or ``\``. So the character set
(MSH-18/MSH-20) is read from the raw header bytes and drives the decoding of the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from connector.adapters.errors import NotHL7

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


@lru_cache(maxsize=256)
def syntax_of(delimiters: bytes, charsets: bytes, scheme: bytes) -> Syntax:
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


def decode_text(data: bytes, codec: str) -> str:
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
    return decode_text(data, codec)
