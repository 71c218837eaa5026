r"""HL7 v2.5.1 DFT^P03 (post detail financial transaction): one message per charge message.

Segments: ``MSH``, ``EVN``, ``PID``, ``PV1``, then one ``FT1`` per line action, each ending with
``\r``; UTF-8 (``MSH-18`` = ``UNICODE UTF-8``). The output is a pure function of the message
and the settings: every "now" is ``message.as_of`` (MSH-7, EVN-2, FT1-5), so the same message
always renders the same bytes. Every value is escaped (:mod:`connector.emitters.hl7_text`).

Field conventions:

* ``MSH-4`` is ``DftSettings.sending_facility``, or the encounter's facility when that is empty.
* ``PID-3`` is the patient id with the assigning authority in CX.4; ``PID-5`` (required in
  2.5.1) is sent **empty**: the connector carries no patient names, receivers match on PID-3
  and PV1-19. It is not the HL7 null ``""``, which tells a receiver to delete the name it
  has, unless ``patient_name="null"`` asks for it (a receiver that rejects a message without
  PID-5). An unknown patient id is sent as ``""``.
* ``PV1-2`` is the patient class (:data:`PATIENT_CLASS_CODES`), ``PV1-19`` the visit number
  with the assigning authority in CX.4.
* ``FT1-2`` is the stable line id: a credit carries the id of the line it reverses.
* ``FT1-6``/``FT1-10``: a charge is ``charge_type`` (``CG``) with the units; a credit is
  ``credit_type`` (``CD``) with the units (``reversal="credit_line"``) or ``charge_type`` with
  the negated units (``reversal="negative_quantity"``), as the receiving site expects. FT1-10
  is an integer, or has two decimals with ``quantity_format="decimal"`` (``2.00``).
* ``FT1-7`` is the chargemaster item with the CPT/HCPCS code as its text
  (``<charge_code>^<code>``); ``FT1-25`` is the code (``<code>^^C4``) and ``FT1-26`` repeats
  once per modifier (``XS^^C4~59^^C4``).
* ``FT1-13`` is the site's ``department`` (CWE.1; not sent when empty); ``FT1-18`` is the
  PV1-2 code, or the site's code for the patient class (``patient_types``; an empty code is
  not sent).
* Not sent: ``FT1-16`` location (lines do not carry it), ``FT1-23`` filler order number (lines
  have no order id), and the UB-04 revenue code: the 2.5.1 FT1 has no standard field for it (a
  site that needs it must agree on a Z-segment or a local field).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal, get_args

from connector.emitters import hl7_text as h
from connector.model.charge import ChargeLine
from connector.model.encounter import PatientClass
from connector.model.messages import Action, ChargeMessage, LineAction

CONTENT_TYPE = "x-application/hl7-v2+er7"
VERSION = "2.5.1"
CHARACTER_SET = "UNICODE UTF-8"
CODING_SYSTEM = "C4"  # HL7 table 0396: CPT-4
HL7_NULL = '""'

Reversal = Literal["credit_line", "negative_quantity"]
QuantityFormat = Literal["integer", "decimal"]
PatientName = Literal["empty", "null"]

PATIENT_CLASS_CODES: Final[Mapping[PatientClass, str]] = MappingProxyType(
    {
        PatientClass.EMERGENCY: "E",
        PatientClass.OUTPATIENT: "O",
        PatientClass.OBSERVATION: "O",
        PatientClass.INPATIENT: "I",
        PatientClass.OTHER: "O",
    }
)
"""PV1-2 (HL7 table 0004) for each patient class; observation is an outpatient status."""

_CHOICES: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("reversal", get_args(Reversal)),
    ("quantity_format", get_args(QuantityFormat)),
    ("patient_name", get_args(PatientName)),
)


@dataclass(frozen=True)
class DftSettings:
    """Site settings for the DFT^P03 output.

    Attributes:
        sending_application: MSH-3.
        sending_facility: MSH-4; empty means the encounter's facility.
        receiving_application: MSH-5.
        receiving_facility: MSH-6.
        reversal: How a credit is sent: ``credit_line`` (FT1-6 ``credit_type``, positive
            FT1-10) or ``negative_quantity`` (FT1-6 ``charge_type``, negative FT1-10).
        processing_id: MSH-11 (``P`` production, ``T`` training, ``D`` debugging).
        charge_type: FT1-6 of a charge (HL7 table 0017).
        credit_type: FT1-6 of a credit with ``reversal="credit_line"``.
        quantity_format: FT1-10 as an integer (``2``) or with two decimals (``2.00``).
        department: FT1-13 (CWE.1); empty: not sent.
        patient_types: FT1-18 by patient class; a class not listed gets its PV1-2 code, an
            empty code is not sent.
        patient_name: PID-5 sent ``empty``, or as the HL7 null ``""`` (``null``) for a
            receiver that insists on the field (to others it means "delete the name").
    """

    sending_application: str = "IVPUSH"
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    reversal: Reversal = "credit_line"
    processing_id: str = "P"
    charge_type: str = "CG"
    credit_type: str = "CD"
    quantity_format: QuantityFormat = "integer"
    department: str = ""
    patient_types: Mapping[PatientClass, str] = field(default_factory=lambda: MappingProxyType({}))
    patient_name: PatientName = "empty"

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES:
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")


DEFAULT_SETTINGS: Final = DftSettings()


def render(message: ChargeMessage, settings: DftSettings = DEFAULT_SETTINGS) -> bytes:
    r"""The DFT^P03 for a charge message, UTF-8, segments terminated by ``\r``.

    Args:
        message: The delta to post.
        settings: Site settings (envelope, FT1 conventions and reversal style).

    Returns:
        The message bytes (no MLLP framing).
    """
    patient_type = PATIENT_CLASS_CODES[message.patient_class]
    segments = [
        _msh(message, settings),
        _evn(message),
        _pid(message, settings),
        _pv1(message, patient_type),
        *(_ft1(index, item, message, settings) for index, item in enumerate(message.lines, start=1)),
    ]
    return "".join(segments).encode("utf-8")


def _msh(message: ChargeMessage, settings: DftSettings) -> str:
    facility = settings.sending_facility or message.encounter.facility
    return h.segment(
        "MSH",
        [
            h.ENCODING_CHARACTERS,  # MSH-2 (MSH-1 is the field separator itself)
            h.components(settings.sending_application),  # MSH-3
            h.components(facility),  # MSH-4
            h.components(settings.receiving_application),  # MSH-5
            h.components(settings.receiving_facility),  # MSH-6
            h.dtm(message.as_of),  # MSH-7
            "",  # MSH-8 security
            h.components("DFT", "P03", "DFT_P03"),  # MSH-9
            h.escape(message.message_id),  # MSH-10
            h.components(settings.processing_id),  # MSH-11
            VERSION,  # MSH-12
            "",  # MSH-13 sequence number
            "",  # MSH-14 continuation pointer
            "",  # MSH-15 accept acknowledgment type
            "",  # MSH-16 application acknowledgment type
            "",  # MSH-17 country code
            CHARACTER_SET,  # MSH-18
        ],
    )


def _evn(message: ChargeMessage) -> str:
    return h.segment("EVN", ["P03", h.dtm(message.as_of)])


def _pid(message: ChargeMessage, settings: DftSettings) -> str:
    ref = message.encounter
    name = HL7_NULL if settings.patient_name == "null" else ""  # PID-5: no names are carried
    return h.segment("PID", ["1", "", _cx(ref.patient_id, ref.assigning_authority), "", name])


def _pv1(message: ChargeMessage, patient_type: str) -> str:
    ref = message.encounter
    fields = [""] * 19
    fields[0] = "1"  # PV1-1 set id
    fields[1] = patient_type  # PV1-2 patient class
    fields[18] = _cx(ref.visit_number, ref.assigning_authority)  # PV1-19 visit number
    return h.segment("PV1", fields)


def _ft1(index: int, item: LineAction, message: ChargeMessage, settings: DftSettings) -> str:
    line: ChargeLine = item.line
    transaction_type, quantity = _type_and_quantity(item, settings)
    patient_class = message.patient_class
    patient_type = settings.patient_types.get(patient_class, PATIENT_CLASS_CODES[patient_class])
    fields = [""] * 26
    fields[0] = str(index)  # FT1-1 set id
    fields[1] = h.escape(line.line_id)  # FT1-2 transaction id
    fields[3] = h.dt(line.service_date)  # FT1-4 transaction date
    fields[4] = h.dtm(message.as_of)  # FT1-5 posting date
    fields[5] = h.escape(transaction_type)  # FT1-6 transaction type (table 0017)
    fields[6] = h.components(line.charge_code, line.code)  # FT1-7 transaction code
    fields[9] = f"{quantity}.00" if settings.quantity_format == "decimal" else str(quantity)  # FT1-10 quantity
    fields[12] = h.components(settings.department)  # FT1-13 department code
    fields[17] = h.escape(patient_type)  # FT1-18 patient type
    fields[24] = h.components(line.code, "", CODING_SYSTEM)  # FT1-25 procedure code
    fields[25] = h.repetitions(h.components(m, "", CODING_SYSTEM) for m in line.modifiers)  # FT1-26
    return h.segment("FT1", fields)


def _type_and_quantity(item: LineAction, settings: DftSettings) -> tuple[str, int]:
    units = item.line.units
    if item.action is Action.CHARGE:
        return settings.charge_type, units
    if settings.reversal == "negative_quantity":
        return settings.charge_type, -units
    return settings.credit_type, units


def _cx(identifier: str, assigning_authority: str) -> str:
    """A CX with CX.1 and CX.4 (HD.1), or the HL7 null when the identifier is unknown."""
    if not identifier:
        return HL7_NULL
    return h.components(identifier, "", "", assigning_authority)
