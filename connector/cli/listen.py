"""``ivpush listen --mllp HOST:PORT --http HOST:PORT``: take inputs from interface engines, ACK after the confirm.

Each message received over MLLP (or ``POST /hl7v2`` / ``POST /fhir``) is published to the input
exchange, exactly as ``ivpush publish`` does, and acknowledged only after the broker's publisher
confirm: ``AA`` (200/202) means stored; ``AE`` (503) means not stored, send it again; ``AR``
(4xx) means it can never be accepted as sent. The broker URL, the bearer token and the TLS files
come from the settings (environment, secret files, ``--config``), never the command line.
SIGTERM/SIGINT stop accepting, answer the messages in hand and exit 0.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from connector.bus.errors import ConfigError
from connector.cli.consume import config_option
from connector.cli.options import OBSERVABILITY_KEYS, metrics_server_or_exit, observability_options, settings_or_exit
from connector.observability.logging import configure_logging

if TYPE_CHECKING:  # the listeners, pika, the settings model, prometheus_client: imported on use (#15)
    from connector.config import Settings
    from connector.ingress.run import Ingress

CONNECT_TIMEOUT = 10.0  # a listener answers AE while connecting: do not wait the consumer's 30 s

# Command-line option → settings key (docs/configuration.md); unset options are None and yield.
OPTION_KEYS = {
    "mllp": "listen.mllp",
    "http": "listen.http",
    "prefix": "amqp.prefix",
    "max_bytes": "listen.max_bytes",
    "idle_timeout": "listen.idle_timeout",
    "confirm_timeout": "listen.confirm_timeout",
    "max_connections": "listen.max_connections",
    "routing_key": "listen.routing_key",
    "declare": "amqp.declare",
    "reconnect_max": "amqp.reconnect_max",
    "shutdown_deadline": "shutdown_deadline",
} | OBSERVABILITY_KEYS


@click.command()
@config_option
@click.option("--mllp", help="MLLP listener address HOST:PORT (host default 127.0.0.1).")
@click.option("--http", help="HTTP listener address HOST:PORT: POST /hl7v2 and POST /fhir.")
@click.option("--prefix", help="Prefix of every exchange and queue name [default: ivpush].")
@click.option("--max-bytes", type=click.IntRange(1), help="Largest message or body [default: 1 MiB].")
@click.option("--idle-timeout", type=float, help="Close connections silent this long, seconds [default: 300].")
@click.option("--confirm-timeout", type=float, help="Longest wait for the broker's confirm [default: 10].")
@click.option("--max-connections", type=click.IntRange(1), help="Open connections per listener [default: 64].")
@click.option("--routing-key", help="Routing key of the inputs published [default: ivpush.input].")
@click.option("--declare/--no-declare", default=None, help="Declare the topology at connect [default: declare].")
@click.option("--reconnect-max", type=float, help="Longest reconnect back-off, seconds [default: 30].")
@click.option("--shutdown-deadline", type=float, help="Seconds to answer the messages in hand at stop [default: 10].")
@observability_options
def listen(config_path: Path | None, **options: Any) -> None:
    """Receive HL7 v2 over MLLP and HL7 v2 / FHIR over HTTP; publish each input, then acknowledge it."""
    from connector.ingress.metrics import readiness
    from connector.ingress.run import ListenError, serve

    overrides = {key: options[name] for name, key in OPTION_KEYS.items()}
    settings = settings_or_exit(config_path, overrides)
    configure_logging(settings.logging.level, settings.logging.format)
    ingress = _ingress_or_exit(settings)
    server = metrics_server_or_exit(ingress.metrics.base, settings, readiness)
    try:
        serve(ingress)
    except ListenError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from error
    finally:
        if server is not None:
            server.stop()


def _ingress_or_exit(settings: Settings) -> Ingress:
    """The listeners and their publisher from the settings, or exit 2 saying what is wrong."""
    from connector.bus.rabbitmq import RabbitBus
    from connector.config.topology import build_topology
    from connector.ingress.metrics import IngressMetrics
    from connector.ingress.run import Ingress
    from connector.ingress.settings import ListenSettings, TlsError, parse_address, server_tls
    from connector.observability.metrics import Metrics

    section = settings.listen
    try:
        if section.mllp is None and section.http is None:
            raise ConfigError("nothing to listen on: give --mllp HOST:PORT and/or --http HOST:PORT")
        if settings.amqp.shards:
            raise ConfigError(
                "ivpush listen does not set the encounter_id header that sharded input exchanges hash on: "
                "run it against an unsharded input exchange (amqp.shards = 0)"
            )
        amqp = settings.amqp_settings("ivpush listen")
        topology = build_topology(settings)
        tls = server_tls(section.cert_file, section.key_file, section.client_ca_file) if section.cert_file else None
    except (ConfigError, TlsError) as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from error
    listen_settings = ListenSettings(
        mllp=parse_address(section.mllp) if section.mllp else None,
        http=parse_address(section.http) if section.http else None,
        max_bytes=section.max_bytes,
        idle_timeout=section.idle_timeout,
        confirm_timeout=section.confirm_timeout,
        max_connections=section.max_connections,
        routing_key=section.routing_key,
        token=section.token.get_secret_value() if section.token else None,
        tls=tls,
        shutdown_deadline=settings.shutdown_deadline,
    )
    logging.getLogger("ivpush.ingress").info("ivpush listen: broker %s", amqp.redacted())
    return Ingress(
        listen_settings,
        partial(RabbitBus, amqp, CONNECT_TIMEOUT),
        topology,
        declare=settings.amqp.declare,
        metrics=IngressMetrics(Metrics()),
        reconnect_max=settings.amqp.reconnect_max,
    )


if __name__ == "__main__":
    listen()
