"""The ``[topology]`` section: explicit exchange and queue names, a site's exchange, the input queues' limits.

Every name defaults to ``<amqp.prefix>.<suffix>`` (what earlier versions used); a site that
names its objects itself sets them here. :func:`build_topology` turns the settings into the
:class:`~connector.bus.topology.Topology` every command declares and publishes to, and checks
what one section cannot see alone (the shards, names given twice).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator

from connector.bus.errors import ConfigError
from connector.bus.topology import FORMATS, Names, SiteBinding, Topology
from connector.bus.topology_specs import BindTo
from connector.config.section import Section

if TYPE_CHECKING:
    from connector.config.model import Settings

NAME = re.compile(r"[!-~]{1,255}")  # printable ASCII, no spaces: what shows and types safely everywhere
NAME_RULE = "1-255 printable ASCII characters without spaces"


class TopologySection(Section):
    """Names of what ivpush declares (each default: `<prefix>.<suffix>`), the site's exchange, the input limits."""

    input_exchange: str | None = Field(
        default=None, description="Exchange inputs are published to (default `<prefix>.in`)."
    )
    input_queue: str | None = Field(
        default=None, description="Input queue (default `<prefix>.in`; with shards `<input_queue>.<n>`)."
    )
    output_exchange: str | None = Field(
        default=None, description="Exchange charge messages are published to (default `<prefix>.out`)."
    )
    json_queue: str | None = Field(default=None, description="Queue of the JSON charges (default `<prefix>.out.json`).")
    dft_queue: str | None = Field(
        default=None, description="Queue of the DFT^P03 messages (default `<prefix>.out.dft`)."
    )
    chargeitem_queue: str | None = Field(
        default=None, description="Queue of the ChargeItem Bundles (default `<prefix>.out.chargeitem`)."
    )
    parking_exchange: str | None = Field(
        default=None, description="Dead-letter and parking exchange (default `<prefix>.dlx`)."
    )
    parking_queue: str | None = Field(default=None, description="Parked inputs' queue (default `<prefix>.parking`).")
    bind_exchange: str | None = Field(
        default=None,
        description="An existing exchange of the site to take inputs from (must exist; never declared by ivpush).",
    )
    bind_routing_key: str = Field(
        default="#", description="Routing key (topic pattern) of the binding from `bind_exchange`."
    )
    bind_to: BindTo = Field(
        default="exchange",
        description="Bind `bind_exchange` to the input exchange (exchange-to-exchange) or to the input queue.",
    )
    delivery_limit: int = Field(
        default=20, ge=1, description="Redeliveries of an input before the broker dead-letters it to parking."
    )
    queue_arguments: bool = Field(
        default=True,
        description="Declare the input queues with their limits as queue arguments; false: leave them to a policy.",
    )

    @field_validator(
        "input_exchange",
        "input_queue",
        "output_exchange",
        "json_queue",
        "dft_queue",
        "chargeitem_queue",
        "parking_exchange",
        "parking_queue",
    )
    @classmethod
    def _declared_name(cls, name: str | None) -> str | None:
        if name is not None and (not NAME.fullmatch(name) or name.startswith("amq.")):
            raise ValueError(f"give {NAME_RULE}, not starting with 'amq.' (reserved by RabbitMQ)")
        return name

    @field_validator("bind_exchange")
    @classmethod
    def _site_exchange(cls, name: str | None) -> str | None:
        if name is not None and not NAME.fullmatch(name):
            raise ValueError(f"give {NAME_RULE} (the default exchange cannot be bound)")
        return name

    @field_validator("bind_routing_key")
    @classmethod
    def _binding_key(cls, key: str) -> str:
        if len(key.encode()) > 255 or any(not c.isprintable() for c in key):
            raise ValueError("give at most 255 bytes of printable characters")
        return key


def build_topology(settings: Settings) -> Topology:
    """The topology the settings describe.

    Raises:
        ConfigError: The names collide, or the site binding cannot work with the shards.
    """
    section = settings.topology
    queues = ((fmt, getattr(section, f"{fmt}_queue")) for fmt in FORMATS)
    site = None
    if section.bind_exchange is not None:
        site = SiteBinding(section.bind_exchange, section.bind_routing_key, section.bind_to)
    topology = Topology(
        prefix=settings.amqp.prefix,
        formats=settings.coding.formats,
        delivery_limit=section.delivery_limit,
        shards=settings.amqp.shards,
        vhost=_vhost(settings),
        names=Names(
            input_exchange=section.input_exchange,
            input_queue=section.input_queue,
            output_exchange=section.output_exchange,
            output_queues=tuple((fmt, name) for fmt, name in queues if name is not None),
            parking_exchange=section.parking_exchange,
            parking_queue=section.parking_queue,
        ),
        site=site,
        queue_arguments=section.queue_arguments,
    )
    _check(topology)
    return topology


def topology_problem(settings: Settings) -> str | None:
    """What :func:`build_topology` would refuse (for ``ivpush check``), or None."""
    try:
        build_topology(settings)
    except ConfigError as error:
        return str(error)
    return None


def _check(topology: Topology) -> None:
    exchanges = [e.name for e in topology.exchanges()]
    queues = [q.name for q in topology.queues()]
    for kind, names in (("exchange", exchanges), ("queue", queues)):
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ConfigError(f"the {kind} name {repeated[0]} is given to two {kind}s: every one needs its own")
    site = topology.site
    if site is not None and site.exchange in exchanges:
        raise ConfigError(f"topology.bind_exchange {site.exchange} is one of ivpush's own exchanges")
    if site is not None and site.to == "queue" and topology.shards:
        raise ConfigError(
            "topology.bind_to = queue cannot spread inputs over amqp.shards: bind to the (consistent-hash) "
            "input exchange instead (bind_to = exchange)"
        )


def _vhost(settings: Settings) -> str:
    """The virtual host of the broker URL (``/`` without one), for the definitions document."""
    url = settings.amqp.url
    path = urlsplit(url.get_secret_value()).path if url is not None else ""
    return unquote(path[1:]) if len(path) > 1 else "/"
