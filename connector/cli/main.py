"""``ivpush``: the command group."""

from __future__ import annotations

import click

from connector import __version__
from connector.cli.check import check
from connector.cli.explain import explain


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ivpush")
def cli() -> None:
    """Code IV drug-administration services from medication administration events."""


cli.add_command(explain)
cli.add_command(check)


def main() -> None:
    """Console-script entry point."""
    cli()
