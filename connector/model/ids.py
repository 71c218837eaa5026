"""Deterministic ids: derived from content and source identity, never random.

A replay or a redelivery must produce the same ids so downstream systems can de-duplicate
(architecture invariant 2). Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

_SEPARATOR = "\x1f"  # ASCII unit separator: cannot occur in HL7 or JSON text fields we hash


def digest(parts: Iterable[str], length: int = 24) -> str:
    """Return a short hex SHA-256 of the parts, unambiguously joined.

    Args:
        parts: Strings to hash, in a meaningful order.
        length: Number of hex characters to keep (24 = 96 bits, ample per encounter).

    Returns:
        Lowercase hexadecimal digest prefix.
    """
    joined = _SEPARATOR.join(parts)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:length]


def administration_id(source_kind: str, *identity: str) -> str:
    """Id of an administration from its source identity (e.g. MSH-4, ORC-2, RXA-1, RXA-2)."""
    return "adm-" + digest((source_kind, *identity))


def line_id(
    encounter_key: str,
    code: str,
    service_date: str,
    modifiers: Iterable[str],
    administration_ids: Iterable[str],
    units: int,
    policy_version: str,
) -> str:
    """Id of a charge line from everything that makes it the line it is."""
    return "ln-" + digest(
        (
            encounter_key,
            code,
            service_date,
            ",".join(modifiers),
            ",".join(sorted(administration_ids)),
            str(units),
            policy_version,
        )
    )
