"""``ivpush serve``: the charge review console over a state (web pages; actions with a credential).

Search the stored encounters, open one: its timeline, administrations with their outcomes and
reasons (the texts of ``ivpush explain --state``), lines and emitted messages; the review
queue and, with a configured credential, "mark reviewed"; the parked inputs (on the broker of
the settings' ``amqp`` section) and the consumer's dashboard (its ``[console] metrics_url``)
(``connector/console``, ``docs/console.md``). Exit 2 on usage errors, a state that cannot be
opened, or mappings that do not load.
"""

from __future__ import annotations

from pathlib import Path

import click

from connector.cli.consume import config_option
from connector.cli.options import exit_with_error, load_or_exit, mappings_option, settings_or_exit
from connector.console.app import create_app
from connector.console.dashboard import Scraper
from connector.console.parked_queue import from_settings as parked_queue
from connector.console.reader import StateError, StateSource
from connector.console.security import Credentials
from connector.console.server import BasePathError, base_prefix
from connector.console.server import serve as run_server
from connector.observability.logging import FORMATS as LOG_FORMATS
from connector.observability.logging import configure_logging


@click.command()
@config_option
@click.option(
    "--state",
    help="The state: a SQLite file or a postgresql:// URL [default: the config's state.url]. A URL with a "
    "password belongs in IVPUSH_STATE, not on the command line.",
)
@click.option("--prefix", help="Prefix of the exchanges and queues the parked pages read [default: ivpush].")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port (0: any free one).")
@click.option("--base-path", default="/", show_default=True, help="URL path the console is mounted under.")
@click.option("--threads", type=click.IntRange(1, 64), default=4, show_default=True, help="Requests served at once.")
@click.option("--log-level", help="DEBUG, INFO, WARNING, ERROR or CRITICAL [default: INFO].")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), help="json or text [default: json].")
@mappings_option
def serve(
    config_path: Path | None,
    state: str | None,
    prefix: str | None,
    host: str,
    port: int,
    base_path: str,
    threads: int,
    log_level: str | None,
    log_format: str | None,
    mappings: Path | None,
) -> None:
    """Serve the charge review console over a state (read-only unless a credential is configured)."""
    try:
        base_prefix(base_path)
    except BasePathError as error:
        raise click.UsageError(str(error)) from error
    settings = settings_or_exit(
        config_path,
        {
            "state.url": state,
            "amqp.prefix": prefix,
            "coding.mappings": mappings,
            "logging.level": log_level,
            "logging.format": log_format,
        },
    )
    configure_logging(settings.logging.level, settings.logging.format)
    policy = load_or_exit(settings.coding.mappings)
    credentials = Credentials.from_section(settings.console)
    try:  # writable (one short transaction per review mark) only when a credential enables actions
        source = StateSource(settings.state.spec, writable=credentials.actions)
        source.check()
    except StateError as error:
        exit_with_error(str(error))
    parked, metrics = parked_queue(settings), Scraper(settings.console.metrics_url)
    app = create_app(source, policy, credentials=credentials, parked=parked, metrics=metrics)
    app.config["SESSION_COOKIE_PATH"] = base_prefix(base_path) or "/"  # not sent to other apps of the host
    try:
        say = lambda text: click.echo(text, err=True)  # noqa: E731 - one line, named for the call below
        run_server(app, source, host, port, base_path, threads, credentials.actions, announce=say)
    except OSError as error:  # the port is taken, the address is not ours
        exit_with_error(f"cannot listen on {host}:{port}: {error.strerror or type(error).__name__}")
