"""``ivpush unmapped``: the local codes the mappings lack, with counts and a sample source, ready to map.

Reads the stored outcomes of a state (``--state``), or of feeds coded in memory as replay codes
them (PATHS), and lists every route, method, drug or payer identifier an administration's
outcome names as not in the mappings (``AdministrationOutcome.unmapped``): how many
administrations carry it, the field it was read from, and one sample source (file and
position, or message/resource id). Codes and identifiers as sent are site dictionary values,
never patient data. ``--format yaml`` prints them as entries of a site's mapping files
(``unmapped_yaml``), with placeholders for what the site must decide.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import click

from connector.bootstrap import POSTGRES_SCHEMES, StoreOpenError, open_store, store_label
from connector.cli.feeds import FeedSettings, code_feeds, feed_options, replay_options
from connector.cli.local_codes import LocalCode, table, tally
from connector.cli.options import exit_with_error, load_or_exit, mappings_option
from connector.cli.replay_io import exit_if_missing
from connector.cli.unmapped_yaml import yaml_text
from connector.store.base import Store


@click.command()
@click.argument("paths", nargs=-1)
@click.option("--state", help="Read the stored outcomes of this state (SQLite file or postgresql:// URL).")
@click.option("--format", "fmt", type=click.Choice(["text", "yaml"]), default="text", show_default=True)
@feed_options
@mappings_option
def unmapped(
    paths: tuple[str, ...],
    state: str | None,
    fmt: str,
    feed: FeedSettings,
    mappings: Path | None,
) -> None:
    """List the local codes (route, method, drug, payer) the mappings lack, from feeds (PATHS) or a --state."""
    if bool(paths) == bool(state):
        raise click.UsageError("give PATHS (feeds, coded in memory) or --state S, one of the two")
    policy = load_or_exit(mappings)
    if state is not None:
        codes = _from_state(state)
    else:
        exit_if_missing(paths)
        coded = code_feeds(replay_options(paths, feed, policy, None), policy)
        with coded.store.transaction() as tx:
            codes = tally(outcome for _, outcome in tx.scan_outcomes())
    click.echo(yaml_text(codes, sorted(policy.payers)) if fmt == "yaml" else table(codes))


def _from_state(spec: str) -> list[LocalCode]:
    label = store_label(spec)
    if not spec.startswith(POSTGRES_SCHEMES) and spec != ":memory:" and not Path(spec).is_file():
        exit_with_error(f"no such state file: {spec}")
    try:
        store = open_store(spec)
    except StoreOpenError as error:
        exit_with_error(str(error))
    try:
        return _read(store)
    except (sqlite3.Error, OSError, RuntimeError) as error:  # not a state file, a server gone, a newer schema
        exit_with_error(f"cannot read the state {label}: {type(error).__name__}: {error}")
    finally:
        store.close()


def _read(store: Store) -> list[LocalCode]:
    with store.transaction() as tx:
        return tally(outcome for _, outcome in tx.scan_outcomes())
