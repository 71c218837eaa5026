"""``ivpush topology --print|--apply``: the RabbitMQ exchanges, queues, bindings and input limits.

Both read the settings every command reads (``--config``, environment, secret files:
``[topology]`` names, ``amqp.prefix``, ``amqp.shards``, ``coding.formats``), so they describe
exactly what ``ivpush consume`` and ``ivpush listen`` declare at connect.

``--print`` writes a RabbitMQ definitions document (``deploy/rabbitmq/definitions.json`` is its
output for the defaults; load it at boot with ``load_definitions`` or import it). ``--apply``
declares everything over AMQP on the configured broker (its URL and TLS settings), in one
connection, and exits: the input queues' delivery limit, dead-lettering and overflow are queue
arguments, so nothing else is needed — no ``rabbitmqctl``, no process left behind. With
``topology.queue_arguments = false`` those limits must come from a policy instead: ``--apply``
then prints the ``rabbitmqctl set_policy`` command for an administrator to run, and runs nothing.
Exit 2: invalid settings; 1: the broker refused or could not be reached (the reason on stderr).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from connector.bus.errors import BusError, ConfigError, TopologyError
from connector.bus.topology import FORMATS, Topology, definitions_json, policy_args
from connector.cli.consume import config_option
from connector.cli.options import settings_or_exit

CONNECT_TIMEOUT = 30.0
ARGUMENTS_HINT = (
    "an input queue that already exists with other arguments (one declared by an earlier ivpush has none) "
    "keeps them: set topology.queue_arguments = false and apply the policy, or drain, delete and apply again"
)


@click.command()
@click.option("--print", "action", flag_value="print", default=True, help="Print the definitions JSON (default).")
@click.option("--apply", "action", flag_value="apply", help="Declare everything on the configured broker over AMQP.")
@config_option
@click.option("--prefix", help="Prefix of every name not set in [topology] [default: ivpush].")
@click.option("--format", "formats", multiple=True, type=click.Choice(FORMATS), help="Output format (repeat).")
@click.option("--delivery-limit", type=click.IntRange(1), help="Redeliveries before dead-lettering [default: 20].")
@click.option("--shards", type=click.IntRange(0), help="Consistent-hash input shards [default: 0].")
def topology(
    action: str,
    config_path: Path | None,
    prefix: str | None,
    formats: tuple[str, ...],
    delivery_limit: int | None,
    shards: int | None,
) -> None:
    """Print the topology as a definitions file, or declare it on the broker."""
    from connector.bus.rabbitmq import RabbitBus
    from connector.config.topology import build_topology

    overrides: dict[str, object] = {
        "amqp.prefix": prefix,
        "coding.formats": formats or None,
        "topology.delivery_limit": delivery_limit,
        "amqp.shards": shards,
        "amqp.shard": 0 if shards else None,  # consume needs its shard; the topology does not
    }
    settings = settings_or_exit(config_path, overrides)
    try:
        wanted = build_topology(settings)
        amqp = settings.amqp_settings("ivpush topology") if action == "apply" else None
    except ConfigError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from error
    if amqp is None:
        click.echo(definitions_json(wanted), nl=False)
        return
    try:
        bus = RabbitBus(amqp, CONNECT_TIMEOUT)
        try:
            bus.declare(wanted)
        finally:
            bus.close()
    except TopologyError as error:
        click.echo(
            f"error: {error}; {ARGUMENTS_HINT}" if "inequivalent arg" in str(error) else f"error: {error}", err=True
        )
        raise SystemExit(1) from error
    except BusError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(1) from error
    click.echo(_summary(wanted, amqp.redacted()), err=True)
    if not wanted.queue_arguments:
        click.echo(
            "topology.queue_arguments is false: have an administrator set the input policy:\n  rabbitmqctl "
            + shlex.join(policy_args(wanted)),
            err=True,
        )


def _summary(wanted: Topology, broker: str) -> str:
    """What was declared, by name (names are the operator's, never message content)."""
    site = wanted.site
    bound = f"; {site.exchange} → {site.to} binding '{site.routing_key}'" if site is not None else ""
    limits = (
        f"input limits as queue arguments (delivery-limit {wanted.delivery_limit})"
        if wanted.queue_arguments
        else "no input limits (policy)"
    )
    return (
        f"declared on {broker}: exchanges {', '.join(e.name for e in wanted.exchanges())}; "
        f"queues {', '.join(q.name for q in wanted.queues())}{bound}; {limits}"
    )


if __name__ == "__main__":
    topology()
