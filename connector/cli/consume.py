"""``ivpush consume``: consume RabbitMQ under the delivery contract and publish the charges.

The broker URL comes from ``IVPUSH_AMQP_URL`` (or ``IVPUSH_AMQP_URL_FILE``) or the ``[amqp]``
table of ``--config`` — never from the command line, where ``ps`` would show its password.
SIGTERM/SIGINT finish the batch in hand, drain the outbox and exit 0; a second signal exits at once.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import click

from connector.adapters.archive import DEFAULT_MAX_BYTES
from connector.bootstrap import local_zone, renderers
from connector.bus.config import AmqpSettings, load_settings
from connector.bus.consumer import Consumer, ConsumerSettings, Stop
from connector.bus.errors import ConfigError
from connector.bus.faults import Faults
from connector.bus.inputs import parse_delivery
from connector.bus.rabbitmq import RabbitBus
from connector.bus.topology import FORMATS, Topology
from connector.cli.options import load_or_exit, mappings_option
from connector.model import ClaimType
from connector.service import EmitOn, Service, ServiceSettings
from connector.store.sqlite import SqliteStore

config_option: Callable[[Any], Any] = click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="IVPUSH_CONFIG",
    help="TOML file with an [amqp] table (url, ca_file, cert_file, key_file); env IVPUSH_AMQP_URL wins.",
)
prefix_option: Callable[[Any], Any] = click.option(
    "--prefix",
    default="ivpush",
    show_default=True,
    envvar="IVPUSH_TOPOLOGY_PREFIX",
    help="Prefix of every exchange and queue name.",
)
formats_option: Callable[[Any], Any] = click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(FORMATS),
    help="Output format (repeat; default: json, dft and chargeitem).",
)


def setup_logging(level: str) -> None:
    """Log to stderr; pika's own logger only at DEBUG (our messages say what matters)."""
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("pika").setLevel(logging.WARNING if level.upper() == "DEBUG" else logging.CRITICAL)


def amqp_settings_or_exit(config_path: Path | None, name: str) -> AmqpSettings:
    """Connection settings, or exit 2 saying what is missing."""
    try:
        return load_settings(config_path, connection_name=name)
    except ConfigError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from error


@click.command()
@config_option
@prefix_option
@formats_option
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("ivpush-state.db"),
    show_default=True,
    envvar="IVPUSH_STATE",
    help="SQLite state file (dedup keys, encounters, outbox).",
)
@click.option("--prefetch", type=click.IntRange(1, 65535), default=200, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), help="Deliveries per store transaction (default: --prefetch).")
@click.option("--batch-wait", type=float, default=0.05, show_default=True, help="Seconds to fill a batch.")
@click.option("--emit-on", type=click.Choice([e.value for e in EmitOn]), default="close", show_default=True)
@click.option(
    "--idle-seconds",
    type=float,
    default=4 * 3600.0,
    show_default=True,
    help="Close (and charge) encounters idle this long; 0 never closes on idleness.",
)
@click.option("--sweep-seconds", type=float, default=60.0, show_default=True, help="Seconds between idle sweeps.")
@click.option("--shutdown-deadline", type=float, default=10.0, show_default=True, help="Seconds to drain at stop.")
@click.option("--reconnect-max", type=float, default=30.0, show_default=True, help="Longest reconnect back-off.")
@click.option("--retry-max", type=float, default=60.0, show_default=True, help="Longest unroutable retry back-off.")
@click.option("--shards", type=click.IntRange(0), default=0, show_default=True, help="Consistent-hash input shards.")
@click.option("--shard", type=click.IntRange(0), help="The shard this instance consumes (with --shards).")
@click.option("--declare/--no-declare", default=True, show_default=True, help="Declare the topology at connect.")
@click.option("--claim-type", type=click.Choice([c.value for c in ClaimType]), default="facility", show_default=True)
@click.option("--policy", "payer", default="default", show_default=True, help="Payer policy when the feed names none.")
@click.option("--zone", help="Zone of HL7 times sent without an offset (env IVPUSH_TIMEZONE; default UTC).")
@click.option("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, show_default=True, help="Park larger inputs.")
@click.option("--log-level", default="INFO", show_default=True, envvar="IVPUSH_LOG_LEVEL")
@mappings_option
def consume(
    config_path: Path | None,
    prefix: str,
    formats: tuple[str, ...],
    state: Path,
    prefetch: int,
    batch_size: int | None,
    batch_wait: float,
    emit_on: str,
    idle_seconds: float,
    sweep_seconds: float,
    shutdown_deadline: float,
    reconnect_max: float,
    retry_max: float,
    shards: int,
    shard: int | None,
    declare: bool,
    claim_type: str,
    payer: str,
    zone: str | None,
    max_bytes: int,
    log_level: str,
    mappings: Path | None,
) -> None:
    """Consume HL7 v2 / FHIR inputs from RabbitMQ and publish charge messages (URL: env or --config)."""
    setup_logging(log_level)
    if shards and shard is None:
        raise click.BadParameter("--shards needs --shard N (the shard this instance consumes)")
    policy = load_or_exit(mappings)
    try:
        site_zone = local_zone(zone)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--zone") from error
    if payer.lower() not in policy.payers:
        raise click.BadParameter(f"unknown payer policy '{payer}' (known: {', '.join(sorted(policy.payers))})")
    try:
        faults = Faults.from_env()
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    amqp = amqp_settings_or_exit(config_path, "ivpush consume")
    names = formats or FORMATS
    topology = Topology(prefix=prefix, formats=names, shards=shards)
    store = SqliteStore(state)
    settings = ServiceSettings(renderers(names), EmitOn(emit_on), ClaimType(claim_type), payer.lower())
    service = Service(store, policy, settings, clock=time.time)
    stop = Stop()
    stop.install()
    consumer = Consumer(
        connect=partial(RabbitBus, amqp),
        service=service,
        parse=partial(parse_delivery, policy=policy, local_zone=site_zone, max_bytes=max_bytes),
        topology=topology,
        settings=ConsumerSettings(
            queue=topology.input_queue(shard),
            prefetch=prefetch,
            batch_size=min(batch_size or prefetch, prefetch),
            batch_wait=batch_wait,
            idle_seconds=idle_seconds or None,
            sweep_every=sweep_seconds,
            shutdown_deadline=shutdown_deadline,
            reconnect_cap=reconnect_max,
            retry_cap=retry_max,
        ),
        stop=stop,
        faults=faults,
        declare=declare,
    )
    logging.getLogger("ivpush.bus").info("ivpush consume: broker %s, state %s", amqp.redacted(), state)
    try:
        consumer.run()
    finally:
        store.close()


if __name__ == "__main__":
    consume()
