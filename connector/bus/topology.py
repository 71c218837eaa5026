"""The RabbitMQ topology ivpush needs, as data: declared by the consumer, printed as a definitions file.

``<prefix>.in`` (topic exchange, any routing key) → ``<prefix>.in`` (quorum queue) → consumer.
``<prefix>.out`` (direct exchange) → ``charge.json|charge.dft|charge.chargeitem`` →
``<prefix>.out.<format>`` (quorum queues). ``<prefix>.dlx`` (fanout) → ``<prefix>.parking``
(quorum queue) receives poison inputs (published there by the consumer with reason headers,
or dead-lettered by the broker after ``delivery-limit`` redeliveries). Every name can be set
explicitly instead (``Names``, the ``[topology]`` settings), and a site's own exchange can feed
the input (``SiteBinding``: an exchange-to-exchange or queue binding with a routing-key pattern).

The input queues carry their delivery limit, dead-lettering (``at-least-once``, which needs
``overflow: reject-publish``) and overflow as **queue arguments**, so declaring over AMQP
(``ivpush topology --apply``, or any ivpush process at connect) sets everything: no
``rabbitmqctl``, no management API. Queue arguments cannot change on an existing queue: with
``queue_arguments=False`` the input queues are declared without them (as before), and the same
settings come from the **policy** the definitions document also carries (``rabbitmqctl
set_policy``: ``policy_args``). The definitions carry no users: a node that loads them at its
*first* boot (``load_definitions``) skips creating its default user, so create ivpush's user
separately (or ``rabbitmqctl import_definitions`` after boot, as ``deploy/local/rabbitmq.sh`` does).

With ``shards`` > 0 the input exchange is an ``x-consistent-hash`` exchange hashing the
``encounter_id`` header over ``<input queue>.<n>`` single-active-consumer queues (plugin
``rabbitmq_consistent_hash_exchange``); each consumer instance takes one shard.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from connector.bus.topology_specs import BindingSpec, ExchangeSpec, Names, QueueSpec, SiteBinding

__all__ = [
    "CONTENT_TYPES",
    "FORMATS",
    "HASH_HEADER",
    "QUORUM",
    "SCHEMAS",
    "BindingSpec",
    "ExchangeSpec",
    "Names",
    "QueueSpec",
    "SiteBinding",
    "Topology",
    "definitions",
    "definitions_json",
    "policy_args",
]

FORMATS = ("json", "dft", "chargeitem")
CONTENT_TYPES = {
    "json": "application/json",
    "dft": "x-application/hl7-v2+er7",
    "chargeitem": "application/fhir+json",
}
SCHEMAS = {
    "json": "ivpush.charge/1",
    "dft": "hl7-v2.5.1/DFT_P03",
    "chargeitem": "fhir-r4/Bundle-ChargeItem",
}
QUORUM = {"x-queue-type": "quorum"}
HASH_HEADER = "encounter_id"


@dataclass(frozen=True)
class Topology:
    """Names and settings of everything ivpush declares.

    Attributes:
        prefix: Prefix of every name not set in ``names`` (one prefix per deployment or test).
        formats: Output formats that get a routing key and a queue.
        delivery_limit: Redeliveries of an input before the broker dead-letters it.
        shards: 0 for one input queue; S for S consistent-hash shard queues.
        vhost: Virtual host (definitions file).
        names: Explicit names (each ``None``: ``<prefix>.<suffix>``).
        site: A site-owned exchange bound to the input, or None.
        queue_arguments: Declare the input queues' limits as queue arguments (else: policy only).
    """

    prefix: str = "ivpush"
    formats: tuple[str, ...] = FORMATS
    delivery_limit: int = 20
    shards: int = 0
    vhost: str = "/"
    names: Names = field(default_factory=Names)
    site: SiteBinding | None = None
    queue_arguments: bool = True

    @property
    def input_exchange(self) -> str:
        """Where producers publish inputs (any routing key)."""
        return self.names.input_exchange or f"{self.prefix}.in"

    def input_queue(self, shard: int | None = None) -> str:
        """The queue a consumer reads (its shard's when sharded)."""
        base = self.names.input_queue or f"{self.prefix}.in"
        if self.shards and shard is not None:
            return f"{base}.{shard}"
        return base

    @property
    def output_exchange(self) -> str:
        """Where charge messages are published."""
        return self.names.output_exchange or f"{self.prefix}.out"

    @staticmethod
    def routing_key(fmt: str) -> str:
        """Routing key of a format's charge messages."""
        return f"charge.{fmt}"

    def output_queue(self, fmt: str) -> str:
        """The queue that collects a format's charge messages."""
        return dict(self.names.output_queues).get(fmt) or f"{self.prefix}.out.{fmt}"

    @property
    def parking_exchange(self) -> str:
        """The dead-letter exchange (also where the consumer parks poison inputs itself)."""
        return self.names.parking_exchange or f"{self.prefix}.dlx"

    @property
    def parking_queue(self) -> str:
        """Where poison inputs wait for an analyst."""
        return self.names.parking_queue or f"{self.prefix}.parking"

    @property
    def policy_name(self) -> str:
        """Name of the input queues' policy."""
        return f"{self.prefix}-input"

    @property
    def policy_pattern(self) -> str:
        """Regex of the queues the policy applies to (the input queue and its shards)."""
        return f"^{re.escape(self.input_queue())}(\\.[0-9]+)?$"

    @property
    def policy_definition(self) -> dict[str, Any]:
        """Delivery limit, dead-lettering at least once, and reject-publish overflow."""
        return {
            "delivery-limit": self.delivery_limit,
            "dead-letter-exchange": self.parking_exchange,
            "dead-letter-strategy": "at-least-once",
            "overflow": "reject-publish",
        }

    @property
    def input_arguments(self) -> dict[str, Any]:
        """The policy's settings as queue arguments (empty with ``queue_arguments`` off)."""
        if not self.queue_arguments:
            return {}
        return {f"x-{key}": value for key, value in self.policy_definition.items()}

    def input_queues(self) -> list[str]:
        """Every input queue."""
        if self.shards:
            return [self.input_queue(n) for n in range(self.shards)]
        return [self.input_queue()]

    def exchanges(self) -> list[ExchangeSpec]:
        """Exchanges to declare (never the site's own)."""
        if self.shards:
            inbound = ExchangeSpec(self.input_exchange, "x-consistent-hash", {"hash-header": HASH_HEADER})
        else:
            inbound = ExchangeSpec(self.input_exchange, "topic")
        return [
            inbound,
            ExchangeSpec(self.output_exchange, "direct"),
            ExchangeSpec(self.parking_exchange, "fanout"),
        ]

    def queues(self) -> list[QueueSpec]:
        """Queues to declare (all quorum)."""
        shard_args = {"x-single-active-consumer": True} if self.shards else {}
        inputs = [QueueSpec(name, {**QUORUM, **shard_args, **self.input_arguments}) for name in self.input_queues()]
        outputs = [QueueSpec(self.output_queue(fmt), dict(QUORUM)) for fmt in self.formats]
        return [*inputs, *outputs, QueueSpec(self.parking_queue, dict(QUORUM))]

    def bindings(self) -> list[BindingSpec]:
        """Bindings to declare, the site's exchange to the input last."""
        key = "1" if self.shards else "#"  # consistent hash: the routing key is the shard's weight
        inputs = [BindingSpec(self.input_exchange, name, key) for name in self.input_queues()]
        outputs = [BindingSpec(self.output_exchange, self.output_queue(f), self.routing_key(f)) for f in self.formats]
        site = self.site
        extra: list[BindingSpec] = []
        if site is not None and site.to == "exchange":
            extra.append(BindingSpec(site.exchange, self.input_exchange, site.routing_key, "exchange"))
        elif site is not None:
            extra.extend(BindingSpec(site.exchange, name, site.routing_key) for name in self.input_queues())
        return [*inputs, *outputs, BindingSpec(self.parking_exchange, self.parking_queue, ""), *extra]


def definitions(topology: Topology) -> dict[str, Any]:
    """The topology as a RabbitMQ definitions document (``load_definitions`` / import)."""
    vhost = topology.vhost
    return {
        "exchanges": [
            {
                "name": e.name,
                "vhost": vhost,
                "type": e.type,
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": e.arguments,
            }
            for e in topology.exchanges()
        ],
        "queues": [
            {"name": q.name, "vhost": vhost, "durable": True, "auto_delete": False, "arguments": q.arguments}
            for q in topology.queues()
        ],
        "bindings": [
            {
                "source": b.exchange,
                "vhost": vhost,
                "destination": b.queue,
                "destination_type": b.destination_type,
                "routing_key": b.routing_key,
                "arguments": {},
            }
            for b in topology.bindings()
        ],
        "policies": [
            {
                "vhost": vhost,
                "name": topology.policy_name,
                "pattern": topology.policy_pattern,
                "apply-to": "queues",
                "priority": 10,
                "definition": topology.policy_definition,
            }
        ],
    }


def definitions_json(topology: Topology) -> str:
    """The definitions document as stable, indented JSON (with a final newline)."""
    return json.dumps(definitions(topology), indent=2, sort_keys=False) + "\n"


def policy_args(topology: Topology) -> list[str]:
    """``rabbitmqctl`` arguments that set the input policy (``--apply-to queues``: 3.10 rejects ``quorum_queues``)."""
    return [
        "set_policy",
        "--vhost",
        topology.vhost,
        "--apply-to",
        "queues",
        "--priority",
        "10",
        topology.policy_name,
        topology.policy_pattern,
        json.dumps(topology.policy_definition, separators=(",", ":")),
    ]
