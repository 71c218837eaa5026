r"""Synthetic feeds as HL7 v2.5.1: one RAS^O17 per administration, an ADT^A03 per discharge.

One RAS^O17 per administration (MSH, PID, PV1, ORC, RXA, RXR), segments ended by ``\r`` and
messages separated by ``\n``. Two EHR shapes: Epic-like (seconds in times, RXA-4 = RXA-3 for
pushes, route and method coded in RXR-1/RXR-4 with their tables, IV pump device in RXR-3 for
infusions) and Cerner-like (minute times, RXA-4 empty for pushes, route as local text: ``IV
PUSH``, ``IVPB``). RXA-20 ``CP``/``NA``, RXA-21 ``A``; a correction is a later message (later
MSH-7 and RXA-22) for the same ORC-2/ORC-3/RXA-1/RXA-2 with RXA-21 ``D`` or ``U``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from connector.synth.feed import CORRECTED, FeedAdministration, FeedEncounter, FeedEvent

RECEIVER: Final = "IVPUSH"
_APPLICATIONS: Final = {"epic": "EPIC", "cerner": "CERNER"}
_ESCAPES: Final = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("~", "\\R\\"), ("&", "\\T\\"))


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
