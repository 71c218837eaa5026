"""Reading FHIR JSON elements after validation: typed getters, coded values, references, times.

fhir.resources is lax about some JSON types (it accepts a number of seconds for a dateTime, a
string for a decimal, a JSON string holding an object for a complex element), so the getters
here check the JSON type of every element they read and reject anything else as
``InvalidFhir``: the adapter reads exactly what FHIR JSON allows. Details name the element,
never its value.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any, Final

import orjson

from connector.adapters.errors import BadTimestamp, InvalidFhir
from connector.adapters.sanity import DEFAULT_WINDOW, TimeWindow, identifier
from connector.model import EMPTY, CodedValue, Coding

Json = dict[str, Any]

RELATIVE_BASE: Final = "fhir"
"""The base ``parse_reference`` gives a relative reference (``Encounter/123``).

It is also the assigning authority of every FHIR encounter key (``references``): a feed is
one FHIR server, so a reference's base URL is dropped and ``fhir|123`` names Encounter 123
however it was referenced.
"""

MEMO_SIZE: Final = 4096
_coded_memo: dict[bytes, CodedValue] = {}
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_REFERENCE = re.compile(
    r"(?:(?P<base>.+)/)?(?P<type>[A-Z][A-Za-z]{1,63})/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?",
    re.ASCII,
)


def obj(parent: Json, name: str, where: str) -> Json:
    """A JSON object element, or ``{}`` when absent."""
    value = parent.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidFhir(f"{where}.{name} is not a JSON object")
    return value


def objects(parent: Json, name: str, where: str) -> list[Json]:
    """A repeating element of JSON objects, or ``[]`` when absent."""
    value = parent.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InvalidFhir(f"{where}.{name} is not an array of JSON objects")
    return value


def text(parent: Json, name: str, where: str) -> str:
    """A JSON string element, or ``""`` when absent."""
    value = parent.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidFhir(f"{where}.{name} is not a JSON string")
    return value


def number(parent: Json, name: str, where: str) -> Decimal | None:
    """A JSON number element as a Decimal (FHIR decimals are JSON numbers), or None."""
    value = parent.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidFhir(f"{where}.{name} is not a JSON number")
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def coded(concept: Json, where: str) -> CodedValue:
    """A CodeableConcept as a coded value: codings (system, code, display) and text.

    Codings with neither code nor display are left out (they say nothing). Results are
    memoised by the concept's JSON: routes, methods and drugs repeat in almost every message.
    """
    if not concept:
        return EMPTY
    key = orjson.dumps(concept)
    found = _coded_memo.get(key)
    if found is None:
        codings = tuple(coding_of(c, f"{where}.coding") for c in objects(concept, "coding", where))
        found = CodedValue(tuple(c for c in codings if c.code or c.display), text(concept, "text", where))
        if len(_coded_memo) >= MEMO_SIZE:
            _coded_memo.clear()
        _coded_memo[key] = found
    return found


def coding_of(coding: Json, where: str) -> Coding:
    """One FHIR Coding."""
    return Coding(text(coding, "system", where), text(coding, "code", where), text(coding, "display", where))


def parse_reference(reference: str) -> tuple[str, str, str] | None:
    """(base, resource type, id) of a literal reference, or None for ``#``/``urn:`` and others.

    The base is ``RELATIVE_BASE`` for a relative reference; a version suffix
    (``/_history/n``) is dropped: the encounter is the same whatever version was referenced.
    """
    found = _REFERENCE.fullmatch(reference)
    if found is None:
        return None
    return found["base"] or RELATIVE_BASE, found["type"], found["id"]


def reference_text(reference: Json, where: str) -> str:
    """A Reference's ``reference`` trimmed of Unicode whitespace, or ``""`` when absent.

    Raises:
        BadIdentifier: Only whitespace, or holding control characters (``sanity.identifier``).
    """
    sent = text(reference, "reference", where)
    return identifier(sent, f"{where}.reference") if sent else ""


def reference_id(parent: Json, name: str, where: str) -> str:
    """Id of the resource a Reference element points to (``Patient/12`` → ``12``), or ``""``."""
    parsed = parse_reference(reference_text(obj(parent, name, where), f"{where}.{name}"))
    return parsed[2] if parsed else ""


def moment(value: object, where: str, window: TimeWindow = DEFAULT_WINDOW, zone: tzinfo | None = None) -> datetime:
    """A FHIR dateTime/instant as an aware datetime, in ``zone`` when given, else with the offset as sent.

    A dateTime with a time must carry a zone (FHIR requires it); with ``zone`` it is the same
    instant expressed in that zone (``local``), so ``2020-05-11T03:27Z`` in America/Chicago is
    ``2020-05-10T22:27-05:00`` and is dated 05-10. A date alone (``2026-03-02``) has no zone in
    FHIR: it is midnight of that day in ``zone``, or midnight UTC without one (the one choice
    that does not depend on where the adapter runs). A year or year-month has no day and is
    rejected. Fractions beyond microseconds are truncated.

    Raises:
        InvalidFhir: Not a JSON string.
        BadTimestamp: Not a date-time the adapter can place on a day, or outside ``window``
            (year 0001 and 9999 are valid FHIR, never a service time).
    """
    if not isinstance(value, str):
        raise InvalidFhir(f"{where} is not a JSON string")
    if len(value) < 10:
        raise BadTimestamp(f"{where} has no day")
    try:
        if not _DATE.match(value) or (len(value) > 10 and value[10] != "T"):
            raise ValueError(where)
        if len(value) == 10:
            day = datetime.fromisoformat(value)
            if zone is None:
                return window.check(day.replace(tzinfo=UTC), where)
            return window.check(local(day.replace(tzinfo=zone), zone, where), where)
        found = datetime.fromisoformat(value)
    except ValueError:
        raise BadTimestamp(f"{where} is not a FHIR dateTime") from None
    if found.tzinfo is None:
        raise BadTimestamp(f"{where} has a time but no zone")
    utc_iso(found, where)  # rejects moments that cannot be placed in UTC (year 1 / 9999 edges)
    found = window.check(found, where)
    return _with_shared_zone(found) if zone is None else local(found, zone, where)


def local(value: datetime, zone: tzinfo, where: str) -> datetime:
    """The instant ``value`` as the wall time of ``zone``, with that instant's fixed offset.

    Stored times carry a fixed ``timezone(offset)`` (``store.codec``), never a named zone:
    the offset is the zone's at that very instant, so daylight saving time is right per
    instant (a March administration before the change keeps -06:00, one after it -05:00).

    Raises:
        BadTimestamp: The instant cannot be expressed in ``zone`` (beyond year 1 / 9999).
    """
    try:
        wall = value.astimezone(UTC).astimezone(zone)
        offset = wall.utcoffset()
    except (OverflowError, ValueError):
        raise BadTimestamp(f"{where} out of range") from None
    if offset is None:  # a tzinfo that gives no offset: keep the instant as sent
        return _with_shared_zone(value)
    return _with_shared_zone(wall.replace(tzinfo=timezone(offset)))


# One zone object per offset: ``fromisoformat`` makes a new one per value, and comparing
# datetimes whose zones are different objects costs ~5x (sorting an encounter's administrations,
# the rules' timelines). Equal offsets without a name are interchangeable. Bounded: a hostile
# feed could send many odd offsets.
_SHARED_ZONES: dict[timedelta, timezone] = {}
_SHARED_ZONES_MAX = 1024


def _with_shared_zone(value: datetime) -> datetime:
    zone = value.tzinfo
    if type(zone) is not timezone:
        return value
    offset = zone.utcoffset(None)
    shared = _SHARED_ZONES.get(offset)
    if shared is None:
        if len(_SHARED_ZONES) >= _SHARED_ZONES_MAX:
            return value
        shared = _SHARED_ZONES[offset] = zone
    return value if shared is zone else value.replace(tzinfo=shared)


def utc_iso(value: datetime, where: str) -> str:
    """UTC ISO 8601 text of an aware datetime (sorts in time order; used in versions)."""
    try:
        return value.astimezone(UTC).isoformat()
    except (OverflowError, ValueError):
        raise BadTimestamp(f"{where} out of range") from None
