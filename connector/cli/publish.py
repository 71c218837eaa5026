"""``ivpush publish PATH... [--rate N]``: publish archived feeds to the input exchange, one message per record."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import click

from connector.adapters.archive import DEFAULT_MAX_BYTES, Record, read_records
from connector.bus.errors import BusError, ConfigError
from connector.cli.consume import amqp_settings_or_exit, config_option, prefix_option
from connector.cli.options import settings_or_exit


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
    from connector.bus.publisher import input_message, publish_all  # pika and the rest: on use (#15)
    from connector.bus.rabbitmq import RabbitBus
    from connector.config.topology import build_topology

    settings = amqp_settings_or_exit(config_path, "ivpush publish")
    try:  # the input exchange: [topology] input_exchange, else <prefix>.in
        wanted = build_topology(settings_or_exit(config_path, {"amqp.prefix": prefix}))
    except ConfigError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from error
    skipped: list[str] = []
    messages = (input_message(r, wanted, routing_key) for r in _whole(read_records(paths, max_bytes), skipped))
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
    if not report.complete or skipped:
        raise SystemExit(1)


def _whole(records: Iterable[Record], skipped: list[str]) -> Iterator[Record]:
    """The records that can be published: not cut at --max-bytes, not the fault of an unreadable file."""
    for record in records:
        if record.oversize or record.error is not None:
            code = record.error.code if record.error is not None else "oversize_input"
            click.echo(f"skipped {record.where}: {code}", err=True)
            skipped.append(record.where)
        else:
            yield record


if __name__ == "__main__":
    publish()
