"""``ivpush state purge``: delete old dedup keys and sent outbox rows from the state store.

The same purge the consumer runs every ``retention.purge_seconds`` when ``retention.state_days``
is set (``connector.bus.retention``), by hand or from cron, on SQLite or PostgreSQL. Pending
outbox rows and encounters are never deleted. A dedup key purged lets its input be applied again
if it ever comes back, so keep keys longer than anything can be redelivered, resent by an engine
or requeued from the parking queue. Exit 2: no age (neither ``--older-than`` nor
``retention.state_days``) or a store that cannot be opened.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import click

from connector.bootstrap import StoreOpenError, open_store, store_label
from connector.cli.consume import config_option
from connector.cli.options import settings_or_exit
from connector.cli.parked_options import age_seconds
from connector.observability.logging import configure_logging

LOG = logging.getLogger("ivpush.state")


@click.group()
def state() -> None:
    """Maintain the state store (dedup keys, encounters, outbox)."""


@state.command("purge")
@config_option
@click.option(
    "--state",
    "state_url",
    help="State store: SQLite file or postgresql:// URL (a URL with a password: IVPUSH_STATE instead).",
)
@click.option("--older-than", help="Delete what is older than this age (30d, 12w) [default: retention.state_days].")
def purge_state(config_path: Path | None, state_url: str | None, older_than: str | None) -> None:
    """Delete dedup keys first seen, and outbox rows confirmed, longer ago than the age given."""
    settings = settings_or_exit(config_path, {"state.url": state_url})
    configure_logging(settings.logging.level, settings.logging.format)
    keep = age_seconds(older_than) if older_than else settings.retention.keep_seconds
    if keep is None:
        click.echo("error: give --older-than or set retention.state_days", err=True)
        raise SystemExit(2)
    spec = settings.state.spec
    try:
        store = open_store(spec)
    except StoreOpenError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from error
    try:
        found = store.purge(time.time() - keep)
    except (OSError, sqlite3.Error) as error:  # the store went away: its driver's text may quote values
        click.echo(f"error: purging {store_label(spec)} failed ({error.__class__.__name__})", err=True)
        raise SystemExit(1) from error
    finally:
        store.close()
    LOG.info(
        "state purge of %s: %d dedup keys and %d sent outbox rows older than %.1f days deleted",
        store_label(spec), found.dedup_keys, found.outbox_rows, keep / 86400,
        extra={"dedup_keys": found.dedup_keys, "outbox_rows": found.outbox_rows},
    )  # fmt: skip
    click.echo(
        f"deleted {found.dedup_keys} dedup keys and {found.outbox_rows} sent outbox rows older than "
        f"{keep / 86400:g} days from {store_label(spec)}",
        err=True,
    )
