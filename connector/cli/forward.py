"""``ivpush forward``: send the DFT^P03 charge messages to a receiver over MLLP, one at a time, in order.

Consumes the DFT output queue (``<prefix>.out.dft``) with prefetch 1 and sends each message on
one MLLP connection, waiting for its ACK: ``AA``/``CA`` acks the delivery, ``AE``/``AR`` (or
``CE``/``CR``) parks it in ``<prefix>.out.dft.parking`` with the receiver's codes, no answer or
a lost connection sends it again after a back-off (``connector.forward.forwarder``). The broker
URL and the TLS files come from the settings (environment, secret files, ``--config``), never
the command line. SIGTERM/SIGINT stop between messages and exit 0.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import click

from connector.bus.errors import ConfigError
from connector.cli.consume import config_option
from connector.cli.options import OBSERVABILITY_KEYS, metrics_server_or_exit, observability_options, settings_or_exit
from connector.observability.logging import configure_logging

# Command-line option → settings key (docs/configuration.md); unset options are None and yield.
OPTION_KEYS = {
    "host": "forward.host",
    "port": "forward.port",
    "queue": "forward.queue",
    "parking_queue": "forward.parking_queue",
    "ack_timeout": "forward.ack_timeout",
    "max_attempts": "forward.max_attempts",
    "prefix": "amqp.prefix",
    "reconnect_max": "amqp.reconnect_max",
} | OBSERVABILITY_KEYS


@click.command()
@config_option
@click.option("--host", help="The receiver's host [default: 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), help="The receiver's MLLP port [default: 2575].")
@click.option("--queue", help="Queue to forward [default: <prefix>.out.dft].")
@click.option("--parking-queue", help="Where refused messages go [default: <queue>.parking].")
@click.option("--ack-timeout", type=float, help="Seconds to wait for each ACK [default: 30].")
@click.option("--max-attempts", type=click.IntRange(0), help="Sends before parking as no_ack; 0: never [default: 0].")
@click.option("--prefix", help="Prefix of every exchange and queue name [default: ivpush].")
@click.option("--reconnect-max", type=float, help="Longest broker reconnect back-off, seconds [default: 30].")
@observability_options
def forward(config_path: Path | None, **options: Any) -> None:
    """Send DFT^P03 charge messages to a receiver over MLLP and settle each on its ACK."""
    from connector.bus.control import Stop  # pika, the settings model, prometheus_client: on use (#15)
    from connector.bus.rabbitmq import RabbitBus
    from connector.config.topology import build_topology
    from connector.forward.forwarder import Forwarder
    from connector.forward.metrics import readiness
    from connector.forward.mllp import MllpClient, client_context
    from connector.observability.metrics import Metrics

    overrides = {key: options[name] for name, key in OPTION_KEYS.items()}
    settings = settings_or_exit(config_path, overrides)
    configure_logging(settings.logging.level, settings.logging.format)
    try:
        dft_queue = build_topology(settings).output_queue("dft")
        amqp = settings.amqp_settings("ivpush forward")
    except ConfigError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from error
    forward_settings = settings.forward.forward_settings(dft_queue, settings.amqp.reconnect_max)
    try:
        context = client_context(forward_settings)
    except OSError as error:  # ssl.SSLError is an OSError
        click.echo(f"error: forward TLS files: {error.__class__.__name__}: {error}", err=True)
        raise SystemExit(2) from error
    metrics = Metrics()
    stop = Stop()
    stop.install()
    forwarder = Forwarder(
        partial(RabbitBus, amqp), MllpClient(forward_settings, context), forward_settings, stop, metrics
    )
    server = metrics_server_or_exit(metrics, settings, readiness)
    logging.getLogger("ivpush.forward").info(
        "ivpush forward: broker %s, receiver %s", amqp.redacted(), forward_settings.receiver
    )
    try:
        forwarder.run()
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    forward()
