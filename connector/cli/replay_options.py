"""What a replay reads and how: its parsed options, the record filter, and option parsers shared by commands."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from pathlib import Path

import click

from connector.adapters.archive import DEFAULT_MAX_BYTES
from connector.adapters.sanity import DEFAULT_WINDOW, TimeWindow, parse_window
from connector.bootstrap import POSTGRES_SCHEMES
from connector.model import ClaimType, EmitOn, ParsedRecord

BATCH = 500


@dataclass(frozen=True)
class ReplayOptions:
    """What to replay and how (the command's options, parsed)."""

    paths: tuple[str, ...]
    fmt: str = "json"
    claim_type: ClaimType = ClaimType.FACILITY
    payer: str = "default"
    state: str | None = None
    emit_on: EmitOn = EmitOn.CLOSE
    close_at_end: bool = True
    since: datetime | None = None
    until: datetime | None = None
    encounter: str | None = None
    diff_against: Path | None = None
    zone: tzinfo | None = None  # None: unknown, sent offsets decide the date (coding-rules §6)
    batch_size: int = BATCH
    max_bytes: int = DEFAULT_MAX_BYTES
    window: TimeWindow = DEFAULT_WINDOW
    jobs: int = 1  # worker processes (connector.cli.replay_jobs)


def keep(record: ParsedRecord, since: datetime | None, until: datetime | None, encounter: str | None) -> ParsedRecord:
    """Apply --since/--until (administration start) and --encounter (visit number or key).

    What the record says besides its administrations and events (identity hints, placer order
    ids, a visit window) is kept: the service resolves identities from it.
    """
    if since is None and until is None and encounter is None:
        return record  # nothing to filter (most replays): the record as read

    def wanted_key(key: str) -> bool:
        return encounter is None or encounter in (key, key.rpartition("|")[2])

    admins = tuple(
        a
        for a in record.administrations
        if wanted_key(a.encounter_key)
        and (since is None or a.start.timestamp() >= since.timestamp())
        and (until is None or a.start.timestamp() < until.timestamp())
    )
    events = tuple(e for e in record.encounter_events if wanted_key(e.encounter.key))
    return replace(record, administrations=admins, encounter_events=events)


def fresh(options: ReplayOptions) -> bool:
    """Whether the state starts empty (in memory, or a SQLite file not there yet): no settings record to miss."""
    if options.diff_against is not None:
        return False
    spec = options.state or ":memory:"
    if spec == ":memory:":
        return True
    if spec.startswith(POSTGRES_SCHEMES):
        return False
    return not os.path.exists(spec) or os.path.getsize(spec) == 0


def time_window(_ctx: click.Context | None, _param: click.Parameter | None, text: str) -> TimeWindow:
    """Click callback: ``--time-window FROM..TO`` parsed, or a usage error."""
    try:
        return parse_window(text)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--time-window") from error
