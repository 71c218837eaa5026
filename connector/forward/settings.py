"""What a site configures for ``ivpush forward`` (built from the ``[forward]`` settings table)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PORT = 2575  # the port IANA registered for HL7 over MLLP
MAX_ACK_BYTES = 1 << 20  # an ACK longer than this is not an ACK


@dataclass(frozen=True)
class ForwardSettings:
    """Where the receiver is and how patiently to wait for it.

    Attributes:
        queue: The queue of DFT^P03 messages to forward (``<prefix>.out.dft``).
        parking_queue: Where refused messages go (exchange and queue of that name, declared
            by ``ivpush forward``).
        host: The receiver's host.
        port: The receiver's MLLP port.
        tls: Wrap the connection in TLS (the receiver's certificate chain and name verified).
        ca_file: CA bundle to verify the receiver with (default: the system's).
        cert_file: Client certificate for mutual TLS.
        key_file: Client key for mutual TLS.
        server_hostname: Name checked in the receiver's certificate (default: ``host``).
        connect_timeout: Seconds to connect (and finish the TLS handshake).
        ack_timeout: Seconds to wait for the ACK of one message.
        retry_base: First pause before resending after a timeout or a lost connection, seconds.
        retry_max: Longest such pause (the pause doubles up to it, with jitter).
        max_attempts: Sends of one message before it is parked as ``no_ack``; 0: never give up.
        reconnect_max: Longest pause before reconnecting to the broker, seconds.
        poll_timeout: Seconds to wait for a delivery before looking at the stop flag.
    """

    queue: str
    parking_queue: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_hostname: str | None = None
    connect_timeout: float = 10.0
    ack_timeout: float = 30.0
    retry_base: float = 1.0
    retry_max: float = 60.0
    max_attempts: int = 0
    reconnect_max: float = 30.0
    poll_timeout: float = 0.5

    @property
    def receiver(self) -> str:
        """``host:port`` for logs (no credentials exist on this path)."""
        return f"{self.host}:{self.port}"
