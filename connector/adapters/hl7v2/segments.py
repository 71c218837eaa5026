"""HL7 v2 segments and fields: split once, unescaped only where an escape is present.

Segments are split into fields when the message is read (one ``str.split`` per segment costs
less than deciding lazily on every access), and values are unescaped only when they contain
the escape character: most fields of a RAS are read once or never.
"""

from __future__ import annotations

from connector.adapters.hl7v2.encoding import Syntax, unescape

_NULL = '""'  # HL7 explicit null: "delete the value"; read as empty


class Segment:
    """One segment, split into fields when built, numbered as in the standard.

    For MSH, field 1 is the field separator and field 2 the encoding characters, so
    ``field(n)`` is MSH-n for every segment.
    """

    __slots__ = ("_fields", "_plain", "name", "syntax", "text")

    def __init__(self, text: str, syntax: Syntax, plain: bool | None = None) -> None:
        """Split ``text`` on the field separator.

        Args:
            text: The segment, without its terminator.
            syntax: The message's delimiters.
            plain: Whether the caller already knows the text after MSH-2 holds no
                repetition, subcomponent, escape or quote (checked once per message by
                ``framing``); None: checked here.
        """
        # Built for every line of every message: one split and five slot stores, with the
        # MSH and the unknown-plainness cases off the common path.
        fields = text.split(syntax.field)
        name = self.name = text[:3]
        self.text = text
        self.syntax = syntax
        if name == "MSH":
            fields.insert(1, syntax.field)
            # MSH-2 holds every delimiter by definition: only what follows it can be plain
            plain = is_plain(text[4 + len(fields[2]) :], syntax)
        elif plain is None:
            plain = is_plain(text, syntax)
        # Plain: no repetition, subcomponent, escape or quote anywhere after MSH-2, so a value
        # is its field up to the first component separator (the common shape).
        self._plain = plain
        self._fields = fields

    def field(self, number: int) -> str:
        """The raw (still escaped) field, all repetitions; empty when absent."""
        fields = self._fields
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
        fields = self._fields
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
        fields = self._fields
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


def is_plain(text: str, syntax: Syntax) -> bool:
    """Whether ``text`` holds no repetition, subcomponent, escape or quote character."""
    return (
        syntax.escape not in text
        and syntax.repetition not in text
        and syntax.subcomponent not in text
        and '"' not in text
    )


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
    """A decoded message: its syntax and its segments in order (MSH first), with their ids."""

    __slots__ = ("names", "segments", "syntax")

    def __init__(self, syntax: Syntax, segments: tuple[Segment, ...]) -> None:
        self.syntax = syntax
        self.segments = segments
        self.names = tuple([segment.name for segment in segments])
        """The segment ids, in order (``names[i]`` is ``segments[i].name``)."""

    @property
    def msh(self) -> Segment:
        """The message header."""
        return self.segments[0]

    def first(self, name: str) -> Segment | None:
        """The first segment with this id, if any."""
        names = self.names
        return self.segments[names.index(name)] if name in names else None

    def every(self, name: str) -> list[Segment]:
        """Every segment with this id, in order."""
        if name not in self.names:
            return []
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
