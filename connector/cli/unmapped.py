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
from typing import NoReturn

import click

from connector.adapters.sanity import TimeWindow
from connector.bootstrap import POSTGRES_SCHEMES, StoreOpenError, open_store, store_label
from connector.cli.feeds import FeedSettings, code_feeds, feed_options, replay_options
from connector.cli.local_codes import LocalCode, table, tally
from connector.cli.options import load_or_exit, mappings_option
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
    zone: str | None,
    claim_type: str,
    payer: str,
    max_bytes: int,
    time_window: TimeWindow,
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
        options = replay_options(paths, FeedSettings(zone, claim_type, payer, max_bytes, time_window), policy, None)
        coded = code_feeds(options, policy)
        with coded.store.transaction() as tx:
            codes = tally(outcome for _, outcome in tx.scan_outcomes())
    click.echo(yaml_text(codes, sorted(policy.payers)) if fmt == "yaml" else table(codes))


def _from_state(spec: str) -> list[LocalCode]:
    label = store_label(spec)
    if not spec.startswith(POSTGRES_SCHEMES) and spec != ":memory:" and not Path(spec).is_file():
        _fail(f"no such state file: {spec}")
    try:
        store = open_store(spec)
    except StoreOpenError as error:
        _fail(str(error))
    try:
        return _read(store)
    except (sqlite3.Error, OSError, RuntimeError) as error:  # not a state file, a server gone, a newer schema
        _fail(f"cannot read the state {label}: {type(error).__name__}: {error}")
    finally:
        store.close()


def _read(store: Store) -> list[LocalCode]:
    with store.transaction() as tx:
        return tally(outcome for _, outcome in tx.scan_outcomes())


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {' '.join(message.split())}", err=True)  # one line, whatever a driver said
    raise SystemExit(2)
