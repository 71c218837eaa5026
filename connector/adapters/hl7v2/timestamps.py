"""HL7 v2 DTM timestamps: parsed by hand (the hot path), aware, and expressible in UTC.

Every time is read in the facility's zone (the site zone of MSH-4, else ``--zone``): a value
sent without an offset is a local reading there; a value sent with one is that instant, shown
at the facility's offset then, so that its ``date()`` is the facility's local date (a
``+0000`` 03:27 at a Chicago facility is 22:27 the day before).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo

from connector.adapters.errors import BadTimestamp
from connector.adapters.sanity import DEFAULT_WINDOW, TimeWindow


def parse_dtm(text: str, zone: tzinfo, where: str, need_day: bool = False, notes: list[str] | None = None) -> datetime:
    """Parse an HL7 DTM ``YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]``.

    Args:
        text: The first component of a TS/DTM field, unescaped.
        zone: The site's zone, which gives a value sent without an offset its offset.
        where: Field name for the reject detail, e.g. ``RXA-3``.
        need_day: Reject values less precise than a day.
        notes: Receives ``"<where> fold"`` or ``"<where> gap"`` when a value sent without an
            offset is ambiguous or nonexistent in ``zone`` (see ``on_instant``).

    Returns:
        An instant with a fixed offset (the sent one, else the one ``zone`` has then), so that
        durations between two values are real elapsed time, across DST changes too.

    Raises:
        BadTimestamp: The value is not a DTM, is not a real date/time or lacks a day.
    """
    # Sliced by hand rather than with a regex or strptime: this runs several times per
    # administration and was the largest single cost of a RAS after the model objects.
    tz = zone
    if has_offset(text):
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
            moment = datetime(
                int(text[:4]),
                int(text[4:6]),
                int(text[6:8]),
                int(text[8:10]),
                int(text[10:12]),
                int(text[12:14] or 0),
                int(fraction.ljust(6, "0")) if fraction else 0,
                tzinfo=tz,
            )
        else:
            moment = datetime(int(text[:4]), int(text[4:6] or 1), int(text[6:8] or 1), int(text[8:10] or 0), tzinfo=tz)
    except ValueError as error:
        raise BadTimestamp(f"{where} not a valid date/time") from error
    if tz is zone and type(zone) is not timezone:
        return on_instant(moment, where, notes)
    return moment


def has_offset(text: str) -> bool:
    """Whether a DTM text ends in a ``+HHMM``/``-HHMM`` offset (no offset-free DTM has a sign there)."""
    return len(text) >= 9 and text[-5] in "+-"


def in_zone(moment: datetime, zone: tzinfo, where: str) -> datetime:
    """The same instant at the offset ``zone`` has then, as a fixed offset.

    Raises:
        BadTimestamp: The instant cannot be expressed in ``zone`` (the edges of year 1 / 9999).
    """
    try:
        local = moment.astimezone(zone)
        if type(zone) is timezone:  # already a fixed offset (checked first: the common case)
            return local
        offset = local.utcoffset()
    except (OverflowError, ValueError) as error:
        raise BadTimestamp(f"{where} out of range") from error
    if offset is None:
        return local
    fixed = _FIXED.get(offset)
    if fixed is None:
        fixed = _FIXED[offset] = timezone(offset)
    return local.replace(tzinfo=fixed)


def on_instant(moment: datetime, where: str, notes: list[str] | None = None) -> datetime:
    """A local reading in a real zone as an instant with a fixed offset.

    Python subtracts two datetimes that share a ``tzinfo`` object as wall-clock readings:
    01:30 to 03:30 on a spring-forward night would be two hours. With fixed offsets every
    difference is elapsed time. The local date and wall time are kept as read.

    Readings a DST change makes ambiguous follow coding-rules.md §2 "Time": in a fall-back
    fold (01:30 happens twice) the first occurrence, i.e. the offset in force before the
    change; inside a spring-forward gap (02:30 never happens) the offset in force just before
    the gap. Both are noted (``"RXA-3 fold"``/``"RXA-3 gap"``) so the lines they feed are
    flagged ``needs_review``.

    Raises:
        BadTimestamp: The zone cannot give the value an offset (out of its range).
    """
    try:
        offset = moment.utcoffset()
        other = moment.replace(fold=1).utcoffset()
    except (OverflowError, ValueError) as error:
        raise BadTimestamp(f"{where} out of range") from error
    if offset is None:  # a tzinfo that knows no offset: nothing to fix
        return moment
    if other != offset and notes is not None and other is not None:
        notes.append(f"{where} {'fold' if offset > other else 'gap'}")
    fixed = _FIXED.get(offset)
    if fixed is None:
        fixed = _FIXED[offset] = timezone(offset)
    return moment.replace(tzinfo=fixed)


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
# Offset → fixed zone for local readings (a zone has a handful of offsets in its history).
_FIXED: dict[timedelta, timezone] = {}


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


class Clock:
    """DTM parsing for one message, memoised: RXA-4 often repeats RXA-3, RXA-22 MSH-7.

    Every value read is checked against ``window`` (once per distinct text): a service dated
    year 1 or 9999 is ``bad_timestamp``, never a charge. ``zone`` is the facility's: values
    without an offset are read in it, values with one are moved to it (``in_zone``).
    """

    __slots__ = ("_moments", "_utc", "ambiguous", "convert", "window", "zone")

    def __init__(self, zone: tzinfo, window: TimeWindow = DEFAULT_WINDOW, convert: bool = True) -> None:
        self.zone = zone
        self.convert = convert  # False: the facility's zone is unknown, a sent offset is kept (§6)
        self.window = window
        self._moments: dict[tuple[str, bool], datetime] = {}
        self._utc: dict[str, str] = {}
        self.ambiguous: dict[str, str] = {}
        """DTM text → ``fold`` or ``gap``, for local readings a DST change makes ambiguous."""

    def at(self, text: str, where: str, need_day: bool = False) -> datetime:
        """``parse_dtm`` of a DTM, once per text and precision."""
        key = (text, need_day)
        moment = self._moments.get(key)
        if moment is None:
            notes: list[str] = []
            zone = self.zone
            moment = self.window.check(parse_dtm(text, zone, where, need_day, notes), where)
            if self.convert and has_offset(text):
                moment = in_zone(moment, zone, where)
            self._moments[key] = moment
            if notes:
                self.ambiguous[text] = notes[0].rpartition(" ")[2]
        return moment

    def review(self, fields: tuple[tuple[str, str], ...]) -> str:
        """Why the times of these ``(field, text)`` pairs need review; empty when none does."""
        ambiguous = self.ambiguous
        if not ambiguous:
            return ""
        return "; ".join(f"{where} {ambiguous[text]}" for where, text in fields if text in ambiguous)

    def utc(self, text: str, where: str) -> str:
        """UTC ISO text of a DTM (for versions)."""
        found = self._utc.get(text)
        if found is None:
            found = self._utc[text] = utc_iso(self.at(text, where), where)
        return found
