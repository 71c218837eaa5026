"""One archive record → parsed records, by its detected format.

Every administration read names where it came from: the adapters set its ``SourceRef``
(message control id or resource id, and the record's position in its source), and
``read_record`` adds the record's source (``SourceRef.file``: the archive file, ``-`` for
standard input, ``amqp:<message id>`` for a delivery), so that ``ivpush explain`` and
``ivpush unmapped`` can point at it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import tzinfo

from connector.adapters.archive import Record
from connector.adapters.errors import NotHL7, OversizeInput
from connector.adapters.hl7v2 import parse_hl7
from connector.adapters.result import Parsed
from connector.adapters.sanity import DEFAULT_WINDOW, TimeWindow
from connector.model import ParsedRecord
from connector.policy.model import Policy


def read_record(
    record: Record, policy: Policy, local_zone: tzinfo | None, max_bytes: int, *, window: TimeWindow = DEFAULT_WINDOW
) -> Parsed:
    """Parse one record with the adapter for its format; times outside ``window`` are rejected.

    FHIR instants are dated in their facility's zone (``policy.site``), else in ``local_zone``,
    as HL7 times without an offset are.

    Returns:
        The records (each administration's ``SourceRef.file`` set to ``record.source``), and
        the parts rejected on their own (entries of a FHIR Bundle; see ``fhir.bundle``): replay
        reports each as ``<position>#entry[i]``, the consumer parks.

    Raises:
        AdapterError: The record cannot be read (its ``code`` says why).
    """
    if record.error is not None:  # the file could not be read from here on (unreadable_file, corrupt_archive)
        raise record.error
    if record.oversize:
        raise OversizeInput(f"record larger than {max_bytes} bytes")
    if record.format == "hl7":
        parsed = parse_hl7(
            record.data,
            policy,
            local_zone,
            record.position,
            max_bytes=max_bytes,
            window=window,
            source_file=record.source,
        )
        return Parsed((parsed,))
    if record.format == "fhir":
        # Imported at the first FHIR record: fhir.resources and the validation warm-up take
        # ~0.5 s, which an HL7-only replay or consumer no longer pays at start.
        from connector.adapters.fhir import read_fhir  # noqa: PLC0415 - on the first FHIR record (#15)

        found = read_fhir(
            record.data, policy, record.position, max_bytes=max_bytes, window=window, local_zone=local_zone
        )
        return _sourced(found, record.source)
    raise NotHL7("neither an HL7 v2 message nor FHIR JSON")


def _sourced(parsed: Parsed, source: str) -> Parsed:
    """``parsed`` with each administration's ``SourceRef.file`` set to the record's source."""
    records = tuple(
        replace(
            record,
            administrations=tuple(replace(a, source=replace(a.source, file=source)) for a in record.administrations),
        )
        for record in parsed.records
    )
    return Parsed(records, parsed.rejects)


def parse_record(
    record: Record, policy: Policy, local_zone: tzinfo | None, max_bytes: int, *, window: TimeWindow = DEFAULT_WINDOW
) -> list[ParsedRecord]:
    """``read_record`` with one fate per record: the records, or the first reject (whole or part).

    Raises:
        AdapterError: The record, or a part of it, cannot be read (its ``code`` says why).
    """
    return read_record(record, policy, local_zone, max_bytes, window=window).strict()
