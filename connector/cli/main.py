"""``ivpush``: the command group.

Each command's module is imported when the command runs (or its ``--help`` is asked), not when
``ivpush`` starts: ``ivpush --version``, ``ivpush --help`` and ``ivpush <command> --help`` do not
pay for fhir.resources, pika, prometheus_client or structlog (tests/unit/test_startup.py).
``ivpush --help`` lists the commands from :data:`COMMANDS`, whose short help must stay the first
paragraph of each command's own help (checked by the same test).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import click

from connector import __version__

# name → (module, attribute, short help: the first paragraph of the command's docstring).
COMMANDS: Mapping[str, tuple[str, str, str]] = {
    "check": (
        "connector.cli.check",
        "check",
        "Validate mappings and settings; exit 0 when valid, 2 with every problem listed otherwise.",
    ),
    "consume": (
        "connector.cli.consume",
        "consume",
        "Consume HL7 v2 / FHIR inputs from RabbitMQ and publish charge messages.",
    ),
    "demo": (
        "connector.cli.demo",
        "demo",
        "Replay the bundled sample feeds (or PATHS) and print the charges and uncharged administrations per encounter.",
    ),
    "explain": (
        "connector.cli.explain",
        "explain",
        "Explain feeds (HL7 v2 / FHIR files, archives, directories, -), scenario YAML, or a stored encounter.",
    ),
    "forward": (
        "connector.cli.forward",
        "forward",
        "Send DFT^P03 charge messages to a receiver over MLLP and settle each on its ACK.",
    ),
    "listen": (
        "connector.cli.listen",
        "listen",
        "Receive HL7 v2 over MLLP and HL7 v2 / FHIR over HTTP; publish each input, then acknowledge it.",
    ),
    "live-demo": (
        "connector.cli.live_demo",
        "live_demo",
        "Publish the sample feeds (or PATHS) to RabbitMQ, consume them with ivpush consume, print the charges.",
    ),
    "parked": (
        "connector.cli.parked",
        "parked",
        "List, show, export, requeue (re-drive) and purge parked messages.",
    ),
    "policy": (
        "connector.cli.policy",
        "policy",
        "Load CMS quarterly policy files (MUE, NCCI PTP) into a site's mappings.",
    ),
    "publish": (
        "connector.cli.publish",
        "publish",
        "Publish HL7 v2 / FHIR archives (files, directories, -, .gz) with publisher confirms.",
    ),
    "recode": (
        "connector.cli.recode",
        "recode",
        "Code stored encounters again under the current mappings; emit (or, --dry-run, report) the deltas.",
    ),
    "replay": (
        "connector.cli.replay",
        "replay",
        "Replay archived HL7 v2 / FHIR feeds (files, directories, - for stdin, .gz) and print the charges.",
    ),
    "serve": (
        "connector.cli.serve",
        "serve",
        "Serve the charge review console over a state (read-only unless a credential is configured).",
    ),
    "state": (
        "connector.cli.state",
        "state",
        "Maintain the state store (dedup keys, encounters, outbox).",
    ),
    "synth": (
        "connector.cli.synth",
        "synth",
        "Write a synthetic ED/observation feed for benchmarks and tests (no real patient data).",
    ),
    "topology": (
        "connector.cli.topology",
        "topology",
        "Print the topology as a definitions file, or declare it on the broker.",
    ),
    "unmapped": (
        "connector.cli.unmapped",
        "unmapped",
        "List the local codes (route, method, drug, payer) the mappings lack, from feeds (PATHS) or a --state.",
    ),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use (click's "lazily loading subcommands").

    ``lazy`` maps each command name to its module, the module's attribute holding the command,
    and the command's short help, which the group's ``--help`` lists without importing anything.
    """

    def __init__(self, *args: object, lazy: Mapping[str, tuple[str, str, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command: the loaded ones and those not imported yet, sorted."""
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, its module imported (once) if it was not yet."""
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, attribute, _ = self.lazy[cmd_name]
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{module}.{attribute} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The "Commands" section as click writes it; the short help of a command not imported is from ``lazy``."""
        names = [
            name for name in self.list_commands(ctx) if name not in self.commands or not self.commands[name].hidden
        ]
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, self._short_help(name, limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def _short_help(self, name: str, limit: int) -> str:
        """What click shows for the command: shortened by click itself, from a stand-in when not imported."""
        command = self.commands.get(name) or click.Command(name, help=self.lazy[name][2])
        return command.get_short_help_str(limit)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ivpush")
def cli() -> None:
    """Code IV drug-administration services from medication administration events."""


def main() -> None:
    """Console-script entry point."""
    cli()
