"""Feeds coded in memory for ``ivpush explain`` and ``ivpush unmapped``: replay's own run, then read back.

Both commands take what ``ivpush replay`` takes (HL7 v2 and FHIR files, archives, directories,
``-`` for standard input) and code it exactly as a replay does (``replay.run`` into a
throwaway in-memory state, every encounter closed at the end), then read from that state what
became of every administration; every record that was not coded is a reject line.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from connector.adapters.archive import DEFAULT_MAX_BYTES
from connector.adapters.sanity import DEFAULT_WINDOW_TEXT, TimeWindow
from connector.bootstrap import local_zone
from connector.cli.replay import run
from connector.cli.replay_options import ReplayOptions, time_window
from connector.cli.replay_report import ReplayReport
from connector.model import ClaimType
from connector.policy.model import Policy
from connector.store.base import Transaction
from connector.store.memory import MemoryStore

_FEED_OPTIONS = (
    click.option(
        "--zone", help="Facility zone every time is dated in (env IVPUSH_TIMEZONE; unset: sent offsets decide)."
    ),
    click.option(
        "--claim-type", type=click.Choice([c.value for c in ClaimType]), default="facility", show_default=True
    ),
    click.option(
        "--policy", "payer", default="default", show_default=True, help="Payer policy when the feed names none."
    ),
    click.option("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, show_default=True, help="Reject larger records."),
    click.option(
        "--time-window",
        default=DEFAULT_WINDOW_TEXT,
        show_default=True,
        callback=time_window,
        help="Accepted input times, FROM..TO (ISO dates, UTC): others are bad_timestamp rejects.",
    ),
)


@dataclass(frozen=True)
class FeedSettings:
    """The feed options as given (``feed_options``)."""

    zone: str | None
    claim_type: str
    payer: str
    max_bytes: int
    window: TimeWindow


def feed_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--zone``, ``--claim-type``, ``--policy``, ``--max-bytes`` and ``--time-window``, as replay reads them.

    The command receives them as one ``feed: FeedSettings`` argument.
    """

    @functools.wraps(command)
    def with_feed(
        *args: Any,
        zone: str | None,
        claim_type: str,
        payer: str,
        max_bytes: int,
        time_window: TimeWindow,
        **kwargs: Any,
    ) -> Any:
        return command(*args, feed=FeedSettings(zone, claim_type, payer, max_bytes, time_window), **kwargs)

    wrapped: Callable[..., Any] = with_feed
    for option in reversed(_FEED_OPTIONS):
        wrapped = option(wrapped)
    return wrapped


def replay_options(paths: tuple[str, ...], feed: FeedSettings, policy: Policy, encounter: str | None) -> ReplayOptions:
    """The replay options for ``paths`` (usage errors for an unknown zone or payer policy, as replay's)."""
    try:
        zone = local_zone(feed.zone)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--zone") from error
    if feed.payer.lower() not in policy.payers:
        raise click.BadParameter(f"unknown payer policy '{feed.payer}' (known: {', '.join(sorted(policy.payers))})")
    return ReplayOptions(
        paths=paths,
        claim_type=ClaimType(feed.claim_type),
        payer=feed.payer.lower(),
        encounter=encounter,
        zone=zone,
        max_bytes=feed.max_bytes,
        window=feed.window,
    )


@dataclass(frozen=True)
class Coded:
    """Feeds coded in memory.

    Attributes:
        store: The state they were coded into (closed encounters, outcomes, history).
        report: The replay's counts.
        rejects: One dict per reject line (``source``, ``position``, ``code``, ``detail``; or
            ``encounter``, ``code``, ``detail`` for an encounter that could not be closed).
    """

    store: MemoryStore
    report: ReplayReport
    rejects: list[dict[str, Any]]


def code_feeds(options: ReplayOptions, policy: Policy) -> Coded:
    """Replay ``options.paths`` into a new in-memory state, closing every encounter at the end."""
    store = MemoryStore()
    reject_lines = io.StringIO()
    report = run(options, policy, io.BytesIO(), reject_lines, store=store)
    rejects = [json.loads(line) for line in reject_lines.getvalue().splitlines() if line.strip()]
    return Coded(store, report, rejects)


def encounter_keys(tx: Transaction) -> list[str]:
    """Keys of the encounters with stored outcomes or still open, sorted."""
    keys = {key for key, _ in tx.scan_outcomes()}
    keys.update(tx.open_encounters())
    return sorted(keys)


def is_scenario(path: str) -> bool:
    """Whether a path names a scenario YAML file (``.yaml``/``.yml``) rather than a feed."""
    return path.lower().endswith((".yaml", ".yml")) and Path(path).is_file()
