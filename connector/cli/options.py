"""Options shared by several commands.

Imported by most commands when their module is, so it imports the settings model (pydantic), the
policy loader and the metrics server (prometheus_client) only in the functions that use them:
``ivpush <command> --help`` pays for none of them (issue #15).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from connector.bootstrap import policy_from_settings
from connector.observability.logging import FORMATS as LOG_FORMATS

if TYPE_CHECKING:
    from connector.config import Settings
    from connector.observability.metrics import Metrics
    from connector.observability.server import ObservabilityServer, Readiness
    from connector.policy.model import Policy

mappings_option: Callable[[Any], Any] = click.option(
    "--mappings",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Site mappings directory overlaying the shipped defaults (env IVPUSH_MAPPINGS).",
)

_OBSERVABILITY_OPTIONS = (
    click.option("--log-level", help="DEBUG, INFO, WARNING, ERROR or CRITICAL [default: INFO]."),
    click.option("--log-format", type=click.Choice(LOG_FORMATS), help="json or text [default: json]."),
    click.option("--metrics-port", type=click.IntRange(0, 65535), help="/metrics, /healthz, /readyz port (0: off)."),
    click.option("--metrics-host", help="Address the metrics endpoint binds [default: 127.0.0.1]."),
)
# What the options of ``observability_options`` set (command-line option → settings key).
OBSERVABILITY_KEYS = {
    "log_level": "logging.level",
    "log_format": "logging.format",
    "metrics_port": "metrics.port",
    "metrics_host": "metrics.host",
}


def observability_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--log-level``, ``--log-format``, ``--metrics-port`` and ``--metrics-host``, in that order."""
    for option in reversed(_OBSERVABILITY_OPTIONS):
        command = option(command)
    return command


def load_or_exit(mappings: Path | None) -> Policy:
    """Load the policy or exit 2 with every mapping problem listed."""
    from connector.policy.yamlfile import MappingError

    try:
        return policy_from_settings(mappings)
    except MappingError as error:
        for problem in error.problems:
            click.echo(f"mapping error: {problem}", err=True)
        raise SystemExit(2) from error


def exit_with_error(message: str) -> NoReturn:
    """Say ``error: message`` on one line (whatever a driver said, over lines) and exit 2."""
    click.echo(f"error: {' '.join(message.split())}", err=True)
    raise SystemExit(2)


def settings_or_exit(config_path: Path | None, overrides: dict[str, object]) -> Settings:
    """The effective settings (command line > env > secret files > TOML > defaults), or exit 2."""
    from connector.config import SettingsError
    from connector.config import load as load_config

    try:
        return load_config(config_path, overrides)
    except SettingsError as error:
        for problem in error.problems:
            click.echo(f"error: {problem}", err=True)
        raise SystemExit(2) from error


def metrics_server_or_exit(metrics: Metrics, settings: Settings, ready: Readiness) -> ObservabilityServer | None:
    """The started /metrics, /healthz, /readyz endpoint (None when ``metrics.port`` is 0), or exit 2 saying why."""
    if not settings.metrics.port:
        return None
    from connector.observability.server import ObservabilityError, ObservabilityServer

    try:
        return ObservabilityServer(metrics, settings.metrics.host, settings.metrics.port, ready=ready).start()
    except ObservabilityError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from error
