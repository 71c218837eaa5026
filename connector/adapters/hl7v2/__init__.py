"""HL7 v2 inbound: framing, character sets, fields and timestamps, then RAS/ADT mapping.

``parse_hl7`` (in ``message``) is the entry point; the rest are its parts.
"""

from connector.adapters.hl7v2.message import parse_hl7

__all__ = ["parse_hl7"]
