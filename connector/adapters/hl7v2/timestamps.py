"""HL7 v2 DTM timestamps: parsed by hand (the hot path), aware, and expressible in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo

from connector.adapters.errors import BadTimestamp


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


class Clock:
    """DTM parsing for one message, memoised: RXA-4 often repeats RXA-3, RXA-22 MSH-7."""

    __slots__ = ("_moments", "_utc", "zone")

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self._moments: dict[tuple[str, bool], datetime] = {}
        self._utc: dict[str, str] = {}

    def at(self, text: str, where: str, need_day: bool = False) -> datetime:
        """``parse_dtm`` of a DTM, once per text and precision."""
        moment = self._moments.get((text, need_day))
        if moment is None:
            moment = self._moments[text, need_day] = parse_dtm(text, self.zone, where, need_day)
        return moment

    def utc(self, text: str, where: str) -> str:
        """UTC ISO text of a DTM (for versions)."""
        found = self._utc.get(text)
        if found is None:
            found = self._utc[text] = utc_iso(self.at(text, where), where)
        return found

