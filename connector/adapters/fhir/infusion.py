"""Infusion lengths: the documented one (Oracle Health's infuse-over-time) and the ordered one.

``ordered_minutes`` reads the order a MedicationAdministration names in ``request`` (a
MedicationRequest, contained or a Bundle entry; an order elsewhere is not fetched), from its
first ``dosageInstruction``, first found of:

1. Oracle Health's ``infuse-over-time`` extension (valueQuantity in minutes or hours) on the
   MedicationRequest or on that dosage instruction: the order's own infuse-over time;
2. ``timing.repeat.duration`` with ``durationUnit`` (UCUM ``s``, ``min``, ``h``, ``d``): how
   long one administration lasts (FHIR Timing);
3. the first ``doseAndRate``: ``doseQuantity`` divided by ``rateQuantity`` (``mL/h``,
   ``mL/min``, …) or by ``rateRatio`` (``500 mL / 2 h``), when the rate's numerator unit is
   the dose's unit (volume over volume rate, or mass over mass rate; no conversion between
   units is guessed).

The ordered length only informs a review flag (a documented duration far beyond it), so an
order the adapter cannot read this way (other units, a zero or negative value, more than a
week) gives None and never rejects the administration; a reference to a ``#id`` that is not
contained, or to a rejected Bundle entry, still does (as every reference does).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from connector.adapters.errors import InvalidFhir, MissingField
from connector.adapters.fhir.fields import Json, number, obj, objects, text
from connector.adapters.fhir.references import Resolver, referenced

INFUSE_OVER_TIME: Final = "https://fhir-ehr.cerner.com/r4/StructureDefinition/infuse-over-time"
MAX_INFUSE_MINUTES: Final = 7 * 24 * 60  # one documented infusion; beyond this the value is an error
_SECONDS: Final = frozenset({"s", "sec", "secs", "second", "seconds"})
_MINUTES: Final = frozenset({"min", "mins", "minute", "minutes"})
_HOURS: Final = frozenset({"h", "hr", "hrs", "hour", "hours"})
_DAYS: Final = frozenset({"d", "day", "days"})


def infuse_minutes(resource: Json, where: str) -> int | None:
    """Minutes from Oracle Health's infuse-over-time extension on the administration, or None.

    Raises:
        MissingField: The extension has no value.
        InvalidFhir: Its unit is neither minutes nor hours, or the value is negative or longer than a week.
    """
    for i, extension in enumerate(objects(resource, "extension", where)):
        if extension.get("url") != INFUSE_OVER_TIME:
            continue
        ew = f"{where}.extension[{i}].valueQuantity"
        quantity = obj(extension, "valueQuantity", f"{where}.extension[{i}]")
        value = number(quantity, "value", ew)
        if value is None:
            raise MissingField(f"{ew}.value absent")
        unit = _unit(quantity, ew) or "min"
        if unit not in _MINUTES and unit not in _HOURS:
            raise InvalidFhir(f"{ew} unit is neither minutes nor hours")
        minutes = value * 60 if unit in _HOURS else value
        if not 0 <= minutes <= MAX_INFUSE_MINUTES:
            raise InvalidFhir(f"{ew}.value is negative or longer than a week")
        return _whole(minutes)
    return None


def ordered_minutes(resource: Json, contained: list[Json], resolver: Resolver, where: str) -> int | None:
    """How long the administration's order says to infuse over, in minutes (module docstring), or None.

    Raises:
        InvalidFhir: ``request`` names a ``#id`` that is not contained, or a rejected Bundle entry.
    """
    order, _ = referenced(obj(resource, "request", where), contained, resolver, f"{where}.request")
    if order is None or order.get("resourceType") != "MedicationRequest":
        return None
    mw = "MedicationRequest"
    instructions = objects(order, "dosageInstruction", mw)
    dosage = instructions[0] if instructions else {}
    dw = f"{mw}.dosageInstruction[0]"
    for found in (_extension_minutes(order, mw), _extension_minutes(dosage, dw), _timing_minutes(dosage, dw)):
        if found is not None:
            return found
    rates = objects(dosage, "doseAndRate", dw)
    return _rate_minutes(rates[0], f"{dw}.doseAndRate[0]") if rates else None


def _extension_minutes(parent: Json, where: str) -> int | None:
    for i, extension in enumerate(objects(parent, "extension", where)):
        if extension.get("url") == INFUSE_OVER_TIME:
            quantity = obj(extension, "valueQuantity", f"{where}.extension[{i}]")
            qw = f"{where}.extension[{i}].valueQuantity"
            value = number(quantity, "value", qw)
            return _bounded(_in_minutes(value, _unit(quantity, qw) or "min", days=False) if value is not None else None)
    return None


def _timing_minutes(dosage: Json, where: str) -> int | None:
    repeat = obj(obj(dosage, "timing", where), "repeat", f"{where}.timing")
    rw = f"{where}.timing.repeat"
    value = number(repeat, "duration", rw)
    unit = text(repeat, "durationUnit", rw)
    return _bounded(_in_minutes(value, unit, days=True) if value is not None and unit else None)


def _rate_minutes(dose_and_rate: Json, where: str) -> int | None:
    """Dose divided by rate, when the rate is the dose's unit per minute, hour or second."""
    dose = obj(dose_and_rate, "doseQuantity", where)
    amount = number(dose, "value", f"{where}.doseQuantity")
    dose_unit = _unit(dose, f"{where}.doseQuantity")
    if amount is None or not dose_unit:
        return None
    ratio = obj(dose_and_rate, "rateRatio", where)
    if ratio:
        numerator = obj(ratio, "numerator", f"{where}.rateRatio")
        denominator = obj(ratio, "denominator", f"{where}.rateRatio")
        per = number(numerator, "value", f"{where}.rateRatio.numerator")
        over = number(denominator, "value", f"{where}.rateRatio.denominator")
        rate_unit = _unit(numerator, f"{where}.rateRatio.numerator")
        time_unit = _unit(denominator, f"{where}.rateRatio.denominator")
        over_minutes = _in_minutes(over, time_unit, days=False) if over is not None else None
    else:
        quantity = obj(dose_and_rate, "rateQuantity", where)
        per = number(quantity, "value", f"{where}.rateQuantity")
        rate_unit, _, time_unit = _unit(quantity, f"{where}.rateQuantity").partition("/")
        over_minutes = _in_minutes(Decimal(1), time_unit, days=False)
    if per is None or over_minutes is None or per <= 0 or over_minutes <= 0 or rate_unit != dose_unit:
        return None
    return _bounded(amount / per * over_minutes)


def _unit(quantity: Json, where: str) -> str:
    """A Quantity's unit, the UCUM ``code`` first, lower-cased (``mL`` and ``ml`` are one unit)."""
    return (text(quantity, "code", where) or text(quantity, "unit", where)).strip().lower()


def _in_minutes(value: Decimal, unit: str, *, days: bool) -> Decimal | None:
    unit = unit.strip().lower()
    if unit in _MINUTES:
        return value
    if unit in _HOURS:
        return value * 60
    if unit in _SECONDS:
        return value / 60
    if days and unit in _DAYS:
        return value * 24 * 60
    return None


def _bounded(minutes: Decimal | None) -> int | None:
    """Whole minutes when more than zero and at most a week, else None."""
    if minutes is None or not 0 < minutes <= MAX_INFUSE_MINUTES:
        return None
    return _whole(minutes)


def _whole(minutes: Decimal) -> int:
    return int(minutes.to_integral_value(rounding=ROUND_HALF_UP))
