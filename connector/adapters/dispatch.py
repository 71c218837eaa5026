"""One archive record → parsed records, by its detected format."""

from __future__ import annotations

from datetime import tzinfo

from connector.adapters.archive import Record
from connector.adapters.errors import NotHL7, OversizeInput
from connector.adapters.fhir import read_fhir
from connector.adapters.hl7v2 import parse_hl7
from connector.adapters.result import Parsed
from connector.adapters.sanity import DEFAULT_WINDOW, TimeWindow
from connector.model import ParsedRecord
from connector.policy.model import Policy


def read_record(
    record: Record, policy: Policy, local_zone: tzinfo, max_bytes: int, *, window: TimeWindow = DEFAULT_WINDOW
) -> Parsed:
    """Parse one record with the adapter for its format; times outside ``window`` are rejected.

    Returns:
        The records, and the parts rejected on their own (entries of a FHIR Bundle; see
        ``fhir.bundle``): replay reports each as ``<position>#entry[i]``, the consumer parks.

    Raises:
        AdapterError: The record cannot be read (its ``code`` says why).
    """
    if record.error is not None:  # the file could not be read from here on (unreadable_file, corrupt_archive)
        raise record.error
    if record.oversize:
        raise OversizeInput(f"record larger than {max_bytes} bytes")
    if record.format == "hl7":
        return Parsed((parse_hl7(record.data, policy, local_zone, record.where, max_bytes=max_bytes, window=window),))
    if record.format == "fhir":
        return read_fhir(record.data, policy, record.where, max_bytes=max_bytes, window=window)
    raise NotHL7("neither an HL7 v2 message nor FHIR JSON")


def parse_record(
    record: Record, policy: Policy, local_zone: tzinfo, max_bytes: int, *, window: TimeWindow = DEFAULT_WINDOW
) -> list[ParsedRecord]:
    """``read_record`` with one fate per record: the records, or the first reject (whole or part).

    Raises:
        AdapterError: The record, or a part of it, cannot be read (its ``code`` says why).
    """
    return read_record(record, policy, local_zone, max_bytes, window=window).strict()
