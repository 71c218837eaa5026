"""HL7 v2 inbound adapter: one RAS or ADT message → administrations and encounter events.

Reads RAS^O17 / RAS^O01 (v2.3–v2.8) administrations and the ADT triggers that change an
encounter (A01 admit, A04 register, A05 pre-admit and A08 update; A03 close; A06/A07 class
change). The generic reading (framing, charset, delimiters, escapes, DTM) lives in the sibling
modules; this one knows which header, patient and visit field means what
(shared/docs/hl7-notes.md); ``identity`` follows the site's identity chain, ``insurance``
picks the primary coverage, and ``ras``/``groups`` know the administration segments.

Times are read in the facility's zone: ``policy.site.zone_for(MSH-4)``, else ``local_zone``
(``--zone``); see ``timestamps``.

Every failure is an ``AdapterError`` whose detail names the field, never its value.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from connector.adapters.errors import MissingField, UnsupportedMessageType, UnsupportedStructure
from connector.adapters.hl7v2.framing import MAX_BYTES, read_message
from connector.adapters.hl7v2.groups import primary_field
from connector.adapters.hl7v2.identity import encounter_and_account, identity_hints, patient_key, placer_ids
from connector.adapters.hl7v2.insurance import primary_payer_ids
from connector.adapters.hl7v2.ras import SOURCE_KIND, RasReader
from connector.adapters.hl7v2.segments import Message, Segment
from connector.adapters.hl7v2.timestamps import Clock
from connector.adapters.sanity import DEFAULT_WINDOW, TimeWindow, identifier
from connector.model import (
    EncounterEvent,
    EncounterEventKind,
    EncounterRef,
    ParsedRecord,
    PatientClass,
    SourceRef,
    VisitWindow,
)
from connector.policy.model import Policy

_RAS_TRIGGERS = frozenset({"O17", "O01"})
_ADT_TRIGGERS = {
    "A01": EncounterEventKind.UPDATE,
    "A03": EncounterEventKind.CLOSE,
    "A04": EncounterEventKind.UPDATE,
    "A05": EncounterEventKind.UPDATE,
    "A08": EncounterEventKind.UPDATE,
    "A06": EncounterEventKind.CLASS_CHANGE,
    "A07": EncounterEventKind.CLASS_CHANGE,
}


def parse_hl7(
    raw: bytes,
    policy: Policy,
    local_zone: tzinfo | None,
    position: str = "",
    *,
    max_bytes: int = MAX_BYTES,
    window: TimeWindow = DEFAULT_WINDOW,
    source_file: str = "",
) -> ParsedRecord:
    r"""Read one HL7 v2 message into administrations and encounter events.

    Args:
        raw: One message as received (``\r``, ``\n`` or ``\r\n`` terminators; MLLP framing
            allowed).
        policy: Supplies the status (RXA-20) and patient class (PV1-2) mappings and the site
            profile (facility zones, identity chain, primary field).
        local_zone: The default zone (``--zone``), for facilities the site profile names none for.
        position: Where the message sits in its source (file offset, queue position).
        max_bytes: Inputs larger than this are rejected unread.
        window: Every time read (MSH-7, EVN-2, RXA-3/4/22, PV1-44/45) must fall inside it.
        source_file: Where the message was read from (``SourceRef.file`` of its administrations).

    Returns:
        The administrations (RAS) and encounter events (RAS and ADT) the message carries, the
        events with the PID-18 account number when sent. A
        RAS whose identity chain steps carry no visit number has them keyed ``""`` and
        ``unresolved`` set (see ``identity``); a RAS with one sets ``order_ids``; an ADT with
        a patient id sets ``visit``.

    Raises:
        AdapterError: Any input that cannot be read; nothing else escapes for any bytes. The
            first real problem is named: framing, type (MSH-9), structure, a RAS without RXA,
            the header (MSH-10, MSH-4, MSH-7), the encounter key, the account (PID-18), then the
            administrations.
    """
    message = read_message(raw, max_bytes)
    msh = message.msh
    header = msh.values(11)
    kind, trigger = header[9].upper(), msh.value(9, 2).upper()
    is_ras = kind == "RAS" and trigger in _RAS_TRIGGERS
    if not is_ras and not (kind == "ADT" and trigger in _ADT_TRIGGERS):
        raise UnsupportedMessageType("MSH-9 is not RAS^O17/O01 or ADT^A01/A03/A04/A05/A06/A07/A08")
    _check_structure(message, is_ras)
    if not header[10]:
        raise MissingField("MSH-10 empty")
    control_id = identifier(header[10], "MSH-10")
    facility = identifier(header[4], "MSH-4") if header[4] else ""
    site = policy.site
    zone = site.zone_for(facility) or local_zone
    clock = Clock(zone or UTC, window, convert=zone is not None)
    sent_text = header[7]
    sent_at = clock.at(sent_text, "MSH-7") if sent_text else None
    pid, pv1 = message.first("PID"), message.first("PV1")
    encounter, account = encounter_and_account(pid, pv1, facility, site, resolvable=is_ras)
    patient_class = _patient_class(pv1, policy)
    payer_ids = primary_payer_ids(message)
    department = pv1.value(3) if pv1 else ""
    location = " ".join(department.split())
    dedup_key = f"{header[3]}|{facility}|{control_id}"
    sent_utc = clock.utc(sent_text, "MSH-7") if sent_text else ""
    version = f"{sent_utc}|{control_id}"
    if not is_ras:
        evn = message.first("EVN")
        recorded = evn.value(2) if evn else ""
        at = clock.at(recorded, "EVN-2") if recorded else sent_at
        event_kind = _ADT_TRIGGERS[trigger]
        event = EncounterEvent(
            encounter, event_kind, at, patient_class, payer_ids, location, version=version, account=account
        )
        visit = _visit(pid, pv1, encounter, facility, clock, at, event_kind is EncounterEventKind.CLOSE)
        return ParsedRecord(dedup_key, (), (event,), visit=visit)
    reader = RasReader(
        policy,
        clock,
        facility,
        sent_utc,
        encounter.key,
        department,
        SourceRef(SOURCE_KIND, control_id, position, source_file),
        primary_field(site.primary_hl7),
    )
    administrations = reader.administrations(message)
    seen = EncounterEvent(
        encounter,
        EncounterEventKind.SEEN,
        sent_at,
        patient_class,
        payer_ids,
        location,
        version=version,
        account=account,
    )
    if encounter.key:
        return ParsedRecord(dedup_key, administrations, (seen,), order_ids=placer_ids(message, facility))
    hints = identity_hints(message, pid, facility, tuple(a.start for a in administrations))
    return ParsedRecord(dedup_key, administrations, (seen,), unresolved=hints)


def _check_structure(message: Message, is_ras: bool) -> None:
    """One patient (PID) and one visit (PV1) per message, before the first order of a RAS.

    A second PID or PV1 is another message whose header was lost: read as this one, its
    drugs would be billed on this patient's encounter. A RAS must also carry an RXA.

    Raises:
        UnsupportedStructure: A second PID or PV1, or one after the first ORC/RXA.
        MissingField: A RAS without RXA.
    """
    names = message.names
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


def _patient_class(pv1: Segment | None, policy: Policy) -> PatientClass | None:
    """PV1-2 through the policy; a class the mapping does not know is OTHER, not dropped."""
    sent = pv1.value(2) if pv1 else ""
    if not sent:
        return None
    return policy.patient_class_of(sent) or PatientClass.OTHER


def _visit(
    pid: Segment | None,
    pv1: Segment | None,
    encounter: EncounterRef,
    facility: str,
    clock: Clock,
    at: datetime | None,
    closes: bool,
) -> VisitWindow | None:
    """The patient's visit window an ADT states, for the identity chain's ``visit`` step.

    From the admit time (PV1-44) else the event time; to the discharge time (PV1-45), else
    open, except that a discharge (A03) without PV1-45 ends at its event time. None when the
    message names no patient (PID-3).
    """
    patient = patient_key(pid, facility)
    if not patient:
        return None
    admitted = pv1.value(44) if pv1 else ""
    discharged = pv1.value(45) if pv1 else ""
    start = clock.at(admitted, "PV1-44") if admitted else at
    end = clock.at(discharged, "PV1-45") if discharged else (at if closes else None)
    return VisitWindow(patient, encounter.key, start, end)
