r"""HL7 v2.5.1 DFT^P03 (post detail financial transaction): one message per charge message.

Segments: ``MSH``, ``EVN``, ``PID``, ``PV1``, then one ``FT1`` per line action, each ending with
``\r``; UTF-8 (``MSH-18`` = ``UNICODE UTF-8``). The output is a pure function of the message
and the settings: every "now" is ``message.as_of`` (MSH-7, EVN-2, FT1-5), so the same message
always renders the same bytes. Every value is escaped (:mod:`connector.emitters.hl7_text`).

Field conventions:

* ``MSH-4`` is ``DftSettings.sending_facility``, or the encounter's facility when that is empty.
* ``PID-3`` is the patient id with the assigning authority in CX.4; ``PID-5`` (required in
  2.5.1) is sent as the HL7 null ``""``: the connector carries no patient names, receivers
  match on PID-3 and PV1-19. An unknown patient id is sent as ``""`` too.
* ``PV1-2`` is the patient class (:data:`PATIENT_CLASS_CODES`), ``PV1-19`` the visit number
  with the assigning authority in CX.4.
* ``FT1-2`` is the stable line id: a credit carries the id of the line it reverses.
* ``FT1-6``/``FT1-10``: a charge is ``CG`` with the units; a credit is ``CD`` with the units
  (``reversal="credit_line"``) or ``CG`` with the negated units (``reversal="negative_quantity"``),
  as the receiving site expects.
* ``FT1-7`` is the chargemaster item with the CPT/HCPCS code as its text
  (``<charge_code>^<code>``); ``FT1-25`` is the code (``<code>^^C4``) and ``FT1-26`` repeats
  once per modifier (``XS^^C4~59^^C4``).
* Not sent: ``FT1-13`` department and ``FT1-16`` location (lines do not carry them), ``FT1-23``
  filler order number (lines have no order id), and the UB-04 revenue code: the 2.5.1 FT1 has
  no standard field for it (a site that needs it must agree on a Z-segment or a local field).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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

_REVERSALS: Final[tuple[str, ...]] = get_args(Reversal)


@dataclass(frozen=True)
class DftSettings:
    """Site settings for the DFT^P03 output.

    Attributes:
        sending_application: MSH-3.
        sending_facility: MSH-4; empty means the encounter's facility.
        receiving_application: MSH-5.
        receiving_facility: MSH-6.
        reversal: How a credit is sent: ``credit_line`` (FT1-6 ``CD``, positive FT1-10) or
            ``negative_quantity`` (FT1-6 ``CG``, negative FT1-10).
        processing_id: MSH-11 (``P`` production, ``T`` training, ``D`` debugging).
    """

    sending_application: str = "IVPUSH"
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    reversal: Reversal = "credit_line"
    processing_id: str = "P"

    def __post_init__(self) -> None:
        if self.reversal not in _REVERSALS:
            raise ValueError(f"reversal must be one of {', '.join(_REVERSALS)}, not {self.reversal!r}")


DEFAULT_SETTINGS: Final = DftSettings()


def render(message: ChargeMessage, settings: DftSettings = DEFAULT_SETTINGS) -> bytes:
    r"""The DFT^P03 for a charge message, UTF-8, segments terminated by ``\r``.

    Args:
        message: The delta to post.
        settings: Site settings (envelope and reversal style).

    Returns:
        The message bytes (no MLLP framing).
    """
    patient_type = PATIENT_CLASS_CODES[message.patient_class]
    segments = [
        _msh(message, settings),
        _evn(message),
        _pid(message),
        _pv1(message, patient_type),
        *(_ft1(index, item, message, settings, patient_type) for index, item in enumerate(message.lines, start=1)),
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


def _pid(message: ChargeMessage) -> str:
    ref = message.encounter
    return h.segment("PID", ["1", "", _cx(ref.patient_id, ref.assigning_authority), "", HL7_NULL])


def _pv1(message: ChargeMessage, patient_type: str) -> str:
    ref = message.encounter
    fields = [""] * 19
    fields[0] = "1"  # PV1-1 set id
    fields[1] = patient_type  # PV1-2 patient class
    fields[18] = _cx(ref.visit_number, ref.assigning_authority)  # PV1-19 visit number
    return h.segment("PV1", fields)


def _ft1(index: int, item: LineAction, message: ChargeMessage, settings: DftSettings, patient_type: str) -> str:
    line: ChargeLine = item.line
    transaction_type, quantity = _type_and_quantity(item, settings)
    fields = [""] * 26
    fields[0] = str(index)  # FT1-1 set id
    fields[1] = h.escape(line.line_id)  # FT1-2 transaction id
    fields[3] = h.dt(line.service_date)  # FT1-4 transaction date
    fields[4] = h.dtm(message.as_of)  # FT1-5 posting date
    fields[5] = transaction_type  # FT1-6 transaction type (table 0017)
    fields[6] = h.components(line.charge_code, line.code)  # FT1-7 transaction code
    fields[9] = str(quantity)  # FT1-10 quantity
    fields[17] = patient_type  # FT1-18 patient type
    fields[24] = h.components(line.code, "", CODING_SYSTEM)  # FT1-25 procedure code
    fields[25] = h.repetitions(h.components(m, "", CODING_SYSTEM) for m in line.modifiers)  # FT1-26
    return h.segment("FT1", fields)


def _type_and_quantity(item: LineAction, settings: DftSettings) -> tuple[str, int]:
    units = item.line.units
    if item.action is Action.CHARGE:
        return "CG", units
    if settings.reversal == "negative_quantity":
        return "CG", -units
    return "CD", units


def _cx(identifier: str, assigning_authority: str) -> str:
    """A CX with CX.1 and CX.4 (HD.1), or the HL7 null when the identifier is unknown."""
    if not identifier:
        return HL7_NULL
    return h.components(identifier, "", "", assigning_authority)
