"""Why an adapter rejected an input: a stable code plus a detail that carries no PHI.

Rejects are logged and may be shown to interface analysts, so ``detail`` names the segment,
field or rule that failed ("RXA-3 not a timestamp") and never a value from the message: no
names, no patient or visit ids, no free text.
"""

from __future__ import annotations


class AdapterError(Exception):
    """An input the adapter cannot turn into model objects.

    Attributes:
        code: Short stable reason code, one per subclass (used in metrics and reject queues).
        detail: Which segment, field or rule was wrong; never a value from the input.
    """

    code = "adapter_error"

    def __init__(self, detail: str) -> None:
        super().__init__(f"{self.code}: {detail}")
        self.detail = detail


class NotHL7(AdapterError):
    """The bytes are not an HL7 v2 message (no MSH, bad delimiters, several messages)."""

    code = "not_hl7"


class UnsupportedMessageType(AdapterError):
    """A well-formed message of a type/trigger the adapter does not read."""

    code = "unsupported_message_type"


class MissingEncounterKey(AdapterError):
    """No step of the site's identity chain names the encounter (docs/site-setup.md).

    The adapters raise it when no field of the chain (PV1-19, PID-18, PV1-50; FHIR context/
    encounter) carries a number and the site has no service step; the service rejects with
    the same code an input that no order link, ADT visit window or fallback resolves.
    """

    code = "missing_encounter_key"


class BadTimestamp(AdapterError):
    """A timestamp field that is not an HL7 DTM."""

    code = "bad_timestamp"


class UnknownStatus(AdapterError):
    """A completion status the site's status mapping does not know."""

    code = "unknown_status"


class MissingField(AdapterError):
    """A field or segment the adapter needs is absent or empty."""

    code = "missing_field"


class OversizeInput(AdapterError):
    """The input is larger than the configured limit."""

    code = "oversize_input"


class InvalidFhir(AdapterError):
    """A FHIR resource that is not valid JSON or not the expected shape."""

    code = "invalid_fhir"


class BadIdentifier(AdapterError):
    """An identifier (visit, account, patient, resource id) that is empty or holds control characters."""

    code = "bad_identifier"


class UnsupportedStructure(AdapterError):
    """A message whose segments do not fit its type (a second PID or PV1, a patient after the orders)."""

    code = "unsupported_structure"


class UnreadableFile(AdapterError):
    """An archive file that cannot be opened, listed or read (permissions, not a regular file, I/O error)."""

    code = "unreadable_file"


class CorruptArchive(AdapterError):
    """A compressed archive that is not gzip, or whose gzip stream is truncated or corrupt."""

    code = "corrupt_archive"
