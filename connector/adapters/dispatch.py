"""One archive record → parsed records, by its detected format."""

from __future__ import annotations

from datetime import tzinfo

from connector.adapters.archive import Record
from connector.adapters.errors import NotHL7, OversizeInput
from connector.adapters.fhir import parse_fhir
from connector.adapters.hl7v2 import parse_hl7
from connector.model import ParsedRecord
from connector.policy.model import Policy


def parse_record(record: Record, policy: Policy, local_zone: tzinfo, max_bytes: int) -> list[ParsedRecord]:
    """Parse one record with the adapter for its format.

    Raises:
        AdapterError: The record cannot be read (its ``code`` says why).
    """
    if record.oversize:
        raise OversizeInput(f"record larger than {max_bytes} bytes")
    if record.format == "hl7":
        return [parse_hl7(record.data, policy, local_zone, record.where, max_bytes=max_bytes)]
    if record.format == "fhir":
        return parse_fhir(record.data, policy, record.where, max_bytes=max_bytes)
    raise NotHL7("neither an HL7 v2 message nor FHIR JSON")
