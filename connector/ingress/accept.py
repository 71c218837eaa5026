"""What the edge checks before publishing: cheap, and never coding.

HL7 v2: the message reads as one HL7 message (``framing.read_message``: MSH first, usable
delimiters, every line a segment) and carries a control id (MSH-10) for the ACK to name.
FHIR: the body is a JSON object with a ``resourceType`` (a resource or a Bundle), or NDJSON
whose every line is one; NDJSON is split into one input per line. Whether the content can be
coded is the consumer's business (it parks what it cannot read, with the reason).
"""

from __future__ import annotations

import orjson

from connector.adapters.errors import AdapterError
from connector.adapters.hl7v2.framing import read_message
from connector.ingress.ack import INTERNAL_ERROR, REQUIRED_FIELD_MISSING, SEGMENT_SEQUENCE_ERROR, Problem
from connector.ingress.mllp import Oversize, Unframed

_BOM = b"\xef\xbb\xbf"


def check_hl7(data: bytes, max_bytes: int) -> Problem | None:
    """Why this HL7 v2 message cannot be accepted, or None when it can."""
    try:
        message = read_message(data, max_bytes)
    except AdapterError as error:
        return Problem("AR", error.code, error.detail, SEGMENT_SEQUENCE_ERROR)
    except Exception as error:  # noqa: BLE001 - a reader bug must not cost the connection: refuse, name the kind
        detail = f"the message could not be read ({error.__class__.__name__})"
        return Problem("AR", "unreadable", detail, INTERNAL_ERROR)
    if not message.msh.field(10).strip():
        detail = "MSH-10 (message control id) is empty"
        return Problem("AR", "missing_control_id", detail, REQUIRED_FIELD_MISSING, ("MSH", 10))
    return None


def framing_problem(event: Oversize | Unframed, max_bytes: int) -> Problem:
    """The answer to a frame that was not kept."""
    if isinstance(event, Oversize):
        return Problem("AR", "oversize_input", f"message larger than {max_bytes} bytes")
    return Problem("AR", "mllp_framing", "bytes before the MLLP start block (0x0B): frame each message")


class BadDocument(Exception):
    """A FHIR body that is not a resource, a Bundle or NDJSON of them.

    Attributes:
        code: Stable reason code (``invalid_fhir``).
        detail: Which line or rule failed, never a value.
    """

    code = "invalid_fhir"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def fhir_documents(body: bytes, ndjson: bool) -> list[bytes]:
    """The inputs a FHIR body holds: itself (JSON), or each non-blank line (NDJSON).

    Raises:
        BadDocument: The body, or one of its lines, is not a JSON object with a ``resourceType``.
    """
    if not ndjson:
        _resource(body, "the body")
        return [body]
    documents = []
    for number, raw in enumerate(body.removeprefix(_BOM).splitlines(), start=1):
        line = raw.strip()
        if line:
            _resource(line, f"line {number}")
            documents.append(line)
    if not documents:
        raise BadDocument("no resource in the NDJSON body")
    return documents


def _resource(raw: bytes, where: str) -> None:
    try:
        document = orjson.loads(raw.removeprefix(_BOM))
    except orjson.JSONDecodeError:
        raise BadDocument(f"{where} is not valid JSON") from None
    if not isinstance(document, dict):
        raise BadDocument(f"{where} is not a JSON object")
    if not isinstance(document.get("resourceType"), str) or not document["resourceType"]:
        raise BadDocument(f"{where} has no resourceType")
