"""``ivpush topology --print|--apply``: the RabbitMQ exchanges, queues, bindings and input policy.

``--print`` writes a RabbitMQ definitions document (``deploy/rabbitmq/definitions.json`` is
its output for the defaults; load it at boot with ``load_definitions`` or import it).
``--apply`` declares everything over AMQP (URL: env or ``--config``) and sets the policy with
``rabbitmqctl`` (``--rabbitmqctl`` / ``IVPUSH_RABBITMQCTL``, default ``rabbitmqctl`` on PATH):
policies cannot be declared over AMQP. Without a usable ``rabbitmqctl`` it prints the command
to run and exits 3.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import click

from connector.bus.errors import BusError
from connector.bus.rabbitmq import RabbitBus
from connector.bus.topology import FORMATS, Topology, definitions_json, policy_args
from connector.cli.consume import amqp_settings_or_exit, config_option, formats_option, prefix_option

POLICY_NOT_APPLIED = 3


@click.command()
@click.option("--print", "action", flag_value="print", default=True, help="Print the definitions JSON (default).")
@click.option("--apply", "action", flag_value="apply", help="Declare over AMQP and set the policy (rabbitmqctl).")
@config_option
@prefix_option
@formats_option
@click.option("--delivery-limit", type=click.IntRange(1), default=20, show_default=True)
@click.option("--shards", type=click.IntRange(0), default=0, show_default=True, help="Consistent-hash input shards.")
@click.option(
    "--rabbitmqctl",
    "rabbitmqctl",
    envvar="IVPUSH_RABBITMQCTL",
    help="Command that runs rabbitmqctl against the broker (default: rabbitmqctl on PATH).",
)
@click.option("--no-policy", is_flag=True, help="With --apply: declare only; leave the policy to the operator.")
def topology(
    action: str,
    config_path: Path | None,
    prefix: str,
    formats: tuple[str, ...],
    delivery_limit: int,
    shards: int,
    rabbitmqctl: str | None,
    no_policy: bool,
) -> None:
    """Print the topology as a definitions file, or apply it to the broker."""
    wanted = Topology(prefix=prefix, formats=formats or FORMATS, delivery_limit=delivery_limit, shards=shards)
    if action == "print":
        click.echo(definitions_json(wanted), nl=False)
        return
    settings = amqp_settings_or_exit(config_path, "ivpush topology")
    try:
        bus = RabbitBus(settings)
        try:
            bus.declare(wanted)
        finally:
            bus.close()
    except BusError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(1) from error
    click.echo(f"declared {len(wanted.exchanges())} exchanges, {len(wanted.queues())} queues, bindings", err=True)
    if no_policy:
        return
    command = shlex.split(rabbitmqctl) if rabbitmqctl else ([found] if (found := shutil.which("rabbitmqctl")) else [])
    args = policy_args(wanted)
    if not command:
        click.echo("policy not applied (no rabbitmqctl): run\n  rabbitmqctl " + shlex.join(args), err=True)
        raise SystemExit(POLICY_NOT_APPLIED)
    result = subprocess.run([*command, *args], capture_output=True, text=True, check=False)  # noqa: S603 - operator's command
    if result.returncode != 0:
        click.echo(f"rabbitmqctl failed ({result.returncode}): {result.stderr.strip()[-500:]}", err=True)
        raise SystemExit(POLICY_NOT_APPLIED)
    click.echo(f"policy {wanted.policy_name} set on {wanted.policy_pattern}", err=True)


if __name__ == "__main__":
    topology()
