"""A real MLLP receiver for the forward tests: a TCP (or TLS) server on 127.0.0.1 that answers as scripted.

``answer(control_id, attempt)`` decides, for each message received (MSH-10, 1 for its first
arrival), what the receiver does: an ACK code (``AA``, ``AE``, ``AR``, ``CA``, …), ``silent``
(read it, never answer) or ``close`` (drop the connection without answering). Refusals carry
an MSA-3 and an ERR-8 that quote a (synthetic) patient, as real receivers may: the forwarder
must keep neither. Every arrival is recorded in order.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

START, END = b"\x0b", b"\x1c\x0d"
PHI_TEXT = "Patient DOE^JANE MRN 4711 not on file"  # what a receiver may write in MSA-3 / ERR-8
ERR_CODE = "204"  # HL7 table 0357: unknown key identifier

Answer = Callable[[str, int], str]


def always_aa(_control_id: str, _attempt: int) -> str:
    return "AA"


def control_id_of(message: bytes) -> str:
    head = message.split(b"\r", 1)[0].decode()
    fields = head.split("|")
    return fields[9] if len(fields) > 9 else ""


def ack_for(control_id: str, code: str) -> bytes:
    """An ACK as a receiver writes it: MSH, MSA (with free text), ERR (v2.5) for refusals."""
    segments = [
        f"MSH|^~\\&|BILLING|GENHOSP|IVPUSH||20260302120000||ACK^P03^ACK|ACK{control_id}|P|2.5.1",
        f"MSA|{code}|{control_id}" + ("" if code in ("AA", "CA") else f"|{PHI_TEXT}"),
    ]
    if code not in ("AA", "CA"):
        segments.append(f"ERR||PID^1^5|{ERR_CODE}^Unknown key identifier^HL70357|E||||{PHI_TEXT}")
    return ("\r".join(segments) + "\r").encode()


@dataclass
class Receiver:
    """The server (see the module docstring); ``start()`` binds, ``stop()`` closes everything."""

    answer: Answer = always_aa
    port: int = 0
    tls: ssl.SSLContext | None = None
    arrivals: list[str] = field(default_factory=list)  # control ids in arrival order
    answers: list[tuple[str, str]] = field(default_factory=list)  # (control id, what was done)
    bodies: dict[str, bytes] = field(default_factory=dict)  # control id → the message as received
    connections: int = 0
    _counts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: socket.socket | None = None
    _open: list[socket.socket] = field(default_factory=list)
    _stopped: bool = False

    def start(self) -> Receiver:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(8)
        self.port = server.getsockname()[1]
        self._server = server
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def accepted(self) -> list[str]:
        """Control ids answered AA/CA, in order."""
        with self._lock:
            return [cid for cid, done in self.answers if done in ("AA", "CA")]

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stopped:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(sock, server_side=True)
                except OSError:
                    sock.close()
                    continue
            with self._lock:
                self.connections += 1
                self._open.append(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        buffer = b""
        with contextlib.suppress(OSError), sock:
            while chunk := sock.recv(65536):
                buffer += chunk
                while (start := buffer.find(START)) >= 0 and (end := buffer.find(END, start)) >= 0:
                    message, buffer = buffer[start + 1 : end], buffer[end + 2 :]
                    if not self._respond(sock, message):
                        return

    def _respond(self, sock: socket.socket, message: bytes) -> bool:
        """Answer one message; False when the connection is to be dropped."""
        cid = control_id_of(message)
        with self._lock:
            self.bodies.setdefault(cid, message)
            self._counts[cid] += 1
            self.arrivals.append(cid)
            action = self.answer(cid, self._counts[cid])
            self.answers.append((cid, action))
        if action == "close":
            return False
        if action != "silent":
            sock.sendall(START + ack_for(cid, action) + END)
        return True

    def stop(self) -> None:
        self._stopped = True
        if self._server is not None:
            self._server.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
