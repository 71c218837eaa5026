r"""An MLLP client: one TCP (or TLS) connection, one message at a time.

MLLP frames each message as ``<VT> message <FS><CR>`` (``0x0B`` … ``0x1C 0x0D``). The client
writes one frame and reads until one whole frame came back; bytes before a ``<VT>`` are
dropped. Every failure is an :class:`MllpError` with a short ``reason`` (``connect``,
``timeout``, ``closed``, ``oversize``): the caller closes the connection and tries again on a
new one, so a late answer can never be taken for the next message's ACK.

While it waits, the client calls ``idle()`` about every :data:`SLICE` seconds: ``ivpush
forward`` services its broker connection there (heartbeats), since both live on one thread.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Callable

from connector.forward.settings import MAX_ACK_BYTES, ForwardSettings

START = b"\x0b"
END = b"\x1c\x0d"
SLICE = 0.2


class MllpError(Exception):
    """The exchange failed (``reason``: ``connect``, ``timeout``, ``closed`` or ``oversize``)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def frame(message: bytes) -> bytes:
    """The message in an MLLP frame."""
    return START + message + END


def client_context(settings: ForwardSettings) -> ssl.SSLContext | None:
    """A TLS context that verifies the receiver (chain and name), or None without TLS.

    Raises:
        ssl.SSLError: The client certificate or key cannot be loaded.
        OSError: A certificate file cannot be read.
    """
    if not settings.tls:
        return None
    context = ssl.create_default_context(cafile=settings.ca_file)
    if settings.cert_file:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class MllpClient:
    """One connection to the receiver, opened on first use and after every failure."""

    def __init__(self, settings: ForwardSettings, context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.context = context
        self._sock: socket.socket | None = None
        self._buffer = b""

    @property
    def connected(self) -> bool:
        """A connection is open."""
        return self._sock is not None

    def connect(self) -> None:
        """Open the connection (TLS handshake included) unless one is open.

        Raises:
            MllpError: ``connect``: refused, unreachable, timed out or the TLS handshake failed.
        """
        if self._sock is not None:
            return
        s = self.settings
        try:
            sock = socket.create_connection((s.host, s.port), timeout=s.connect_timeout)
        except OSError as error:
            raise MllpError("connect", error.__class__.__name__) from error
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_hostname=s.server_hostname or s.host)
        except OSError as error:  # ssl.SSLError is an OSError
            sock.close()
            raise MllpError("connect", error.__class__.__name__) from error
        self._sock, self._buffer = sock, b""

    def send(self, message: bytes) -> None:
        """Write one framed message.

        Raises:
            MllpError: ``closed``: the connection broke (it is closed).
        """
        sock = self._require()
        try:
            sock.settimeout(self.settings.ack_timeout)
            sock.sendall(frame(message))
        except OSError as error:
            self.close()
            raise MllpError("closed", error.__class__.__name__) from error

    def receive(self, timeout: float, idle: Callable[[], None] | None = None) -> bytes:
        """The next whole frame's content, waiting up to ``timeout`` seconds.

        Raises:
            MllpError: ``timeout``, ``closed`` (by the receiver or broken) or ``oversize``;
                the connection is closed.
        """
        sock = self._require()
        deadline = time.monotonic() + timeout
        while (found := self._take()) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                raise MllpError("timeout")
            try:
                sock.settimeout(min(SLICE, remaining))
                chunk = sock.recv(65536)
            except TimeoutError:
                if idle is not None:
                    idle()
                continue
            except OSError as error:
                self.close()
                raise MllpError("closed", error.__class__.__name__) from error
            if not chunk:
                self.close()
                raise MllpError("closed", "EOF")
            self._buffer += chunk
            if len(self._buffer) > MAX_ACK_BYTES:
                self.close()
                raise MllpError("oversize")
        return found

    def close(self) -> None:
        """Close the connection (never raises)."""
        sock, self._sock, self._buffer = self._sock, None, b""
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def _require(self) -> socket.socket:
        if self._sock is None:
            raise MllpError("closed", "not connected")
        return self._sock

    def _take(self) -> bytes | None:
        """Cut one frame from the buffer (dropping bytes before its start), or None."""
        start = self._buffer.find(START)
        if start < 0:
            self._buffer = b""
            return None
        end = self._buffer.find(END, start + 1)
        if end < 0:
            self._buffer = self._buffer[start:]
            return None
        found, self._buffer = self._buffer[start + 1 : end], self._buffer[end + len(END) :]
        return found
