"""HL7 v2 RAS groups: which order, route and segments belong to each RXA; what the order says.

A RAS^O17 is ``MSH PID [PV1] {ORC [TQ1…] [RXO…] [RXE…] {RXA… RXR [OBX NTE…]}}``: an ORC opens an
order, whose header (timing, order detail, encoding) runs up to its first RXA; each run of RXA is
closed by the next RXR, which is the route of every RXA since the last RXR or ORC; OBX, NTE and
Z-segments after an RXA (or after the RXR closing its run) belong to that administration.

**Ordered minutes** (how long the order said to infuse over), for the review of documented
durations far beyond it, come from the order's TQ1-13 *occurrence duration* (CQ,
``quantity^units``: "the duration for which the service is requested for each occurrence") in
the order header: units ``s``/``min``/``h``/``d`` (UCUM, also ``SEC``/``MIN``/``HR``/``H``/``D``,
case-insensitive); a quantity that is not a positive number, or units that are missing or
not a time, give none (the value is a review signal, never a reason to reject). Considered
and not read:

- TQ1-6 *service duration* and TQ.3 (ORC-7 / RXE-1 in v2.3–2.4, e.g. ``INDEF``): how long the
  whole order runs (days of a Q24H order), not one administration;
- RXO-21/22 requested and RXE-23/24 give rate (``mL/h``): a rate is a duration only with the
  volume, which feeds send inconsistently (RXO-2 amount, RXE-3/RXE-5, or not at all); and
  RXA-12 is the administered rate, what was done rather than ordered;
- TQ1-7/TQ1-8 start/end: the order's validity, not an infuse-over time.

**Primary** (``policy.site.primary_hl7``, ``SEG-F[.C][=VALUE]``) is read from the segment
nearest the administration: the RXA itself, the RXR of its run, then the OBX/NTE/Z-segments
after it, then the order header (ORC, TQ1, RXO, RXE, … nearest before it), then the segments
before the first order (PID, PV1, …). A repeating field marks the administration when any of
its repetitions does.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from connector.adapters.hl7v2.segments import Message, Segment, components_of
from connector.policy.site import PrimaryField, parse_primary_hl7

_MINUTES = {
    "S": Decimal(1) / 60,
    "SEC": Decimal(1) / 60,
    "MIN": Decimal(1),
    "H": Decimal(60),
    "HR": Decimal(60),
    "D": Decimal(1440),
}
_MAX_MINUTES = 60 * 24 * 366  # a year: anything longer is not an infuse-over time
_MAX_DIGITS = 16  # longer quantity texts are not durations (and would be costly to multiply)


@dataclass(frozen=True, slots=True)
class Group:
    """One administration's place in its message.

    Attributes:
        placer: ORC-2 EI.1 of its order (``""`` when no ORC came before it).
        filler: ORC-3 EI.1 of its order.
        rxa: The RXA.
        rxr: The RXR closing its run, if any.
        at: Index of the RXA in the message's segments.
        order_at: Index of its ORC (0 when none came before it: the message start).
        header_end: Index of the first RXA of its order (the order header ends there).
        run_end: Index of the RXR closing its run, else of the RXA itself.
    """

    placer: str
    filler: str
    rxa: Segment
    rxr: Segment | None
    at: int
    order_at: int
    header_end: int
    run_end: int


def groups(message: Message) -> list[Group]:
    """Every RXA with its order and route, in message order.

    An RXR with no RXA before it belongs to the order detail (RXO/RXE) and says what was
    ordered, not given. hl7apy's ``find_groups`` gets ``RXA RXA RXR RXA RXA RXR`` wrong (it
    gives the RXAs after the first RXR the wrong route); this loop is why it is not used.
    """
    placer = filler = ""
    order_at, header_end = 0, -1
    pending: list[tuple[str, str, Segment, int, int, int]] = []
    out: list[Group] = []
    for index, name in enumerate(message.names):
        if name == "RXA":
            if header_end < 0:
                header_end = index
            pending.append((placer, filler, message.segments[index], index, order_at, header_end))
        elif name == "RXR":
            rxr = message.segments[index]
            for p, f, rxa, at, o, h in pending:
                out.append(Group(p, f, rxa, rxr, at, o, h, index))
            pending.clear()
        elif name == "ORC":
            for p, f, rxa, at, o, h in pending:
                out.append(Group(p, f, rxa, None, at, o, h, at))
            pending.clear()
            orc = message.segments[index]
            placer, filler = orc.value(2), orc.value(3)
            order_at, header_end = index, -1
    for p, f, rxa, at, o, h in pending:
        out.append(Group(p, f, rxa, None, at, o, h, at))
    return out


def ordered_minutes(message: Message, group: Group) -> int | None:
    """Minutes of the first usable TQ1-13 occurrence duration in the order header, if any."""
    if group.order_at and group.header_end - group.order_at <= 1:
        return None  # the header is the ORC alone: no TQ1 (checked first: the common case)
    for segment in message.segments[group.order_at : group.header_end]:
        if segment.name == "TQ1":
            minutes = _duration(segment.value(13), segment.value(13, 2))
            if minutes is not None:
                return minutes
    return None


def _duration(quantity: str, units: str) -> int | None:
    factor = _MINUTES.get(units.strip().upper())
    quantity = quantity.strip()
    if factor is None or not quantity or len(quantity) > _MAX_DIGITS:
        return None
    try:
        amount = Decimal(quantity)
        if not amount.is_finite() or amount <= 0:
            return None
        minutes = int((amount * factor).to_integral_value(ROUND_HALF_UP))
    except ArithmeticError:  # InvalidOperation (not a number), Overflow
        return None
    return minutes if 0 < minutes <= _MAX_MINUTES else None


@lru_cache(maxsize=16)
def primary_field(spec: str) -> PrimaryField | None:
    """``policy.site.primary_hl7`` parsed (validated when the policy was loaded), cached."""
    return parse_primary_hl7(spec)


def is_primary(message: Message, group: Group, spec: PrimaryField) -> bool:
    """Whether the segment ``spec`` names, nearest the administration, marks it primary."""
    segment = _nearest(message.segments, group, spec.segment)
    if segment is None:
        return False
    component = spec.component or 1
    for repetition in segment.repetitions(spec.field):
        parts = components_of(repetition, segment.syntax)
        if component <= len(parts) and spec.marks(parts[component - 1]):
            return True
    return False


def _nearest(segments: tuple[Segment, ...], group: Group, name: str) -> Segment | None:
    """The segment called ``name`` in the administration's group (see the module docstring)."""
    if name == "RXA":
        return group.rxa
    if name == "RXR":
        return group.rxr
    found = _first(segments, group.at + 1, name, ("RXA", "RXR", "ORC"))  # after the RXA itself
    if found is None and group.rxr is not None:  # after the RXR closing its run (OBX, NTE, Z…)
        found = _first(segments, group.run_end + 1, name, ("RXA", "ORC"))
    if found is not None:
        return found
    for segment in reversed(segments[group.order_at : group.header_end]):  # the order header
        if segment.name == name:
            return segment
    for segment in segments[: _first_order(segments)]:  # before the first order: PID, PV1, …
        if segment.name == name:
            return segment
    return None


def _first(segments: tuple[Segment, ...], start: int, name: str, stops: tuple[str, ...]) -> Segment | None:
    for segment in segments[start:]:
        if segment.name == name:
            return segment
        if segment.name in stops:
            return None
    return None


def _first_order(segments: tuple[Segment, ...]) -> int:
    for index, segment in enumerate(segments):
        if segment.name in ("ORC", "RXA"):
            return index
    return len(segments)
