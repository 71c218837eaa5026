"""Running ``ivpush listen``'s listeners in the test process, and talking to them as engines do."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Any

from connector.bus.base import Bus
from connector.bus.topology import Topology
from connector.ingress.mllp import wrap
from connector.ingress.run import Ingress
from connector.ingress.settings import Address, ListenSettings


class Running:
    """An ``Ingress`` on an event loop of its own thread (ports bound on 127.0.0.1:0 unless given)."""

    def __init__(self, connect: Callable[[], Bus], topology: Topology, **settings: Any) -> None:
        settings.setdefault("mllp", Address("127.0.0.1", 0))
        settings.setdefault("http", Address("127.0.0.1", 0))
        settings.setdefault("shutdown_deadline", 5.0)
        self.ingress = Ingress(ListenSettings(**settings), connect, topology, reconnect_max=0.5)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Running:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.ingress.start(), self.loop).result(30)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.ingress.stop(), self.loop).result(60)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    @property
    def mllp_port(self) -> int:
        return self.ingress.addresses["mllp"].port

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.ingress.addresses['http'].port}"

    @property
    def metrics(self) -> Any:
        return self.ingress.metrics


def read_ack(sock: socket.socket) -> bytes:
    """One framed answer (without its framing); b"" when the connection was closed."""
    data = b""
    while not data.endswith(b"\x1c\r"):
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    return data[1:-2]


def exchange(sock: socket.socket, message: bytes) -> bytes:
    """Send one message in its MLLP frame and read its ACK."""
    sock.sendall(wrap(message))
    return read_ack(sock)


def ack_code(ack: bytes) -> str:
    """MSA-1 of an ACK."""
    msa = next(line for line in ack.split(b"\r") if line.startswith(b"MSA"))
    return msa.split(b"|")[1].decode()


def ack_control(ack: bytes) -> str:
    """MSA-2 of an ACK."""
    msa = next(line for line in ack.split(b"\r") if line.startswith(b"MSA"))
    return msa.split(b"|")[2].decode()
