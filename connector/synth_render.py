r"""Synthetic feeds as bytes: HL7 v2.5.1 RAS^O17/ADT^A03 archives and FHIR R4 NDJSON.

Renders the stream of ``connector.synth.timeline`` the way hospital interfaces send it, so
benchmarks and tests read realistic archives of any length without shipping any:

- **HL7 v2.5.1**: one RAS^O17 per administration (MSH, PID, PV1, ORC, RXA, RXR), segments
  ended by ``\r`` and messages separated by ``\n``. Two EHR shapes: Epic-like (seconds in
  times, RXA-4 = RXA-3 for pushes, route and method coded in RXR-1/RXR-4 with their tables,
  IV pump device in RXR-3 for infusions) and Cerner-like (minute times, RXA-4 empty for
  pushes, route as local text: ``IV PUSH``, ``IVPB``). RXA-20 ``CP``/``NA``, RXA-21 ``A``;
  a correction is a later message (later MSH-7 and RXA-22) for the same ORC-2/ORC-3/RXA-1/
  RXA-2 with RXA-21 ``D`` or ``U``. Each encounter ends with an ADT^A03.
- **FHIR R4** NDJSON, one resource per line: a MedicationAdministration per administration
  version (``context`` Encounter, ``effectiveDateTime``/``effectivePeriod`` with offsets,
  SNOMED routes, v2-0165 ``IVP`` for pushes; Cerner-like records use ``effectiveDateTime``,
  route text and the infuse-over-time extension instead), corrections as versionId 2
  (``entered-in-error`` for deletions), and one ``finished`` Encounter per encounter.

Everything is a pure function of the seed; writing streams, so a million-record archive is
never held in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, Final

import orjson

from connector.synth import (
    ADMINISTERED,
    CORRECTED,
    DISCHARGED,
    FeedAdministration,
    FeedEncounter,
    FeedEvent,
    feed_encounters,
    timeline,
)

FORMATS: Final = ("hl7", "fhir")
RECEIVER: Final = "IVPUSH"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED: Final = "http://snomed.info/sct"
V2_0165: Final = "http://terminology.hl7.org/CodeSystem/v2-0165"
ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
UCUM: Final = "http://unitsofmeasure.org"
INFUSE_OVER_TIME: Final = "https://fhir-ehr.cerner.com/r4/StructureDefinition/infuse-over-time"
_APPLICATIONS: Final = {"epic": "EPIC", "cerner": "CERNER"}
_TIMED: Final = frozenset({"infusion", "chemo", "hydration"})
_ESCAPES: Final = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("~", "\\R\\"), ("&", "\\T\\"))
_FLUSH_EVERY: Final = 1024
_IV_ROUTE: Final = {"coding": [{"system": SNOMED, "code": "47625008", "display": "Intravenous route"}]}
_IM_ROUTE: Final = {"coding": [{"system": SNOMED, "code": "78421000", "display": "Intramuscular route"}]}
_PUSH_METHOD: Final = {"coding": [{"system": V2_0165, "code": "IVP", "display": "IV Push"}]}


@dataclass(frozen=True, slots=True)
class FeedStats:
    """What a written feed holds (records = messages or NDJSON lines)."""

    records: int
    encounters: int
    administrations: int
    corrections: int
    bytes: int


def escape(text: str) -> str:
    """HL7 v2 escaping of a text value (the default delimiters: field, component, repetition, escape, sub)."""
    if any(c in text for c in "\\|^~&"):
        for raw, escaped in _ESCAPES:
            text = text.replace(raw, escaped)
    return text


def hl7_time(moment: datetime, seconds: bool = True) -> str:
    """HL7 DTM with the moment's own offset: ``YYYYMMDDHHMM[SS]±HHMM``."""
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds()) // 60 if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    m = moment  # formatted by hand: strftime is most of the cost of a message
    stamp = f"{m.year:04d}{m.month:02d}{m.day:02d}{m.hour:02d}{m.minute:02d}"
    if seconds:
        stamp += f"{m.second:02d}"
    return f"{stamp}{sign}{minutes // 60:02d}{minutes % 60:02d}"


def _fields(name: str, values: dict[int, str]) -> str:
    """A segment from its numbered fields (the rest empty)."""
    parts = [""] * (max(values) + 1)
    parts[0] = name
    for number, value in values.items():
        parts[number] = value
    return "|".join(parts)


def _msh(encounter: FeedEncounter, at: datetime, kind: str, control_id: str) -> str:
    app = _APPLICATIONS[encounter.vendor]
    return (
        f"MSH|^~\\&|{app}|{encounter.facility}|{RECEIVER}|{encounter.facility}|{hl7_time(at)}||{kind}|"
        f"{control_id}|P|2.5.1|||AL|NE"
    )


def _pid(encounter: FeedEncounter) -> str:
    family, given = encounter.name
    fac = encounter.facility
    return _fields(
        "PID",
        {
            1: "1",
            3: f"{encounter.patient}^^^{fac}^MR",
            5: f"{family}^{given}",
            7: encounter.birth_date,
            8: encounter.sex,
            18: f"A{encounter.visit}^^^{fac}^AN",
        },
    )


def _pv1(encounter: FeedEncounter, at: datetime, discharged: bool = False) -> str:
    patient_class = encounter.patient_class_at(at)
    fac = encounter.facility
    unit = "ED" if patient_class == "E" else "OBS"
    values = {
        1: "1",
        2: patient_class,
        3: f"{unit}^{unit}{encounter.number % 40 + 1:02d}^1^{fac}",
        7: f"{1000 + encounter.number % 97}^PROVIDER^PAT^^^^MD",
        10: "EM" if patient_class == "E" else "OBS",
        19: f"{encounter.visit}^^^{fac}^VN",
        44: hl7_time(encounter.arrival),
    }
    if discharged:
        values[45] = hl7_time(encounter.discharge)
    return _fields("PV1", values)


def _rxa(encounter: FeedEncounter, admin: FeedAdministration, corrected: bool) -> str:
    epic = encounter.vendor == "epic"
    item = admin.item
    fix = admin.correction if corrected else None
    end = fix.end if fix is not None else admin.end
    start_text = hl7_time(admin.start, seconds=epic)
    end_text = hl7_time(end, seconds=epic) if end is not None else (start_text if epic else "")  # Cerner: empty
    text = escape(item.text)
    drug = f"{item.rxnorm}^{text}^RXNORM" if admin.send_code else f"^{text}^"
    unit = f"{item.unit}^{item.unit}^UCUM" if epic else item.unit
    recorded = fix.recorded if fix is not None else admin.recorded
    action = fix.action if fix is not None else "A"
    return _fields(
        "RXA",
        {
            1: "0",
            2: str(admin.sub_id),
            3: start_text,
            4: end_text,
            5: drug,
            6: fix.dose if fix is not None else admin.dose,
            7: unit,
            20: "CP" if admin.given else "NA",
            21: action,
            22: hl7_time(recorded),
        },
    )


def _rxr(encounter: FeedEncounter, admin: FeedAdministration) -> str:
    kind = admin.item.kind
    if kind == "im":
        return "RXR|IM^Intramuscular^HL70162"
    if encounter.vendor == "cerner":
        return "RXR|^IV PUSH" if kind == "push" else "RXR|^IVPB"
    site = ("LA^Left Arm^HL70163", "RA^Right Arm^HL70163")[admin.sub_id % 2]
    if kind == "push":
        return f"RXR|IV^Intravenous^HL70162|{site}||IVP^IV Push^HL70165"
    method = "INF^Infuse^HL70165" if kind == "hydration" else "IVPB^IV Piggyback^HL70165"
    return f"RXR|IV^Intravenous^HL70162|{site}|IVP^IV Pump^HL70164|{method}"


def hl7_message(event: FeedEvent, control_id: str) -> bytes:
    r"""One event as an HL7 v2.5.1 message: segments ended by ``\r``, the message by ``\n``."""
    encounter, admin = event.encounter, event.administration
    if admin is None:
        segments = [
            _msh(encounter, event.at, "ADT^A03^ADT_A03", control_id),
            f"EVN|A03|{hl7_time(event.at)}",
            _pid(encounter),
            _pv1(encounter, event.at, discharged=True),
        ]
    else:
        segments = [
            _msh(encounter, event.at, "RAS^O17^RAS_O17", control_id),
            _pid(encounter),
            _pv1(encounter, event.at),
            f"ORC|RE|{admin.order}^{_APPLICATIONS[encounter.vendor]}|{admin.order}F^{encounter.facility}",
            _rxa(encounter, admin, corrected=event.kind == CORRECTED),
            _rxr(encounter, admin),
        ]
    return ("\r".join(segments) + "\r\n").encode()


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _number(text: str) -> int | float:
    return int(text) if text.isdigit() else float(text)


def fhir_resource(event: FeedEvent) -> dict[str, Any]:
    """One event as a FHIR R4 resource: a MedicationAdministration version, or the Encounter."""
    encounter, admin = event.encounter, event.administration
    if admin is None:
        return _encounter_resource(encounter)
    item = admin.item
    fix = admin.correction if event.kind == CORRECTED else None
    epic = encounter.vendor == "epic"
    end = fix.end if fix is not None else admin.end
    deleted = fix is not None and fix.action == "D"
    status = "entered-in-error" if deleted else ("completed" if admin.given else "not-done")
    medication: dict[str, Any] = {"text": item.text}
    if admin.send_code:
        medication = {"coding": [{"system": RXNORM, "code": item.rxnorm}], "text": item.text}
    resource: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": f"ma-{admin.order}-{admin.sub_id}",
        "meta": {"versionId": "2" if fix is not None else "1", "lastUpdated": _iso(event.at)},
        "status": status,
        "medicationCodeableConcept": medication,
        "subject": {"reference": f"Patient/{encounter.patient}"},
        "context": {"reference": f"Encounter/{encounter.visit}"},
    }
    timed = item.kind in _TIMED
    if timed and end is not None and epic:
        resource["effectivePeriod"] = {"start": _iso(admin.start), "end": _iso(end)}
    else:
        resource["effectiveDateTime"] = _iso(admin.start)
    if timed and end is not None and not epic:
        minutes = int((end - admin.start).total_seconds()) // 60
        resource["extension"] = [
            {"url": INFUSE_OVER_TIME, "valueQuantity": {"value": minutes, "unit": "min", "system": UCUM, "code": "min"}}
        ]
    resource["performer"] = [{"actor": {"reference": f"Practitioner/{1000 + encounter.number % 97}"}}]
    resource["request"] = {"reference": f"MedicationRequest/{admin.order}"}
    dose_text = fix.dose if fix is not None else admin.dose
    dosage: dict[str, Any] = {"route": _route(item.kind, epic)}
    if item.kind == "push" and epic:
        dosage["method"] = _PUSH_METHOD
    dosage["dose"] = {"value": _number(dose_text), "unit": item.unit, "system": UCUM, "code": item.unit}
    if item.kind == "hydration" and epic and end is not None:
        hours = max((end - admin.start).total_seconds() / 3600, 0.25)
        dosage["rateQuantity"] = {"value": round(_number(dose_text) / hours), "unit": "mL/h", "system": UCUM}
    resource["dosage"] = dosage
    return resource


def _route(kind: str, epic: bool) -> dict[str, Any]:
    if kind == "im":
        return _IM_ROUTE
    if epic:
        return _IV_ROUTE
    return {**_IV_ROUTE, "text": "IV Push" if kind == "push" else "IV Piggyback"}


def _encounter_resource(encounter: FeedEncounter) -> dict[str, Any]:
    code, display = ("OBSENC", "observation encounter") if encounter.observation else ("EMER", "emergency")
    return {
        "resourceType": "Encounter",
        "id": encounter.visit,
        "meta": {"versionId": "2", "lastUpdated": _iso(encounter.discharge)},
        "status": "finished",
        "class": {"system": ACT_CODE, "code": code, "display": display},
        "subject": {"reference": f"Patient/{encounter.patient}"},
        "period": {"start": _iso(encounter.arrival), "end": _iso(encounter.discharge)},
        "serviceProvider": {"reference": f"Organization/{encounter.facility}"},
    }


def fhir_line(event: FeedEvent) -> bytes:
    """One event as an NDJSON line."""
    return orjson.dumps(fhir_resource(event)) + b"\n"


def renderer(fmt: str, seed: int) -> Callable[[FeedEvent, int], bytes]:
    """The function that renders the ``sequence``-th event (1-based) of a feed in ``fmt``.

    HL7 control ids (MSH-10) are ``S<seed>-<sequence>``: unique in the feed, same every run.

    Raises:
        ValueError: Unknown format.
    """
    if fmt == "hl7":
        prefix = f"S{seed}-"

        def hl7(event: FeedEvent, sequence: int) -> bytes:
            return hl7_message(event, f"{prefix}{sequence:09d}")

        return hl7
    if fmt == "fhir":
        return lambda event, _sequence: fhir_line(event)
    raise ValueError(f"unknown feed format '{fmt}' (known: {', '.join(FORMATS)})")


def events(seed: int, encounters: int | None = None, limit: int | None = None) -> Iterator[FeedEvent]:
    """The events of a synthetic feed in sending order.

    Args:
        seed: Same seed, same events.
        encounters: How many encounters (all of their events are sent).
        limit: Stop starting encounters once this many events are under way (the ones
            started are finished). At least one of ``encounters``/``limit`` is needed.

    Raises:
        ValueError: Neither bound given.
    """
    if encounters is None and limit is None:
        raise ValueError("give a number of encounters or of records")
    return timeline(feed_encounters(seed, encounters), limit)


def records(fmt: str, seed: int, encounters: int | None = None, limit: int | None = None) -> Iterator[bytes]:
    """The records of a synthetic feed, one at a time: an HL7 message or an NDJSON line each.

    Arguments as for ``events``; ``fmt`` is ``hl7`` or ``fhir``.
    """
    render = renderer(fmt, seed)
    for sequence, event in enumerate(events(seed, encounters, limit), start=1):
        yield render(event, sequence)


def write_feed(
    out: BinaryIO, fmt: str, seed: int, encounters: int | None = None, limit: int | None = None
) -> FeedStats:
    """Write a synthetic feed to a binary stream in chunks, so memory stays flat.

    Arguments as for ``records``; returns what was written.
    """
    render = renderer(fmt, seed)
    count = written = closed = administrations = corrections = 0
    chunk: list[bytes] = []
    for count, event in enumerate(events(seed, encounters, limit), start=1):
        chunk.append(render(event, count))
        if event.kind == ADMINISTERED:
            administrations += 1
        elif event.kind == CORRECTED:
            corrections += 1
        elif event.kind == DISCHARGED:
            closed += 1
        if len(chunk) >= _FLUSH_EVERY:
            written += out.write(b"".join(chunk))
            chunk.clear()
    if chunk:
        written += out.write(b"".join(chunk))
    out.flush()
    return FeedStats(count, closed, administrations, corrections, written)
