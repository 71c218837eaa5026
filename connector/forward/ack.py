r"""Reading the receiver's ACK: MSA-1 (the code), MSA-2 (which message) and ERR-3.1 (why).

Only codes leave this module. MSA-3 (text message) and ERR-8 (user message) are free text a
receiver may fill with the patient's name or the rejected value: they are never read. ERR-3.1
is kept only when it looks like a code (HL7 table 0357 is numeric; sites use short
alphanumerics): anything else is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ACCEPTED = frozenset({"AA", "CA"})
REFUSED = frozenset({"AE", "AR", "CE", "CR"})
CODES = tuple(sorted(ACCEPTED | REFUSED))
_CODE = re.compile(r"[A-Za-z0-9_.-]{1,20}")


class BadAck(Exception):
    """The answer is not a usable ACK (``reason``: a short code, never its text)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Ack:
    """A receiver's verdict on one message.

    Attributes:
        code: MSA-1 (``AA``, ``AE``, ``AR`` or the enhanced-mode ``CA``, ``CE``, ``CR``).
        control_id: MSA-2, the MSH-10 of the message it acknowledges.
        error_code: ERR-3.1 when it is a code, else empty.
    """

    code: str
    control_id: str
    error_code: str = ""

    @property
    def accepted(self) -> bool:
        """The receiver took the message (``AA``/``CA``)."""
        return self.code in ACCEPTED


def control_id(message: bytes) -> str:
    """MSH-10 of an HL7 v2 message (empty when it has none)."""
    head = message.split(b"\r", 1)[0].decode("utf-8", errors="replace")
    if not head.startswith("MSH") or len(head) < 4:
        return ""
    fields = head.split(head[3])
    return fields[9] if len(fields) > 9 else ""


def parse_ack(data: bytes, expected_id: str) -> Ack:
    """The ACK in ``data`` (one message, unframed) for the message with MSH-10 ``expected_id``.

    Raises:
        BadAck: No MSH or MSA, an unknown MSA-1 code, or MSA-2 names another message.
    """
    text = data.decode("utf-8", errors="replace")
    segments = [s for s in re.split(r"[\r\n]+", text) if s]
    if not segments or not segments[0].startswith("MSH") or len(segments[0]) < 8:
        raise BadAck("not_hl7")
    separator, component = segments[0][3], segments[0][4]
    found = {s[:3]: s.split(separator) for s in reversed(segments)}  # the first of each kind wins
    msa = found.get("MSA")
    if msa is None:
        raise BadAck("no_msa")
    code = msa[1].split(component)[0].strip().upper() if len(msa) > 1 else ""
    if code not in ACCEPTED | REFUSED:
        raise BadAck("unknown_code")
    acked = msa[2].strip() if len(msa) > 2 else ""
    if expected_id and acked != expected_id:
        raise BadAck("other_message")
    err = found.get("ERR")
    error_code = err[3].split(component)[0].strip() if err is not None and len(err) > 3 else ""
    return Ack(code, acked, error_code if _CODE.fullmatch(error_code) else "")
