"""``ivpush listen`` put together: one publisher thread, the MLLP listener on the event loop, HTTP on its threads.

``serve`` runs until SIGTERM or SIGINT, then stops accepting, answers the messages in hand
(up to ``shutdown_deadline``), answers whatever is still waiting ``AE`` / 503 and closes the
broker connection. Nothing is acknowledged that the broker has not confirmed.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from connector.bus.base import Bus
from connector.bus.topology import Topology
from connector.ingress.http_app import HttpApp
from connector.ingress.httpd import HttpListener
from connector.ingress.listener import MllpListener
from connector.ingress.metrics import IngressMetrics
from connector.ingress.publisher import Publisher
from connector.ingress.settings import Address, ListenSettings

LOG = logging.getLogger("ivpush.ingress")


class ListenError(Exception):
    """A listener cannot be started (address in use, no permission, unknown host)."""


class Ingress:
    """The listeners of one process and their publisher.

    Args:
        settings: Addresses, limits, token, TLS.
        connect: Opens a broker connection (``RabbitBus`` with the settings).
        topology: Where inputs go (``input_exchange``); declared at every connect when ``declare``.
        declare: Declare the topology after connecting.
        metrics: Where to record (a new registry when None).
        reconnect_max: Longest pause between connection attempts, seconds.
    """

    def __init__(
        self,
        settings: ListenSettings,
        connect: Callable[[], Bus],
        topology: Topology,
        declare: bool = True,
        metrics: IngressMetrics | None = None,
        reconnect_max: float = 30.0,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or IngressMetrics()
        self.publisher = Publisher(
            connect, self.metrics, topology if declare else None, settings.confirm_timeout, reconnect_max
        )
        self.mllp = MllpListener(settings, self.publisher, self.metrics, topology) if settings.mllp else None
        self.http: HttpListener | None = None
        self._app = HttpApp(settings, self.publisher, self.metrics, topology) if settings.http else None

    @property
    def addresses(self) -> dict[str, Address]:
        """The bound address of each listener (after ``start``)."""
        found: dict[str, Address] = {}
        if self.mllp is not None:
            found["mllp"] = self.mllp.address
        if self.http is not None and self.settings.http is not None:
            found["http"] = Address(self.settings.http.host, self.http.port)
        return found

    async def start(self) -> None:
        """Start the publisher and bind the listeners.

        Raises:
            ListenError: An address cannot be bound (the publisher is stopped again).
        """
        self.publisher.start()
        try:
            if self.mllp is not None:
                await self.mllp.start()
            if self._app is not None:
                self.http = HttpListener(self._app).start()
        except OSError as error:
            await self.stop()
            reason = error.strerror or error.__class__.__name__
            raise ListenError(f"cannot listen: {reason}") from error
        for name, address in self.addresses.items():
            scheme = name + ("s" if self.settings.tls else "")
            LOG.info("listening for %s on %s (%s://%s)", name.upper(), address, scheme, address)

    async def stop(self) -> None:
        """Stop accepting, answer what is in hand (up to the shutdown deadline), stop the publisher."""
        deadline = self.settings.shutdown_deadline
        waits = []
        if self.http is not None:
            waits.append(asyncio.to_thread(self.http.stop, deadline))
        if self.mllp is not None:
            waits.append(self.mllp.stop(deadline))
        await asyncio.gather(*waits)
        await asyncio.to_thread(self.publisher.stop, deadline)
        LOG.info("listeners stopped")

    async def run(self, stop: asyncio.Event) -> None:
        """Start, serve until ``stop`` is set, stop."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()


def serve(ingress: Ingress) -> None:
    """Run the listeners until SIGTERM or SIGINT (the CLI's entry point).

    Raises:
        ListenError: A listener cannot be started.
    """

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await ingress.run(stop)

    asyncio.run(main())
