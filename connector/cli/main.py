"""``ivpush``: the command group."""

from __future__ import annotations

import click

from connector import __version__
from connector.cli.check import check
from connector.cli.consume import consume
from connector.cli.demo import demo
from connector.cli.explain import explain
from connector.cli.forward import forward
from connector.cli.listen import listen
from connector.cli.live_demo import live_demo
from connector.cli.parked import parked
from connector.cli.policy import policy
from connector.cli.publish import publish
from connector.cli.recode import recode
from connector.cli.replay import replay
from connector.cli.serve import serve
from connector.cli.state import state
from connector.cli.synth import synth
from connector.cli.topology import topology
from connector.cli.unmapped import unmapped


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ivpush")
def cli() -> None:
    """Code IV drug-administration services from medication administration events."""


cli.add_command(explain)
cli.add_command(unmapped)
cli.add_command(check)
cli.add_command(replay)
cli.add_command(demo)
cli.add_command(consume)
cli.add_command(topology)
cli.add_command(publish)
cli.add_command(listen)
cli.add_command(forward)
cli.add_command(parked)
cli.add_command(state)
cli.add_command(live_demo)
cli.add_command(synth)
cli.add_command(policy)
cli.add_command(recode)
cli.add_command(serve)


def main() -> None:
    """Console-script entry point."""
    cli()
