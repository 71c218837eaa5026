"""Values safe to show: secrets redacted (``user:***@host``)."""

from __future__ import annotations

from enum import Enum
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import SecretStr

MASK = "***"


class Opaque(SecretStr):
    """A secret that is not a URL (a token): always shown as ``***``, never in part."""


def redact_url(value: str) -> str:
    """A URL or store spec without its password (in the authority or a ``password=`` parameter).

    A value that is not a URL (a file path) is returned as is; a URL that cannot be parsed is
    masked whole rather than risk showing a password.
    """
    if "://" not in value:
        return value
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        return MASK
    if password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}")
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(name.lower() == "password" for name, _ in pairs):
            masked = [(name, MASK if name.lower() == "password" else v) for name, v in pairs]
            parts = parts._replace(query=urlencode(masked, safe="*"))
    return urlunsplit(parts)


def display(value: object) -> str:
    """One value as text for logs and ``--show`` (secrets redacted)."""
    if isinstance(value, Opaque):
        return MASK
    if isinstance(value, SecretStr):
        return redact_url(value.get_secret_value())
    if value is None:
        return "(not set)"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ", ".join(display(item) for item in value)
    return str(value)
