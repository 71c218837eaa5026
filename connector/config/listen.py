"""The ``[listen]`` section: ``ivpush listen``'s MLLP and HTTP listeners."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from connector.config.redact import Opaque
from connector.config.section import Section
from connector.ingress.settings import (
    DEFAULT_CONFIRM_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_ROUTING_KEY,
    parse_address,
)


class ListenSection(Section):
    """Where ``ivpush listen`` accepts messages, how large, how long, and who may send."""

    mllp: str | None = Field(
        default=None, description="MLLP listener address `HOST:PORT` (host default 127.0.0.1; not set: off)."
    )
    http: str | None = Field(
        default=None, description="HTTP listener address `HOST:PORT` (`POST /hl7v2`, `POST /fhir`; not set: off)."
    )
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1, description="Largest message or request body, bytes.")
    idle_timeout: float = Field(
        default=DEFAULT_IDLE_TIMEOUT, gt=0, description="Close a connection silent this long, seconds."
    )
    confirm_timeout: float = Field(
        default=DEFAULT_CONFIRM_TIMEOUT, gt=0, description="Longest wait for the broker's confirm before `AE`, seconds."
    )
    max_connections: int = Field(
        default=DEFAULT_MAX_CONNECTIONS, ge=1, description="Open connections per listener; more are closed at once."
    )
    routing_key: str = Field(
        default=DEFAULT_ROUTING_KEY, min_length=1, description="Routing key of the inputs published."
    )
    token: Opaque | None = Field(
        default=None, description="Bearer token HTTP clients must send (secret; not set: no token asked)."
    )
    cert_file: Path | None = Field(default=None, description="TLS certificate (chain) of both listeners (PEM).")
    key_file: Path | None = Field(default=None, description="TLS private key (needs `cert_file`).")
    client_ca_file: Path | None = Field(
        default=None, description="CA bundle that client certificates must chain to (mutual TLS; needs `cert_file`)."
    )

    @field_validator("mllp", "http")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            parse_address(value)  # raises ValueError naming the problem
        return value

    @field_validator("key_file", "client_ca_file")
    @classmethod
    def _needs_cert(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and info.data.get("cert_file") is None:
            raise ValueError("needs listen.cert_file (the listeners' certificate)")
        return value

    @field_validator("token")
    @classmethod
    def _token(cls, token: Opaque | None) -> Opaque | None:
        if token is not None and (not token.get_secret_value() or any(c.isspace() for c in token.get_secret_value())):
            raise ValueError("the token must be non-empty and hold no white space")
        return token
