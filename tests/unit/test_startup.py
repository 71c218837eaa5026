"""Start-up (issue #15, target 3): what ``ivpush`` imports before a command runs, not how long it takes.

``ivpush --version``, ``ivpush --help`` and ``ivpush replay --help`` import none of the heavy
libraries measured with ``python -X importtime`` (fhir.resources with pydantic, ~0.5 s; the
settings model's pydantic-settings; pika; prometheus_client; structlog with rich; tqdm; PyYAML;
psycopg) nor the connector modules that pull them in (the adapters' dispatch, the service and
the rules, the stores, the settings model, the policy loader). The commands import them when
they run. The time itself is reported by ``make bench`` (``benchmarks/startup_bench.py``), never
asserted.

Every other ``ivpush <command> --help`` (subcommands included) imports none of the heaviest
(:data:`HEAVIEST`); some import PyYAML, sqlite3 or orjson (a few ms each), which their modules use
at their top.

``ivpush replay --help`` does import the domain model (``connector.model``: ``--claim-type`` and
``--emit-on`` list its enums' values), ``connector.adapters.archive`` and ``.sanity`` (the
defaults of ``--max-bytes`` and ``--time-window``): stdlib and ~25 ms, kept rather than copying
the values into the command.
"""

import json
import subprocess
import sys

import click
import pytest

from connector.cli.main import COMMANDS, LazyGroup, cli

HEAVIEST = (
    "fhir",
    "fhir_core",
    "pydantic",
    "pydantic_core",
    "pydantic_settings",
    "pika",
    "psycopg",
    "prometheus_client",
    "structlog",
    "rich",
    "tqdm",
    "hl7apy",
)

HEAVY = (
    *HEAVIEST,
    "yaml",
    "orjson",
    "sqlite3",
    "connector.adapters.dispatch",
    "connector.adapters.fhir",
    "connector.adapters.hl7v2",
    "connector.bus",
    "connector.config",
    "connector.emitters",
    "connector.policy.loader",
    "connector.rules",
    "connector.service",
    "connector.store",
)

PROBE = """
import json, sys
from connector.cli.main import cli
args = json.loads(sys.argv[1])
if args is not None:
    try:
        cli.main(args=args, prog_name="ivpush")
    except SystemExit as done:
        assert done.code in (0, None), done.code
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def loaded_after(args: list[str] | None) -> list[str]:
    """The modules a fresh interpreter holds after importing the CLI and, unless None, running ``args``."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True, check=True, timeout=120
    )
    return list(json.loads(done.stderr.strip().splitlines()[-1]))


def heavy_in(modules: list[str], heavy: tuple[str, ...] = HEAVY) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in heavy)]


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and subcommand of ``group``, as the words that name it (importing them all here)."""
    found: list[tuple[str, ...]] = []
    for name in group.list_commands(click.Context(group)):
        command = group.get_command(click.Context(group), name)
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += command_paths(command, (*prefix, name))
    return found


@pytest.mark.parametrize("args", [None, ["--version"], ["--help"], ["replay", "--help"]], ids=str)
def test_start_up_imports_no_heavy_library(args: list[str] | None) -> None:
    assert heavy_in(loaded_after(args)) == []


@pytest.mark.parametrize("args", [None, ["--version"], ["--help"]], ids=str)
def test_the_group_alone_imports_no_command(args: list[str] | None) -> None:
    modules = loaded_after(args)
    assert [m for m in modules if m.startswith("connector")] == ["connector", "connector.cli", "connector.cli.main"]


@pytest.mark.parametrize("path", command_paths(LazyGroup("ivpush", lazy=COMMANDS)), ids=" ".join)
def test_every_command_help_imports_none_of_the_heaviest(path: tuple[str, ...]) -> None:
    assert heavy_in(loaded_after([*path, "--help"]), HEAVIEST) == []


def test_replay_help_imports_replay_and_no_other_command() -> None:
    commands = {m for m in loaded_after(["replay", "--help"]) if m in {module for module, _, _ in COMMANDS.values()}}
    assert commands == {"connector.cli.replay"}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_listed_command_is_its_module_attribute_with_the_listed_help(name: str) -> None:
    module, attribute, short = COMMANDS[name]
    command = getattr(__import__(module, fromlist=[attribute]), attribute)
    assert isinstance(command, click.Command)
    assert command.name == name
    assert not command.hidden and not command.deprecated and command.short_help is None
    assert (command.help or "").partition("\n\n")[0] == short


@pytest.mark.parametrize("width", [50, 80, 200])
def test_the_group_help_lists_the_commands_as_click_would_with_them_imported(width: int) -> None:
    lazy = LazyGroup("ivpush", lazy=COMMANDS)
    eager = click.Group("ivpush", commands={name: cli.get_command(click.Context(cli), name) for name in COMMANDS})

    def commands_section(group: click.Group) -> str:
        formatter = click.HelpFormatter(width=width)
        group.format_commands(click.Context(group), formatter)
        return formatter.getvalue()

    assert commands_section(lazy) == commands_section(eager)
    assert lazy.commands == {}  # listed without importing any


def test_the_record_dispatch_imports_the_fhir_adapter_only_for_a_fhir_record() -> None:
    """An HL7-only replay or consumer does not pay for fhir.resources (~0.5 s) at start."""
    probe = (
        "import json, sys\n"
        "from connector.adapters.dispatch import read_record\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "connector.adapters.hl7v2" in loaded
    assert not loaded & {"connector.adapters.fhir", "fhir", "fhir_core", "pydantic"}
