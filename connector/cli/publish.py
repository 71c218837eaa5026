"""``ivpush publish PATH... [--rate N]``: publish archived feeds to the input exchange, one message per record."""

from __future__ import annotations

from pathlib import Path

import click

from connector.adapters.archive import DEFAULT_MAX_BYTES, read_records
from connector.bus.errors import BusError
from connector.bus.publisher import input_message, publish_all
from connector.bus.rabbitmq import RabbitBus
from connector.bus.topology import Topology
from connector.cli.consume import amqp_settings_or_exit, config_option, prefix_option


@click.command()
@click.argument("paths", nargs=-1, required=True)
@config_option
@prefix_option
@click.option("--rate", type=click.FloatRange(min=0.1), help="Messages per second (default: as fast as confirms).")
@click.option("--routing-key", default="ivpush.input", show_default=True)
@click.option("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, show_default=True)
def publish(
    paths: tuple[str, ...], config_path: Path | None, prefix: str, rate: float | None, routing_key: str, max_bytes: int
) -> None:
    """Publish HL7 v2 / FHIR archives (files, directories, -, .gz) with publisher confirms."""
    settings = amqp_settings_or_exit(config_path, "ivpush publish")
    wanted = Topology(prefix=prefix)
    messages = (input_message(r, wanted, routing_key) for r in read_records(paths, max_bytes))
    try:
        bus = RabbitBus(settings)
        try:
            report = publish_all(bus, messages, rate=rate)
        finally:
            bus.close()
    except BusError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(1) from error
    click.echo(
        f"published {len(report.confirmed)} (returned {len(report.returned)}, nacked {len(report.nacked)}, "
        f"unconfirmed {len(report.unconfirmed)}) to {wanted.input_exchange}",
        err=True,
    )
    if not report.complete:
        raise SystemExit(1)


if __name__ == "__main__":
    publish()
