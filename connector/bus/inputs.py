"""A delivery's bytes → archive records (format from properties, headers or the first bytes) → parsed records.

The format comes from the ``content_type`` property (``application/hl7-v2``,
``x-application/hl7-v2+er7``, ``application/fhir+json``, …) or the ``x-ivpush-format`` header
(``hl7``/``fhir``); otherwise from the first bytes, exactly as archives are read
(``archive.read_stream``: MLLP frames, HL7 batches, FHIR JSON or NDJSON). One delivery may hold
several records (an HL7 batch, NDJSON); it is accepted or parked as a whole, except for the
entries of a FHIR Bundle rejected on their own (``read_delivery``; ``batch`` parks a copy).
"""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import tzinfo

from connector.adapters.archive import DEFAULT_MAX_BYTES, Record, read_stream
from connector.adapters.dispatch import read_record
from connector.adapters.errors import NotHL7
from connector.adapters.result import Parsed, PartReject
from connector.adapters.sanity import DEFAULT_WINDOW, TimeWindow
from connector.bus.base import Delivery
from connector.model import ParsedRecord
from connector.policy.model import Policy

FORMAT_HEADER = "x-ivpush-format"
HL7_TYPES = frozenset(
    {"application/hl7-v2", "x-application/hl7-v2+er7", "application/hl7-v2+er7", "application/edi-hl7", "text/hl7"}
)
FHIR_TYPES = frozenset(
    {"application/fhir+json", "application/json+fhir", "application/json", "application/fhir+ndjson"}
)
CONTENT_TYPES = {"hl7": "application/hl7-v2", "fhir": "application/fhir+json"}


def declared_format(content_type: str | None, headers: dict[str, object] | None = None) -> str | None:
    """``hl7``/``fhir`` when the properties or headers say so, else None (detect)."""
    header = (headers or {}).get(FORMAT_HEADER)
    if isinstance(header, bytes):
        header = header.decode("ascii", "replace")
    if isinstance(header, str) and header.strip().lower() in ("hl7", "fhir"):
        return header.strip().lower()
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind in HL7_TYPES:
        return "hl7"
    if kind in FHIR_TYPES:
        return "fhir"
    return None


def input_kind(delivery: Delivery) -> str:
    """``hl7v2``, ``fhir`` or ``unknown`` (the metrics label): declared, else from the first bytes."""
    declared = declared_format(delivery.content_type, dict(delivery.headers))
    if declared is not None:
        return "hl7v2" if declared == "hl7" else "fhir"
    head = delivery.body[:64].lstrip(b"\x0b\xef\xbb\xbf \t\r\n")  # MLLP start block, BOM, blanks
    if head[:1] in (b"{", b"["):
        return "fhir"
    if head[:3] in (b"MSH", b"FHS", b"BHS"):
        return "hl7v2"
    return "unknown"


def records(delivery: Delivery, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Record]:
    """The delivery's records, each with its format.

    Raises:
        NotHL7: The body is empty.
    """
    source = f"amqp:{delivery.message_id or delivery.delivery_tag}"
    found = list(read_stream(io.BytesIO(delivery.body), source, max_bytes))
    if not found:
        raise NotHL7("empty message body")
    declared = declared_format(delivery.content_type, dict(delivery.headers))
    if declared is not None:
        found = [replace(r, format=declared) for r in found]
    return found


def read_delivery(
    delivery: Delivery,
    policy: Policy,
    local_zone: tzinfo | None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    window: TimeWindow = DEFAULT_WINDOW,
) -> Parsed:
    """Every parsed record of a delivery, and the parts rejected on their own (FHIR Bundle entries).

    A rejected part is named ``entry[i]``, or ``<record position>#entry[i]`` when the delivery
    holds several records (NDJSON).

    Raises:
        AdapterError: Some record of the delivery cannot be read (its ``code`` says why).
    """
    found = records(delivery, max_bytes)
    parsed: list[ParsedRecord] = []
    rejects: list[PartReject] = []
    for record in found:
        result = read_record(record, policy, local_zone, max_bytes, window=window)
        parsed.extend(result.records)
        prefix = f"{record.position}#" if len(found) > 1 else ""
        rejects.extend(PartReject(prefix + part.part, part.error) for part in result.rejects)
    return Parsed(tuple(parsed), tuple(rejects))


def parse_delivery(
    delivery: Delivery,
    policy: Policy,
    local_zone: tzinfo | None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    window: TimeWindow = DEFAULT_WINDOW,
) -> list[ParsedRecord]:
    """``read_delivery`` with one fate per delivery: its records, or the first reject (whole or part).

    Raises:
        AdapterError: Some record of the delivery, or a part of one, cannot be read.
    """
    return read_delivery(delivery, policy, local_zone, max_bytes, window).strict()
