"""``ivpush consume``: consume RabbitMQ under the delivery contract and publish the charges.

The broker URL comes from ``IVPUSH_AMQP_URL`` (or ``IVPUSH_AMQP_URL_FILE``) or the ``[amqp]``
table of ``--config`` — never from the command line, where ``ps`` would show its password.
SIGTERM/SIGINT finish the batch in hand, drain the outbox and exit 0; a second signal exits at once.
Exit 2: the settings are invalid (a malformed broker URL, its password redacted in the
message); exit 3: the broker refused the credentials or virtual host ``amqp.auth_attempts``
times in a row (one ``error:`` line on stderr).

The consumer, pika, the service, the settings model and the metrics are imported when the command
runs: ``ivpush consume --help`` and the commands that share its options (``config_option``...)
import none of them (issue #15).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from connector.bootstrap import StoreOpenError, identity_key, local_zone, open_store, renderers, store_label
from connector.bus.errors import AccessRefused, ConfigError
from connector.bus.topology import FORMATS
from connector.cli.options import load_or_exit, settings_or_exit
from connector.model import ClaimType, EmitOn
from connector.observability.logging import FORMATS as LOG_FORMATS
from connector.observability.logging import configure_logging
from connector.observability.server import DEFAULT_HOST, DEFAULT_PORT, ObservabilityError, ObservabilityServer

if TYPE_CHECKING:
    from datetime import tzinfo

    from connector.bus.config import AmqpSettings
    from connector.bus.consumer import Consumer
    from connector.bus.faults import Faults
    from connector.bus.topology import Topology
    from connector.config import Settings
    from connector.observability.metrics import Metrics
    from connector.policy.model import Policy
    from connector.store.base import Store

ACCESS_REFUSED_EXIT = 3

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


# Command-line option → settings key (docs/configuration.md); unset options are None and yield.
OPTION_KEYS = {
    "prefix": "amqp.prefix",
    "state": "state.url",
    "prefetch": "amqp.prefetch",
    "batch_size": "amqp.batch_size",
    "batch_wait": "amqp.batch_wait",
    "emit_on": "coding.emit_on",
    "idle_seconds": "coding.idle_seconds",
    "sweep_seconds": "coding.sweep_seconds",
    "shutdown_deadline": "shutdown_deadline",
    "reconnect_max": "amqp.reconnect_max",
    "retry_max": "amqp.retry_max",
    "shards": "amqp.shards",
    "shard": "amqp.shard",
    "declare": "amqp.declare",
    "claim_type": "coding.claim_type",
    "payer": "coding.payer",
    "zone": "coding.zone",
    "max_bytes": "coding.max_bytes",
    "log_level": "logging.level",
    "log_format": "logging.format",
    "metrics_port": "metrics.port",
    "metrics_host": "metrics.host",
    "mappings": "coding.mappings",
}


def amqp_settings_or_exit(config_path: Path | None, name: str) -> AmqpSettings:
    """Connection settings from the settings model, or exit 2 saying what is missing."""
    settings = settings_or_exit(config_path, {})
    try:
        return settings.amqp_settings(name)
    except ConfigError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from error


@click.command()
@config_option
@click.option("--prefix", help="Prefix of every exchange and queue name [default: ivpush].")
@formats_option
@click.option(
    "--state",
    help="State store (dedup keys, encounters, outbox): a SQLite file, or a postgresql:// URL shared by "
    "several consumers [default: ivpush-state.db]. A URL with a password belongs in IVPUSH_STATE or "
    "IVPUSH_STATE_FILE, not on the command line.",
)
@click.option("--prefetch", type=click.IntRange(1, 65535), help="Unacknowledged deliveries in flight [default: 200].")
@click.option("--batch-size", type=click.IntRange(1), help="Deliveries per store transaction (default: --prefetch).")
@click.option("--batch-wait", type=float, help="Seconds to fill a batch [default: 0.05].")
@click.option("--emit-on", type=click.Choice([e.value for e in EmitOn]), help="When to emit [default: close].")
@click.option(
    "--idle-seconds",
    type=float,
    help="Close (and charge) encounters idle this long; 0 never closes on idleness [default: 14400].",
)
@click.option("--sweep-seconds", type=float, help="Seconds between idle sweeps [default: 60].")
@click.option("--shutdown-deadline", type=float, help="Seconds to drain at stop [default: 10].")
@click.option("--reconnect-max", type=float, help="Longest reconnect back-off [default: 30].")
@click.option("--retry-max", type=float, help="Longest unroutable retry back-off [default: 60].")
@click.option("--shards", type=click.IntRange(0), help="Consistent-hash input shards [default: 0].")
@click.option("--shard", type=click.IntRange(0), help="The shard this instance consumes (with --shards).")
@click.option("--declare/--no-declare", default=None, help="Declare the topology at connect [default: declare].")
@click.option("--claim-type", type=click.Choice([c.value for c in ClaimType]), help="[default: facility]")
@click.option("--policy", "payer", help="Payer policy when the feed names none [default: default].")
@click.option("--zone", help="Zone of HL7 times sent without an offset [default: UTC].")
@click.option("--max-bytes", type=click.IntRange(1), help="Park larger inputs [default: 1 MiB].")
@click.option("--log-level", help="DEBUG, INFO, WARNING, ERROR or CRITICAL [default: INFO].")
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    help="Logs on stderr: JSON lines (timestamp, level, logger, event, fields) or text [default: json].",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help=f"Serve /metrics, /healthz and /readyz on this port (0: off) [default: {DEFAULT_PORT}].",
)
@click.option(
    "--metrics-host", help=f"Address the metrics endpoint binds (0.0.0.0 in a container) [default: {DEFAULT_HOST}]."
)
@click.option(
    "--mappings",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Site mappings directory overlaying the shipped defaults.",
)
def consume(config_path: Path | None, formats: tuple[str, ...], **options: Any) -> None:
    """Consume HL7 v2 / FHIR inputs from RabbitMQ and publish charge messages.

    Every option also comes from the environment or the TOML ``--config`` file
    (docs/configuration.md); the broker URL only from those, never the command line.
    """
    from connector.bus.faults import Faults
    from connector.config.topology import build_topology

    overrides = {key: options[name] for name, key in OPTION_KEYS.items()}
    overrides["coding.formats"] = formats or None
    settings = settings_or_exit(config_path, overrides)
    configure_logging(settings.logging.level, settings.logging.format)
    coding = settings.coding
    policy = load_or_exit(coding.mappings)
    site_zone = local_zone(coding.zone)
    if coding.payer not in policy.payers:
        raise click.BadParameter(f"unknown payer policy '{coding.payer}' (known: {', '.join(sorted(policy.payers))})")
    try:
        faults = Faults.from_env()
        amqp = settings.amqp_settings("ivpush consume")
        topology = build_topology(settings)
    except (ValueError, ConfigError) as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from error
    try:
        store = open_store(settings.state.spec)
    except StoreOpenError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from error
    consumer, metrics = _consumer(settings, policy, site_zone, (amqp, topology, faults), store)
    logging.getLogger("ivpush.bus").info(
        "ivpush consume: broker %s, state %s", amqp.redacted(), store_label(settings.state.spec)
    )
    server = _serve(metrics, settings.metrics.host, settings.metrics.port, store)
    try:
        consumer.run()
    except ConfigError as error:  # a URL pika cannot read, TLS files: before any connection
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from error
    except AccessRefused as error:  # auth_attempts refusals in a row: a supervisor must show it
        click.echo(f"error: {error}; check the user, password and virtual host of {amqp.redacted()}", err=True)
        raise SystemExit(ACCESS_REFUSED_EXIT) from error
    finally:
        if server is not None:
            server.stop()
        store.close()


def _consumer(
    settings: Settings,
    policy: Policy,
    site_zone: tzinfo | None,
    bus: tuple[AmqpSettings, Topology, Faults],
    store: Store,
) -> tuple[Consumer, Metrics]:
    """The consumer loop over the service, with its stop signal handlers installed, and its metrics."""
    from connector.adapters.sanity import parse_window
    from connector.bus.consumer import Consumer, ConsumerSettings, Stop
    from connector.bus.inputs import read_delivery
    from connector.bus.rabbitmq import RabbitBus
    from connector.bus.retention import Retention
    from connector.observability.metrics import Metrics
    from connector.service import Service, ServiceSettings

    amqp, topology, faults = bus
    coding = settings.coding
    outputs = renderers(coding.formats, settings.dft.emitter_settings(), settings.chargeitem.emitter_settings())
    service_settings = ServiceSettings(outputs, coding.emit_on, coding.claim_type, coding.payer, identity_key())
    service = Service(store, policy, service_settings, clock=time.time)
    stop = Stop()
    stop.install()
    metrics = Metrics()
    keep = settings.retention.keep_seconds
    retention = None if keep is None else Retention(store, keep, settings.retention.purge_seconds, metrics)
    consumer = Consumer(
        connect=partial(RabbitBus, amqp),
        service=service,
        parse=partial(
            read_delivery,
            policy=policy,
            local_zone=site_zone,
            max_bytes=coding.max_bytes,
            window=parse_window(coding.time_window),
        ),
        topology=topology,
        settings=ConsumerSettings(
            queue=topology.input_queue(settings.amqp.shard),
            prefetch=settings.amqp.prefetch,
            batch_size=settings.batch_size,
            batch_wait=settings.amqp.batch_wait,
            idle_seconds=coding.idle_seconds or None,
            sweep_every=coding.sweep_seconds,
            shutdown_deadline=settings.shutdown_deadline,
            reconnect_cap=settings.amqp.reconnect_max,
            retry_cap=settings.amqp.retry_max,
            auth_attempts=settings.amqp.auth_attempts,
        ),
        stop=stop,
        faults=faults,
        declare=settings.amqp.declare,
        metrics=metrics,
        retention=retention,
    )
    return consumer, metrics


def _serve(metrics: Metrics, host: str, port: int, store: Store) -> ObservabilityServer | None:
    """Start the metrics/health endpoint (None when ``port`` is 0), or exit 2 saying why it cannot."""
    if not port:
        return None
    try:
        server = ObservabilityServer(metrics, host, port).start()
    except ObservabilityError as error:
        store.close()
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from error
    logging.getLogger("ivpush.bus").info(
        "serving /metrics, /healthz and /readyz on http://%s:%d", host, server.port, extra={"port": server.port}
    )
    return server


if __name__ == "__main__":
    consume()
