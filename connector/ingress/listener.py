"""The MLLP listener: asyncio streams, one task per connection, each message answered in order.

A connection is read frame by frame (``mllp.MllpDecoder``); each message is checked
(``accept``), handed to the publisher and answered only once its fate is known: ``AA`` after
the broker's confirm, ``AE`` when it was not stored (send it again later), ``AR`` when it can
never be accepted as it is. The next frame of a connection is read only after the previous one
was answered, so a sender's order is the order of the input queue. A connection silent for
``idle_timeout`` seconds is closed; above ``max_connections`` a new one is closed at once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from connector.bus.base import Outgoing
from connector.bus.topology import Topology
from connector.ingress.accept import check_hl7, framing_problem
from connector.ingress.ack import INTERNAL_ERROR, Problem, build_ack, read_header
from connector.ingress.metrics import IngressMetrics
from connector.ingress.mllp import Event, Frame, MllpDecoder, wrap
from connector.ingress.publisher import Publisher, Stored, input_message
from connector.ingress.settings import Address, ListenSettings

LOG = logging.getLogger("ivpush.ingress")
READ_SIZE = 65536
_NAME = "mllp"


class AckIds:
    """The ACKs' own control ids (MSH-10): the time to the second and a counter, 20 characters."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    def next(self, now: datetime) -> str:
        """A new control id."""
        return f"{now:%Y%m%d%H%M%S}{next(self._counter) % 1_000_000:06d}"


def answer_for(stored: Stored) -> Problem | None:
    """The problem an unstored job is answered with (``AE``: send again later), None when stored."""
    return None if stored.ok else Problem("AE", stored.reason, stored.detail, INTERNAL_ERROR)


async def store(publisher: Publisher, settings: ListenSettings, messages: Sequence[Outgoing]) -> Stored:
    """Hand one job to the publisher and wait for its fate (``unconfirmed`` if the thread never answers)."""
    future = publisher.submit(messages)
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), settings.confirm_timeout * 2 + 5)
    except TimeoutError:
        return Stored(False, "unconfirmed")


@dataclass
class _Connection:
    writer: asyncio.StreamWriter
    busy: bool = False  # answering a message now


class MllpListener:
    """Serves MLLP on ``settings.mllp`` (see the module docstring)."""

    def __init__(
        self, settings: ListenSettings, publisher: Publisher, metrics: IngressMetrics, topology: Topology
    ) -> None:
        assert settings.mllp is not None
        self.settings = settings
        self.publisher = publisher
        self.metrics = metrics
        self.topology = topology
        self.ids = AckIds()
        self._server: asyncio.Server | None = None
        self._open: dict[asyncio.Task[None], _Connection] = {}
        self._closing = False

    @property
    def address(self) -> Address:
        """The bound address (the real port when 0 was asked)."""
        assert self._server is not None and self.settings.mllp is not None
        return Address(self.settings.mllp.host, int(self._server.sockets[0].getsockname()[1]))

    async def start(self) -> None:
        """Bind and accept.

        Raises:
            OSError: The address cannot be bound.
        """
        address = self.settings.mllp
        assert address is not None
        self._server = await asyncio.start_server(
            self._connection, address.host, address.port, ssl=self.settings.tls, limit=READ_SIZE
        )

    async def stop(self, deadline: float) -> None:
        """Stop accepting; answer the messages in hand (up to ``deadline`` seconds), then close every connection.

        Connections are closed, never cancelled: a handler sees the end of its stream and returns.
        """
        if self._server is not None:
            self._server.close()
        self._closing = True
        for connection in list(self._open.values()):
            if not connection.busy:
                connection.writer.close()
        if self._open:
            await asyncio.wait(list(self._open), timeout=deadline)
        for connection in list(self._open.values()):
            connection.writer.close()
        if self._open:
            await asyncio.wait(list(self._open), timeout=1.0)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._open) >= self.settings.max_connections or self._closing:
            self.metrics.refused.labels(_NAME).inc()
            LOG.warning("mllp: %d connections open: closing a new one", len(self._open))
            writer.close()
            return
        connection = self._open[task] = _Connection(writer)
        self.metrics.connections.labels(_NAME).inc()
        self.metrics.open_connections.labels(_NAME).inc()
        decoder = MllpDecoder(self.settings.max_bytes)
        try:
            await self._serve(reader, connection, decoder)
        except (ConnectionError, ssl.SSLError, OSError) as error:
            LOG.info("mllp: connection ended: %s", error.__class__.__name__)
        except Exception as error:  # noqa: BLE001 - no traceback for any input: name the kind, close
            LOG.error("mllp: closing a connection after an unexpected %s", error.__class__.__name__)
        finally:
            if decoder.pending:
                LOG.warning("mllp: a connection closed in the middle of a message (not answered, not stored)")
            self._open.pop(task, None)
            self.metrics.open_connections.labels(_NAME).dec()
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, connection: _Connection, decoder: MllpDecoder) -> None:
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(READ_SIZE), self.settings.idle_timeout)
            except TimeoutError:
                LOG.info("mllp: closing a connection idle for %.0fs", self.settings.idle_timeout)
                return
            if not chunk:
                return
            for event in decoder.feed(chunk):
                connection.busy = True
                try:
                    connection.writer.write(wrap(await self.answer(event)))
                    await connection.writer.drain()
                finally:
                    connection.busy = False
            if self._closing:
                return

    async def answer(self, event: Event) -> bytes:
        """The ACK for one decoded frame (after publishing it when it can be accepted)."""
        self.metrics.messages.labels(_NAME).inc()
        if isinstance(event, Frame):
            data = event.data
            problem = check_hl7(data, self.settings.max_bytes)
        else:
            data = event.head
            problem = framing_problem(event, self.settings.max_bytes)
        if problem is None:
            message = input_message(data, "hl7", self.topology, self.settings.routing_key, _NAME)
            problem = answer_for(await store(self.publisher, self.settings, [message]))
        code = "AA" if problem is None else problem.ack_code
        self.metrics.answered(_NAME, code, None if problem is None else problem.code)
        if problem is not None:
            LOG.warning("mllp: answered %s: %s: %s", code, problem.code, problem.detail)
        now = datetime.now(UTC)
        return build_ack(read_header(data), now, self.ids.next(now), problem)
