"""The pieces a :class:`~connector.bus.topology.Topology` is made of: what gets declared, and the names a site sets.

``ExchangeSpec``/``QueueSpec``/``BindingSpec`` are what ``Bus.declare`` declares and what the
definitions document lists. ``Names`` holds the explicit name of each exchange and queue a site
gave (``None``: derived from the prefix). ``SiteBinding`` is the site's own, pre-existing
exchange that feeds ivpush's inputs: ivpush binds to it, never declares or deletes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

BindTo = Literal["exchange", "queue"]


@dataclass(frozen=True, slots=True)
class ExchangeSpec:
    """An exchange to declare (durable)."""

    name: str
    type: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A queue to declare (durable)."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BindingSpec:
    """A queue (or, with ``destination_type="exchange"``, an exchange) bound to an exchange.

    Attributes:
        exchange: The source exchange.
        queue: The destination: a queue, or an exchange (exchange-to-exchange binding).
        routing_key: The binding key (a pattern on topic exchanges).
        destination_type: ``queue`` or ``exchange``.
    """

    exchange: str
    queue: str
    routing_key: str
    destination_type: BindTo = "queue"


@dataclass(frozen=True, slots=True)
class Names:
    """Explicit exchange and queue names; ``None`` means ``<prefix>.<suffix>`` (see ``Topology``).

    Attributes:
        input_exchange: Where inputs are published (default ``<prefix>.in``).
        input_queue: The input queue (default ``<prefix>.in``; shard n: ``<input_queue>.<n>``).
        output_exchange: Where charge messages are published (default ``<prefix>.out``).
        output_queues: ``(format, queue)`` pairs (default ``<prefix>.out.<format>``).
        parking_exchange: Dead-letter and parking exchange (default ``<prefix>.dlx``).
        parking_queue: Where poison inputs wait (default ``<prefix>.parking``).
    """

    input_exchange: str | None = None
    input_queue: str | None = None
    output_exchange: str | None = None
    output_queues: tuple[tuple[str, str], ...] = ()
    parking_exchange: str | None = None
    parking_queue: str | None = None


@dataclass(frozen=True, slots=True)
class SiteBinding:
    """A site-owned exchange bound to ivpush's input (it must exist; ivpush never declares it).

    Attributes:
        exchange: The site's exchange.
        routing_key: Binding key: a topic pattern (``hl7.ras.#``), an exact key on a direct exchange.
        to: ``exchange``: an exchange-to-exchange binding to the input exchange (sharding keeps
            working); ``queue``: the input queue bound to the site's exchange directly.
    """

    exchange: str
    routing_key: str = "#"
    to: BindTo = "exchange"
