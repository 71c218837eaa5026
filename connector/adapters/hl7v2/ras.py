"""HL7 v2 RAS administrations: ORC/RXA/RXR groups → ``Administration`` objects.

Which fields carry the drug, times, status, dose and route/method codings, and the ids
derived from the source identity; ``groups`` says which RXA belongs to which order and route,
and what the order adds (ordered minutes, the ``primary`` flag). Every failure is an
``AdapterError`` whose detail names the field, never its value.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache

from connector.adapters.errors import MissingField, UnknownStatus
from connector.adapters.hl7v2.encoding import Syntax
from connector.adapters.hl7v2.groups import Group, groups, is_primary, ordered_minutes
from connector.adapters.hl7v2.segments import Message, Segment, components_of
from connector.adapters.hl7v2.timestamps import Clock
from connector.model import (
    EMPTY,
    Administration,
    AdminStatus,
    CodedValue,
    Coding,
    SourceRef,
)
from connector.model.ids import administration_id
from connector.policy.model import Policy
from connector.policy.site import PrimaryField

SOURCE_KIND = "hl7v2"
ROUTE_SYSTEM = "HL70162"  # RXR-1 route of administration
DEVICE_SYSTEM = "HL70164"  # RXR-3 administration device (IVP = IV *pump*)
METHOD_SYSTEM = "HL70165"  # RXR-4 administration method (IVP = IV *push*)

_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)", re.ASCII)
_NO_CONTEXTS: frozenset[str] = frozenset()
_CACHED_FIELD_LENGTH = 512
_RXA_FIELDS = 23  # RXA-0 … RXA-22: everything the adapter reads, split in one pass
_MAX_DOSE_TEXT = 32  # longer RXA-6 texts are not cached
_NO_ROUTE = (EMPTY, "", EMPTY)


class RasReader:
    """Builds the administrations of one RAS message."""

    __slots__ = ("clock", "department", "encounter_key", "facility", "policy", "primary", "sent_utc", "source")

    def __init__(
        self,
        policy: Policy,
        clock: Clock,
        facility: str,
        sent_utc: str,
        encounter_key: str,
        department: str,
        source: SourceRef,
        primary: PrimaryField | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.facility = facility
        self.sent_utc = sent_utc
        self.encounter_key = encounter_key
        self.department = department
        self.source = source
        self.primary = primary

    def administrations(self, message: Message) -> tuple[Administration, ...]:
        """One administration per RXA, with the order and route ``groups`` gives it."""
        grouped = groups(message)
        if not grouped:
            raise MissingField("RAS without RXA")
        used: set[str] = set()
        out = []
        for ordinal, group in enumerate(grouped, start=1):
            values = group.rxa.values(_RXA_FIELDS)
            identity = (self.facility, group.placer, group.filler, values[1], values[2])
            admin_id = administration_id(SOURCE_KIND, *identity)
            if admin_id in used:  # the same identity twice in one message: keep both, deterministically
                admin_id = administration_id(SOURCE_KIND, *identity, str(ordinal))
            used.add(admin_id)
            out.append(self._administration(admin_id, message, group, values))
        return tuple(out)

    def _administration(self, admin_id: str, message: Message, group: Group, values: list[str]) -> Administration:
        clock = self.clock
        rxa, rxr = group.rxa, group.rxr
        start_text = values[3]
        if not start_text:
            raise MissingField("RXA-3 empty")
        start = clock.at(start_text, "RXA-3", need_day=True)
        end_text = values[4]
        end = clock.at(end_text, "RXA-4", need_day=True) if end_text else None
        drug = _coded_field(rxa.field(5), "", rxa.syntax)
        if drug.is_empty:
            raise MissingField("RXA-5 empty")
        entered = values[22]
        route, site, method = _NO_ROUTE if rxr is None else _route(rxr)
        return Administration(
            id=admin_id,
            encounter_key=self.encounter_key,
            drug=drug,
            start=start,
            route=route,
            method=method,
            end=None if end == start else end,
            status=_status(values[20], values[21], self.policy),
            # an empty MSH-7 sorts before any dated version ('|' would sort after the digits)
            version=f"{self.sent_utc or '0000'}|{clock.utc(entered, 'RXA-22') if entered else ''}",
            site=site,
            dose=_dose(values[6]),
            dose_unit=values[7],
            ordered_minutes=ordered_minutes(message, group),
            has_rate=bool(values[12]),
            primary=self.primary is not None and is_primary(message, group, self.primary),
            contexts=_NO_CONTEXTS,
            department=self.department,
            source=self.source,
            time_review=clock.review((("RXA-3", start_text), ("RXA-4", end_text))),
        )


def _status(sent: str, action: str, policy: Policy) -> AdminStatus:
    """RXA-21 ``D`` deletes; otherwise RXA-20 through the mapping (empty = complete).

    A/U/X (table 0323) and the v2.6+ table 0206 codes keep the status: an update is simply a
    newer version of the same administration id.
    """
    if action.upper() == "D":
        return AdminStatus.DELETED
    if not sent:
        return AdminStatus.GIVEN
    status = policy.status_of(sent, "hl7")
    if status is None:
        raise UnknownStatus("RXA-20 not in the status mapping")
    return status


def _route(rxr: Segment) -> tuple[CodedValue, str, CodedValue]:
    """RXR-1 route, RXR-2 site and the RXR-4/RXR-3 method, cached by the RXR text.

    A feed sends a handful of distinct RXR segments, and the result is immutable. Long segments
    are read every time (a hostile feed must not pin large strings).
    """
    if len(rxr.text) > _CACHED_FIELD_LENGTH:
        return _route_of(rxr)
    return _route_of_text(rxr.text, rxr.syntax)


@lru_cache(maxsize=1024)
def _route_of_text(text: str, syntax: Syntax) -> tuple[CodedValue, str, CodedValue]:
    return _route_of(Segment(text, syntax))


def _route_of(rxr: Segment) -> tuple[CodedValue, str, CodedValue]:
    syntax = rxr.syntax
    route = _coded_field(rxr.field(1), ROUTE_SYSTEM, syntax)
    return route, rxr.value(2), _method(rxr.field(4), rxr.field(3), syntax)


def _dose(text: str) -> Decimal | None:
    """RXA-6 as a number (None when it is not one), cached: doses repeat across messages."""
    if len(text) > _MAX_DOSE_TEXT:
        return _number.__wrapped__(text)
    return _number(text)


@lru_cache(maxsize=1024)
def _number(text: str) -> Decimal | None:
    return Decimal(text) if _NUMBER.fullmatch(text) else None


def _method(raw_method: str, raw_device: str, syntax: Syntax) -> CodedValue:
    """``_method_of``, cached unless the fields are long enough to make the cache a memory risk."""
    if len(raw_method) + len(raw_device) > _CACHED_FIELD_LENGTH:
        return _method_of.__wrapped__(raw_method, raw_device, syntax)
    return _method_of(raw_method, raw_device, syntax)


@lru_cache(maxsize=1024)
def _method_of(raw_method: str, raw_device: str, syntax: Syntax) -> CodedValue:
    """RXR-4 method codings (table 0165) then RXR-3 device codings (table 0164).

    Both tables have an ``IVP`` code with opposite meanings (push vs pump), so each keeps its
    own system. The text is the method's, else the device's.
    """
    push = _coded_field(raw_method, METHOD_SYSTEM, syntax)
    device = _coded_field(raw_device, DEVICE_SYSTEM, syntax)
    if device.is_empty:
        return push
    if push.is_empty:
        return device
    return CodedValue((*push.codings, *device.codings), push.text or device.text)


def _coded_field(raw: str, default_system: str, syntax: Syntax) -> CodedValue:
    """``coded`` of a raw CWE field's first repetition, cached by the raw text.

    Routes, methods and the formulary repeat in almost every message, and building the
    frozen codings is a large share of the parse time; the result is immutable. Long fields
    are not cached: a hostile feed could otherwise pin 4096 near-1 MiB strings in memory.
    """
    if not raw:
        return EMPTY
    if len(raw) > _CACHED_FIELD_LENGTH:
        return _coded_raw.__wrapped__(raw, default_system, syntax)
    return _coded_raw(raw, default_system, syntax)


@lru_cache(maxsize=4096)
def _coded_raw(raw: str, default_system: str, syntax: Syntax) -> CodedValue:
    return coded(components_of(raw.split(syntax.repetition, 1)[0], syntax), default_system)


def coded(components: list[str], default_system: str) -> CodedValue:
    """A CWE/CE as a coded value: primary and alternate triplets, original text as text.

    Args:
        components: Unescaped CWE components.
        default_system: System given to the primary code when CWE-3 is empty (the table the
            field is drawn from, e.g. ``HL70162`` for RXR-1).

    Returns:
        Codings for CWE-1/2/3 and CWE-4/5/6 (each only when its code is sent) and
        text = CWE-9 original text, else CWE-2.
    """
    parts = components + [""] * (9 - len(components))
    codings = []
    if parts[0]:
        codings.append(Coding(parts[2] or default_system, parts[0], parts[1]))
    if parts[3]:
        codings.append(Coding(parts[5], parts[3], parts[4]))
    return CodedValue(tuple(codings), parts[8] or parts[1])
