"""Per-destination sections: what each receiver expects, and where ``ivpush forward`` sends.

``[dft]`` and ``[chargeitem]`` shape the messages for the receiving site (their defaults render
what earlier versions did, except PID-5 and the ChargeItem subject); ``[forward]`` names the MLLP
receiver of the DFT messages.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from connector.config.section import Section
from connector.emitters.chargeitem import PATIENT_ID_SYSTEM, ChargeItemSettings, Subject
from connector.emitters.dft import DftSettings, PatientName, QuantityFormat, Reversal
from connector.forward.settings import DEFAULT_PORT, ForwardSettings
from connector.model.encounter import PatientClass

CODE = r"^[A-Za-z0-9_-]{1,16}$"


class DftSection(Section):
    """The DFT^P03 envelope and the FT1 conventions of the receiving site (defaults: as before)."""

    sending_application: str = Field(default="IVPUSH", description="MSH-3 sending application.")
    sending_facility: str = Field(default="", description="MSH-4 sending facility (empty: the encounter's facility).")
    receiving_application: str = Field(default="", description="MSH-5 receiving application.")
    receiving_facility: str = Field(default="", description="MSH-6 receiving facility.")
    processing_id: Literal["P", "T", "D"] = Field(default="P", description="MSH-11: production, training, debugging.")
    reversal: Reversal = Field(
        default="credit_line",
        description="A credit as FT1-6 `credit_type` with positive units, or `charge_type` with negative units.",
    )
    charge_type: str = Field(default="CG", pattern=CODE, description="FT1-6 of a charge (HL7 table 0017).")
    credit_type: str = Field(default="CD", pattern=CODE, description="FT1-6 of a credit (with `credit_line`).")
    quantity_format: QuantityFormat = Field(
        default="integer", description="FT1-10 as `2` (integer) or `2.00` (decimal)."
    )
    department: str = Field(default="", description="FT1-13 department code (empty: not sent).")
    patient_types: str = Field(
        default="",
        description="FT1-18 codes by patient class, `class=code` pairs, comma-separated (e.g. "
        "`emergency=ER,inpatient=IP`); unlisted classes get the PV1-2 code, `class=` sends none.",
    )
    patient_name: PatientName = Field(
        default="empty", description='PID-5 empty, or the HL7 null `""` (`null`) for receivers that require it.'
    )

    @field_validator("patient_types")
    @classmethod
    def _pairs(cls, text: str) -> str:
        patient_type_map(text)  # raises ValueError naming the problem
        return text

    def emitter_settings(self) -> DftSettings:
        """The renderer's settings."""
        values = self.model_dump()
        values["patient_types"] = MappingProxyType(patient_type_map(self.patient_types))
        return DftSettings(**values)


def patient_type_map(text: str) -> dict[PatientClass, str]:
    """``emergency=ER,inpatient=IP`` → ``{EMERGENCY: "ER", INPATIENT: "IP"}``.

    Raises:
        ValueError: A pair without ``=``, an unknown class, a repeated class or a code that is not one.
    """
    found: dict[PatientClass, str] = {}
    classes = ", ".join(c.value for c in PatientClass)
    for pair in filter(None, (part.strip() for part in text.split(","))):
        name, equals, code = (part.strip() for part in pair.partition("="))
        if not equals or name not in {c.value for c in PatientClass}:
            raise ValueError(f"give class=code pairs; the classes are {classes}")
        if PatientClass(name) in found:
            raise ValueError(f"patient class {name} is given twice")
        if code and not re.fullmatch(CODE, code):
            raise ValueError(f"the code for {name} must be 1-16 letters, digits, '-' or '_'")
        found[PatientClass(name)] = code
    return found


class ChargeItemSection(Section):
    """How the ChargeItem Bundles name the patient."""

    subject: Subject = Field(
        default="identifier",
        description="`identifier`: the patient by identifier (system + MRN); `reference`: `Patient/<MRN>` (older).",
    )
    patient_system: str = Field(
        default=PATIENT_ID_SYSTEM,
        pattern=r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$",
        description="Identifier system (a URI) of the patient id in `subject`: the site's MRN system.",
    )

    def emitter_settings(self) -> ChargeItemSettings:
        """The renderer's settings."""
        return ChargeItemSettings(subject=self.subject, patient_system=self.patient_system)


class ForwardSection(Section):
    """``ivpush forward``: the MLLP receiver of the DFT messages and how patiently to wait for it."""

    host: str = Field(default="127.0.0.1", min_length=1, description="The receiver's host.")
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535, description="The receiver's MLLP port.")
    tls: bool = Field(default=False, description="TLS to the receiver (certificate chain and name verified).")
    ca_file: Path | None = Field(default=None, description="CA bundle to verify the receiver with (default: system's).")
    cert_file: Path | None = Field(default=None, description="Client certificate for mutual TLS.")
    key_file: Path | None = Field(default=None, description="Client key for mutual TLS (needs `cert_file`).")
    server_hostname: str | None = Field(default=None, description="Name checked in its certificate (default: host).")
    queue: str | None = Field(
        default=None, min_length=1, description="Queue to forward (default `topology.dft_queue`)."
    )
    parking_queue: str | None = Field(
        default=None, min_length=1, description="Where refused messages go (default `<queue>.parking`)."
    )
    connect_timeout: float = Field(default=10.0, gt=0, description="Seconds to connect to the receiver.")
    ack_timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for the ACK of a message.")
    retry_base: float = Field(default=1.0, gt=0, description="First pause before sending a message again, seconds.")
    retry_max: float = Field(default=60.0, gt=0, description="Longest pause before sending again, seconds.")
    max_attempts: int = Field(
        default=0, ge=0, description="Sends of one message before it is parked as `no_ack`; 0: never give up."
    )

    @field_validator("key_file")
    @classmethod
    def _key_needs_cert(cls, key_file: Path | None, info: ValidationInfo) -> Path | None:
        if key_file is not None and info.data.get("cert_file") is None:
            raise ValueError("a client key needs forward.cert_file (the certificate it belongs to)")
        return key_file

    def forward_settings(self, dft_queue: str, reconnect_max: float = 30.0) -> ForwardSettings:
        """The forwarder's settings; ``dft_queue`` is the topology's DFT output queue (the default)."""
        queue = self.queue or dft_queue
        return ForwardSettings(
            queue=queue,
            parking_queue=self.parking_queue or f"{queue}.parking",
            host=self.host,
            port=self.port,
            tls=self.tls,
            ca_file=None if self.ca_file is None else str(self.ca_file),
            cert_file=None if self.cert_file is None else str(self.cert_file),
            key_file=None if self.key_file is None else str(self.key_file),
            server_hostname=self.server_hostname,
            connect_timeout=self.connect_timeout,
            ack_timeout=self.ack_timeout,
            retry_base=self.retry_base,
            retry_max=self.retry_max,
            max_attempts=self.max_attempts,
            reconnect_max=reconnect_max,
        )
