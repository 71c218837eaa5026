"""What the ``ivpush parked`` commands share: the queue chosen, the filters, the connection, ages.

``--queue in`` (default) is the parking queue of inputs (``topology.parking_queue``); a requeue
publishes to the input exchange with each message's routing key. ``--queue out.dft`` is the
queue of DFT messages the receiver refused (``forward.parking_queue``); a requeue publishes back
to the DFT output queue, so that ``ivpush forward`` sends them again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from connector.bus.errors import BusError, ConfigError, TopologyError
from connector.cli.consume import config_option
from connector.cli.options import settings_or_exit
from connector.observability.logging import configure_logging

if TYPE_CHECKING:  # the bus (pika) and the settings model are imported when a command runs (#15)
    from connector.bus.parked import Selector
    from connector.bus.parked_records import Target
    from connector.bus.rabbitmq_get import RabbitReader
    from connector.config import Settings

QUEUES = ("in", "out.dft")
AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
CONNECT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Place:
    """The parking queue a command reads and where a requeue sends its messages.

    Attributes:
        label: ``in`` or ``out.dft``.
        queue: The parking queue.
        target: Where a requeue publishes.
        settings: The effective settings.
    """

    label: str
    queue: str
    target: Target
    settings: Settings


def age_seconds(text: str) -> float:
    """``90m``, ``12h``, ``7d``, ``2w`` (also ``s``) in seconds.

    Raises:
        click.BadParameter: Not an age.
    """
    found = AGE.fullmatch(text.strip())
    if found is None or float(found.group(1)) <= 0:
        raise click.BadParameter(f"'{text}' is not an age such as 30m, 12h, 7d or 2w")
    return float(found.group(1)) * UNITS[found.group(2)]


def moment(text: str | None) -> datetime | None:
    """An ISO 8601 date or time (UTC when it has no offset), or an age meaning that long ago.

    Raises:
        click.BadParameter: Neither.
    """
    if text is None:
        return None
    if AGE.fullmatch(text.strip()):
        return datetime.now(UTC) - timedelta(seconds=age_seconds(text))
    try:
        found = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"'{text}' is neither an ISO 8601 time (2026-03-02T10:00Z) nor an age (7d)") from None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def place_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--config``, ``--queue``, ``--prefix``."""
    for option in reversed(
        (
            config_option,
            click.option(
                "--queue",
                "queue_label",
                type=click.Choice(QUEUES),
                default="in",
                show_default=True,
                help="in: parked inputs; out.dft: DFT messages the receiver refused (ivpush forward).",
            ),
            click.option("--prefix", help="Prefix of every exchange and queue name [default: ivpush]."),
        )
    ):
        command = option(command)
    return command


def filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The selection: ``--code``, ``--id``, ``--source``, ``--since``, ``--until``, ``--older-than``, ``--limit``."""
    for option in reversed(
        (
            click.option("--code", "codes", multiple=True, help="Reject code (x-ivpush-error; repeat)."),
            click.option("--id", "ids", multiple=True, help="Parked message id or sender's message id (repeat)."),
            click.option(
                "--source",
                "sources",
                multiple=True,
                help="x-ivpush-source (mllp, http) or routing key; shell patterns such as 'hl7.ras.*' (repeat).",
            ),
            click.option("--since", help="Parked at or after: ISO 8601 time (UTC without offset) or an age (2h)."),
            click.option("--until", help="Parked before: ISO 8601 time or an age (7d: a week ago)."),
            click.option("--older-than", help="Parked more than this age ago (30d): the same as --until 30d."),
            click.option("--limit", type=click.IntRange(1), help="Act on at most this many messages."),
        )
    ):
        command = option(command)
    return command


def selector(options: dict[str, Any]) -> Selector:
    """The selection the filter options describe."""
    from connector.bus.parked import Selector

    until = moment(options.get("until"))
    if options.get("older_than"):
        older = datetime.now(UTC) - timedelta(seconds=age_seconds(options["older_than"]))
        until = min(until, older) if until is not None else older
    return Selector(
        codes=frozenset(options.get("codes") or ()),
        ids=frozenset(options.get("ids") or ()),
        sources=tuple(options.get("sources") or ()),
        since=moment(options.get("since")),
        until=until,
    )


def resolve(config_path: Path | None, queue_label: str, prefix: str | None) -> Place:
    """The settings and the queue chosen, or exit 2 saying what is wrong (logging configured)."""
    from connector.bus.parked_records import Target
    from connector.config.topology import build_topology

    settings = settings_or_exit(config_path, {"amqp.prefix": prefix})
    try:
        topology = build_topology(settings)
    except ConfigError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from error
    configure_logging(settings.logging.level, settings.logging.format)
    if queue_label == "out.dft":
        forward = settings.forward.forward_settings(topology.output_queue("dft"))
        return Place(queue_label, forward.parking_queue, Target("", forward.queue), settings)
    return Place(queue_label, topology.parking_queue, Target(topology.input_exchange), settings)


@contextmanager
def connected(place: Place) -> Iterator[RabbitReader]:
    """A reader on the configured broker; any broker failure ends the command with exit 1."""
    from connector.bus.rabbitmq_get import RabbitReader

    try:
        amqp = place.settings.amqp_settings("ivpush parked")
    except ConfigError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from error
    try:
        reader = RabbitReader(amqp, CONNECT_TIMEOUT)
        try:
            yield reader
        finally:
            reader.close()
    except TopologyError as error:
        click.echo(f"error: {error} (is {place.queue} declared? check --queue and --prefix)", err=True)
        raise SystemExit(1) from error
    except BusError as error:
        click.echo(f"error: {error}; nothing was removed that was not re-published", err=True)
        raise SystemExit(1) from error
