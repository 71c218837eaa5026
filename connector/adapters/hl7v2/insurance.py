"""HL7 v2 insurance: the primary coverage's identifiers from the IN1 segments (ADT and RAS alike).

A patient may have several coverages, one IN1 each (with its IN2/IN3). Which one pays first is
the coordination-of-benefits priority, IN1-22 (ST, "1" = primary; v2.3 to v2.8). Feeds that
leave it empty list the coverages in order of precedence by set id, IN1-1 (``1`` first). So the
primary coverage is the IN1 with the lowest numeric IN1-22; when no IN1 sends a numeric
IN1-22, the one with the lowest numeric IN1-1; ties (and IN1s without either) in message order.

Its identifiers, most specific first: IN1-2 insurance plan id (CWE.1), IN1-3 insurance company
id (CX.1, every repetition), IN1-4 insurance company name (XON.1, every repetition). The site
payer map (``mappings/payer_map.yaml``) turns them into a payer policy; the adapter only reads.
"""

from __future__ import annotations

from connector.adapters.hl7v2.segments import Message, Segment, components_of

_NONE = 1 << 62  # sorts after any sent number


def primary_payer_ids(message: Message) -> tuple[str, ...]:
    """Identifiers of the primary coverage (see the module docstring); empty when no IN1 is sent.

    Values are whitespace-normalised; values holding control characters are left out (they
    could never match a payer map entry and must not reach a log or a report).
    """
    coverages = message.every("IN1")
    if not coverages:
        return ()
    # min keeps the first of equal keys: ties go to the earlier IN1
    primary = coverages[0] if len(coverages) == 1 else min(coverages, key=_precedence)
    found: dict[str, None] = {}  # ordered and de-duplicated
    plan = _clean(primary.value(2))
    if plan:
        found[plan] = None
    for number in (3, 4):
        for repetition in primary.repetitions(number):
            value = _clean(components_of(repetition, primary.syntax)[0])
            if value:
                found[value] = None
    return tuple(found)


def _precedence(in1: Segment) -> tuple[bool, int, int]:
    """Sort key: (no IN1-22, IN1-22, IN1-1); a non-numeric value counts as absent."""
    priority, set_id = _number(in1.value(22)), _number(in1.value(1))
    return (priority is None, _NONE if priority is None else priority, _NONE if set_id is None else set_id)


def _number(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def _clean(value: str) -> str:
    value = " ".join(value.split())
    return value if value.isprintable() else ""
