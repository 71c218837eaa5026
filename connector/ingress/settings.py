"""The listeners' settings as plain values: addresses, limits, token and TLS."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from connector.adapters.hl7v2.framing import MAX_BYTES

DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_BYTES = MAX_BYTES
DEFAULT_IDLE_TIMEOUT = 300.0  # engines keep MLLP connections open; one silent this long is closed
DEFAULT_CONFIRM_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_ROUTING_KEY = "ivpush.input"  # as ``ivpush publish``


class TlsError(Exception):
    """The listeners' certificate, key or client CA cannot be loaded."""


@dataclass(frozen=True, slots=True)
class Address:
    """Where a listener binds (port 0: any free port, reported once bound)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str) -> Address:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``:PORT`` or ``PORT`` (host 127.0.0.1).

    Raises:
        ValueError: Not an address with a port from 0 to 65535.
    """
    value = text.strip()
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        if not sep:
            raise ValueError(f"'{text}' is not [IPv6]:PORT")
    elif ":" in value:
        host, _, port = value.rpartition(":")
    else:
        host, port = "", value
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"'{text}' has no port from 0 to 65535 (give HOST:PORT)")
    return Address(host or DEFAULT_HOST, int(port))


@dataclass(frozen=True)
class ListenSettings:
    """What the listeners need.

    Attributes:
        mllp: MLLP address (None: no MLLP listener).
        http: HTTP address (None: no HTTP listener).
        max_bytes: Largest message (MLLP frame content, HTTP body).
        idle_timeout: Seconds of silence after which a connection is closed.
        confirm_timeout: Longest wait for the broker's confirm, queueing included.
        max_connections: Open connections per listener.
        routing_key: Routing key of the inputs published.
        token: Bearer token HTTP requests must carry (None: none asked).
        tls: Server TLS context of both listeners (None: plain TCP).
        shutdown_deadline: Seconds to finish the messages in hand at stop.
    """

    mllp: Address | None = None
    http: Address | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    confirm_timeout: float = DEFAULT_CONFIRM_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    routing_key: str = DEFAULT_ROUTING_KEY
    token: str | None = None
    tls: ssl.SSLContext | None = None
    shutdown_deadline: float = 10.0


def server_tls(cert_file: Path, key_file: Path | None = None, client_ca_file: Path | None = None) -> ssl.SSLContext:
    """A server context (TLS 1.2+); with ``client_ca_file``, clients must present a certificate it signed.

    Raises:
        TlsError: A file is missing or does not hold what it should (the path and the reason, no content).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
        if client_ca_file is not None:
            context.load_verify_locations(client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as error:
        reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or error.__class__.__name__
        raise TlsError(f"cannot load the listeners' TLS files ({cert_file}): {reason}") from error
    return context
