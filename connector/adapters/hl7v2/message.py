"""HL7 v2 inbound adapter: one RAS or ADT message → administrations and encounter events.

Reads RAS^O17 / RAS^O01 (v2.3–v2.8) administrations and the ADT triggers that change an
encounter (A03 close, A04/A08 update, A06/A07 class change). The generic reading (framing,
charset, delimiters, escapes, DTM) lives in the sibling modules; this one knows which
header, patient, visit and insurance field means what (shared/docs/hl7-notes.md), and
``ras`` knows the administration segments.

Every failure is an ``AdapterError`` whose detail names the field, never its value.
"""

from __future__ import annotations

from datetime import tzinfo

from connector.adapters.errors import (
    MissingEncounterKey,
    MissingField,
    UnsupportedMessageType,
    UnsupportedStructure,
)
from connector.adapters.hl7v2.framing import MAX_BYTES, read_message
from connector.adapters.hl7v2.ras import SOURCE_KIND, RasReader
from connector.adapters.hl7v2.segments import Message, Segment, components_of
from connector.adapters.hl7v2.timestamps import Clock
from connector.adapters.sanity import DEFAULT_WINDOW, TimeWindow, identifier
from connector.model import (
    EncounterEvent,
    EncounterEventKind,
    EncounterRef,
    ParsedRecord,
    PatientClass,
    SourceRef,
)
from connector.policy.model import Policy

_RAS_TRIGGERS = frozenset({"O17", "O01"})
_ADT_TRIGGERS = {
    "A03": EncounterEventKind.CLOSE,
    "A04": EncounterEventKind.UPDATE,
    "A08": EncounterEventKind.UPDATE,
    "A06": EncounterEventKind.CLASS_CHANGE,
    "A07": EncounterEventKind.CLASS_CHANGE,
}


def parse_hl7(
    raw: bytes,
    policy: Policy,
    local_zone: tzinfo,
    position: str = "",
    *,
    max_bytes: int = MAX_BYTES,
    window: TimeWindow = DEFAULT_WINDOW,
) -> ParsedRecord:
    r"""Read one HL7 v2 message into administrations and encounter events.

    Args:
        raw: One message as received (``\r``, ``\n`` or ``\r\n`` terminators; MLLP framing
            allowed).
        policy: Supplies the status (RXA-20) and patient class (PV1-2) mappings.
        local_zone: The site's zone, attached to timestamps sent without an offset.
        position: Where the message sits in its source (file offset, queue position).
        max_bytes: Inputs larger than this are rejected unread.
        window: Every time read (MSH-7, EVN-2, RXA-3/4/22) must fall inside it.

    Returns:
        The administrations (RAS) and encounter events (RAS and ADT) the message carries.

    Raises:
        AdapterError: Any input that cannot be read; nothing else escapes for any bytes. The
            first real problem is named: framing, type (MSH-9), structure, a RAS without RXA,
            the header (MSH-10, MSH-4, MSH-7), the encounter key, then the administrations.
    """
    message = read_message(raw, max_bytes)
    msh = message.msh
    header = msh.values(11)
    kind, trigger = header[9].upper(), msh.value(9, 2).upper()
    is_ras = kind == "RAS" and trigger in _RAS_TRIGGERS
    if not is_ras and not (kind == "ADT" and trigger in _ADT_TRIGGERS):
        raise UnsupportedMessageType("MSH-9 is not RAS^O17/O01 or ADT^A03/A04/A06/A07/A08")
    _check_structure(message, is_ras)
    if not header[10]:
        raise MissingField("MSH-10 empty")
    control_id = identifier(header[10], "MSH-10")
    facility = identifier(header[4], "MSH-4") if header[4] else ""
    clock = Clock(local_zone, window)
    sent_text = header[7]
    sent_at = clock.at(sent_text, "MSH-7") if sent_text else None
    pid, pv1 = message.first("PID"), message.first("PV1")
    encounter = _encounter(pid, pv1, facility)
    patient_class = _patient_class(pv1, policy)
    payer_ids = _payer_ids(message)
    dedup_key = f"{header[3]}|{facility}|{control_id}"
    if not is_ras:
        evn = message.first("EVN")
        recorded = evn.value(2) if evn else ""
        at = clock.at(recorded, "EVN-2") if recorded else sent_at
        event = EncounterEvent(encounter, _ADT_TRIGGERS[trigger], at, patient_class, payer_ids)
        return ParsedRecord(dedup_key, (), (event,))
    reader = RasReader(
        policy,
        clock,
        facility,
        clock.utc(sent_text, "MSH-7") if sent_text else "",
        encounter.key,
        pv1.value(3) if pv1 else "",
        SourceRef(SOURCE_KIND, control_id, position),
    )
    administrations = reader.administrations(message)
    seen = EncounterEvent(encounter, EncounterEventKind.SEEN, sent_at, patient_class, payer_ids)
    return ParsedRecord(dedup_key, administrations, (seen,))


def _check_structure(message: Message, is_ras: bool) -> None:
    """One patient (PID) and one visit (PV1) per message, before the first order of a RAS.

    A second PID or PV1 is another message whose header was lost: read as this one, its
    drugs would be billed on this patient's encounter. A RAS must also carry an RXA.

    Raises:
        UnsupportedStructure: A second PID or PV1, or one after the first ORC/RXA.
        MissingField: A RAS without RXA.
    """
    names = [segment.name for segment in message.segments]
    pid, pv1 = names.count("PID"), names.count("PV1")
    if pid > 1 or pv1 > 1:
        raise UnsupportedStructure("a second PID" if pid > 1 else "a second PV1")
    if not is_ras:
        return
    if "RXA" not in names:
        raise MissingField("RAS without RXA")
    first_order = min(names.index("RXA"), names.index("ORC")) if "ORC" in names else names.index("RXA")
    for name, count in (("PID", pid), ("PV1", pv1)):
        if count and names.index(name) > first_order:
            raise UnsupportedStructure(f"{name} after the first order")


def _encounter(pid: Segment | None, pv1: Segment | None, facility: str) -> EncounterRef:
    """Encounter from PV1-19 (visit number), else PID-18 (account number).

    The assigning authority is CX.4 (its HD.1), else the sending facility (MSH-4). A number
    or authority that is sent must be a usable identifier (``sanity.identifier``): a broken
    visit number is a reject, never a fallback to the account number.
    """
    where, cx = "PV1-19", pv1.components(19) if pv1 else []
    if not cx or not cx[0]:
        where, cx = "PID-18", pid.components(18) if pid else []
    if not cx or not cx[0]:
        raise MissingEncounterKey("neither PV1-19 nor PID-18 carries a number")
    visit = identifier(cx[0], where)
    sent_authority = cx[3] if len(cx) > 3 else ""
    authority = identifier(sent_authority, f"{where} CX.4") if sent_authority else facility
    patient = pid.value(3) if pid else ""
    return EncounterRef(
        key=f"{authority}|{visit}",
        visit_number=visit,
        assigning_authority=authority,
        patient_id=identifier(patient, "PID-3") if patient else "",
        facility=facility,
    )


def _patient_class(pv1: Segment | None, policy: Policy) -> PatientClass | None:
    """PV1-2 through the policy; a class the mapping does not know is OTHER, not dropped."""
    sent = pv1.value(2) if pv1 else ""
    if not sent:
        return None
    return policy.patient_class_of(sent) or PatientClass.OTHER


def _payer_ids(message: Message) -> tuple[str, ...]:
    """Insurance plan (IN1-3 CX.1) and company (IN1-4 XON.1) ids of every IN1, in order."""
    found: dict[str, None] = {}  # ordered and de-duplicated in linear time, however many repetitions
    for in1 in message.every("IN1"):
        for number in (3, 4):
            for repetition in in1.repetitions(number):
                value = components_of(repetition, in1.syntax)[0]
                if value:
                    found[value] = None
    return tuple(found)

