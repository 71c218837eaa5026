"""``ivpush replay PATH...``: reprocess archived feeds through the same service code as the consumer.

The adapters (fhir.resources), the service, the stores and tqdm are imported when a replay runs:
``ivpush replay --help`` imports none of them (tests/unit/test_startup.py).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

import click

from connector.adapters.archive import DEFAULT_MAX_BYTES, read_records
from connector.adapters.sanity import DEFAULT_WINDOW_TEXT, TimeWindow
from connector.bootstrap import (
    FORMATS,
    POSTGRES_SCHEMES,
    StoreOpenError,
    identity_key,
    local_zone,
    open_store,
    renderers,
)
from connector.cli.options import load_or_exit, mappings_option
from connector.cli.replay_batch import close_all, code_batch, load_adapters
from connector.cli.replay_io import batches, drain, exit_if_missing, open_output
from connector.cli.replay_options import BATCH, ReplayOptions, fresh, time_window
from connector.cli.replay_report import ReplayReport, outcome_summary
from connector.cli.replay_settings import (
    CodingSettings,
    SettingsChanged,
    check,
    mappings_digest,
    remember,
    site_mappings,
)
from connector.model import ClaimType, EmitOn

if TYPE_CHECKING:
    from connector.policy.model import Policy
    from connector.store.base import Store

__all__ = ["ReplayOptions", "ReplayReport", "outcome_summary", "replay", "run"]

# Replay reads archives that can be read again: a commit only needs to survive a process crash,
# not a power loss, so the SQLite state skips the fsync per commit (WAL + NORMAL never corrupts
# the file). The consumer keeps FULL: it acks inputs after the commit.
REPLAY_SYNCHRONOUS = "NORMAL"


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--out", "out_path", default="-", show_default=True, help="Output file, or - for stdout.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="json", show_default=True)
@click.option("--claim-type", type=click.Choice([c.value for c in ClaimType]), default="facility", show_default=True)
@click.option("--policy", "payer", default="default", show_default=True, help="Payer policy when the feed names none.")
@click.option(
    "--state",
    help="State store: a SQLite file or a postgresql:// URL (default: throwaway, in memory). Keep a "
    "password out of the URL (PGPASSWORD or ~/.pgpass): the command line is visible to ps.",
)
@click.option(
    "--emit-on",
    type=click.Choice([e.value for e in EmitOn]),
    default="close",
    show_default=True,
    help="Emit at encounter close (discharge/finish, end of input) or after every change.",
)
@click.option("--no-close", is_flag=True, help="Leave encounters open at the end of input (emit nothing for them).")
@click.option("--since", type=click.DateTime(), help="Only administrations starting at or after (zone: --zone).")
@click.option("--until", type=click.DateTime(), help="Only administrations starting before (zone: --zone).")
@click.option("--encounter", help="Only this encounter (visit number or full key).")
@click.option(
    "--rejects", "rejects_path", type=click.Path(dir_okay=False, path_type=Path), help="Write rejects (NDJSON)."
)
@click.option(
    "--diff-against",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Dry run against a copy of this state: print only the deltas a replay would emit.",
)
@click.option(
    "--recode",
    is_flag=True,
    help="Code a --state/--diff-against state recorded under other settings (zone, claim type, policy, "
    "mappings) under this run's; without it such a run exits 2 naming the difference.",
)
@click.option("--strict", is_flag=True, help="Exit 1 when any record was rejected.")
@click.option(
    "--zone",
    help="Facility zone every time is dated in (env IVPUSH_TIMEZONE). Unset: a sent offset decides the date "
    "and local times are read as UTC.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=BATCH,
    show_default=True,
    help="Records per state transaction (larger: faster; emission granularity with --emit-on change).",
)
@click.option("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, show_default=True, help="Reject larger records.")
@click.option(
    "--time-window",
    default=DEFAULT_WINDOW_TEXT,
    show_default=True,
    callback=time_window,
    help="Accepted input times (HL7 and FHIR), FROM..TO (ISO dates, UTC): others are bad_timestamp rejects.",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes, each coding its own encounters (output: the same messages, grouped by worker). "
    "An existing SQLite state, --diff-against and stdin run in one.",
)
@mappings_option
def replay(
    paths: tuple[str, ...],
    out_path: str,
    fmt: str,
    claim_type: str,
    payer: str,
    state: str | None,
    emit_on: str,
    no_close: bool,
    since: datetime | None,
    until: datetime | None,
    encounter: str | None,
    rejects_path: Path | None,
    diff_against: Path | None,
    recode: bool,
    strict: bool,
    zone: str | None,
    batch_size: int,
    max_bytes: int,
    time_window: TimeWindow,
    jobs: int,
    mappings: Path | None,
) -> None:
    """Replay archived HL7 v2 / FHIR feeds (files, directories, - for stdin, .gz) and print the charges."""
    exit_if_missing(paths)
    policy = load_or_exit(mappings)
    try:
        site_zone = local_zone(zone)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--zone") from error
    if payer.lower() not in policy.payers:
        raise click.BadParameter(f"unknown payer policy '{payer}' (known: {', '.join(sorted(policy.payers))})")
    options = ReplayOptions(
        paths=paths,
        fmt=fmt,
        claim_type=ClaimType(claim_type),
        payer=payer.lower(),
        state=state,
        emit_on=EmitOn(emit_on),
        close_at_end=not no_close,
        since=since.replace(tzinfo=site_zone or UTC) if since else None,
        until=until.replace(tzinfo=site_zone or UTC) if until else None,
        encounter=encounter,
        diff_against=diff_against,
        zone=site_zone,
        batch_size=batch_size,
        max_bytes=max_bytes,
        window=time_window,
        jobs=jobs,
    )
    settings = CodingSettings(str(site_zone), claim_type, payer.lower(), mappings_digest(site_mappings(mappings)))
    persistent = state not in (None, ":memory:") and diff_against is None  # see replay_io: append, sync
    is_fresh = fresh(options)
    from connector.cli.replay_jobs import plan  # multiprocessing: imported when a replay runs

    workers, why = plan(options, is_fresh)
    if why:
        click.echo(f"note: {why}", err=True)
    options = replace(options, jobs=workers)
    with tempfile.TemporaryDirectory(prefix="ivpush-replay-") as scratch:
        try:
            store = _open_store(options, Path(scratch))
        except StoreOpenError as error:
            raise click.ClickException(str(error)) from error
        new_state_file = options.jobs > 1 and is_fresh and _is_sqlite_file(options.state)
        failed = True
        try:
            guard = (settings, recode, is_fresh)
            report = _run_checked(options, policy, store, guard, out_path, persistent, rejects_path)
            failed = False
        finally:
            store.close()
            if failed and new_state_file and options.state:
                _discard(Path(options.state))  # a --jobs run into a new state leaves none when it fails
    click.echo(report.summary(), err=True)
    if strict and report.rejects:
        raise SystemExit(1)


def _run_checked(
    options: ReplayOptions,
    policy: Policy,
    store: Store,
    guard: tuple[CodingSettings, bool, bool],
    out_path: str,
    persistent: bool,
    rejects_path: Path | None,
) -> ReplayReport:
    """Refuse a state coded under other settings, open the outputs, replay, record the settings.

    ``guard``: this run's settings, ``--recode``, and whether the state is new.
    """
    settings, recode, is_fresh = guard
    try:
        note = check(store, settings, recode, is_fresh)
    except SettingsChanged as error:  # before any output is opened: nothing is truncated or written
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from error
    try:
        out = open_output(out_path, append=persistent)
        reject_file = rejects_path.open("w", encoding="utf-8") if rejects_path else None
    except OSError as error:  # a directory, a missing directory, permissions: one line, exit 2
        click.echo(f"error: cannot write {error.filename}: {error.strerror or type(error).__name__}", err=True)
        raise SystemExit(2) from error
    try:
        report = run(options, policy, out, reject_file, store=store)
    finally:
        if out is not sys.stdout.buffer:
            out.close()
        if reject_file:
            reject_file.close()
    if options.diff_against is None:  # recorded once the run is through: an interrupted recode asks again
        remember(store, settings)
    if note:
        report.notes.append(note)
    return report


def _open_store(options: ReplayOptions, scratch: Path) -> Store:
    """The state a replay codes into: ``--diff-against`` a copy in ``scratch``, else ``--state`` or memory.

    Raises:
        StoreOpenError: The state cannot be opened.
    """
    from connector.store.sqlite import SqliteStore

    if options.diff_against is not None:
        copy = scratch / "state.db"
        shutil.copyfile(options.diff_against, copy)
        return SqliteStore(copy, synchronous="NORMAL")
    store = open_store(options.state or ":memory:")
    if isinstance(store, SqliteStore):
        store.set_synchronous(REPLAY_SYNCHRONOUS)
    return store


def run(
    options: ReplayOptions,
    policy: Policy,
    out: BinaryIO,
    reject_file: TextIO | None = None,
    store: Store | None = None,
) -> ReplayReport:
    """Replay archives through the service, writing charge messages to ``out``.

    Args:
        options: What to replay and how.
        policy: The mappings.
        out: Where the charge messages go.
        reject_file: Where reject lines go (NDJSON), if anywhere.
        store: The state to code into, left open (``explain`` reads it afterwards); None: the
            one ``options`` names, closed at the end.

    Raises:
        StoreOpenError: ``store`` is None and the state cannot be opened.
    """
    if store is not None:
        return _replay(options, policy, out, reject_file, store)
    with tempfile.TemporaryDirectory(prefix="ivpush-replay-") as scratch:
        own = _open_store(options, Path(scratch))
        try:
            return _replay(options, policy, out, reject_file, own)
        finally:
            own.close()


def _replay(
    options: ReplayOptions, policy: Policy, out: BinaryIO, reject_file: TextIO | None, store: Store
) -> ReplayReport:
    from tqdm import tqdm

    from connector.service import Service, ServiceSettings

    if options.jobs > 1:
        from connector.cli.replay_jobs import run_jobs

        return run_jobs(options, policy, out, reject_file, store)
    load_adapters()
    report = ReplayReport()
    settings = ServiceSettings(
        renderers([options.fmt]), options.emit_on, options.claim_type, options.payer, identity_key()
    )
    service = Service(store, policy, settings, clock=time.time)
    drain(store, out)  # what an interrupted run left unsent goes out first
    tqdm.monitor_interval = 0  # no monitor thread: Ctrl-C must reach the main thread, even blocked in a read
    progress = tqdm(unit=" records", disable=not sys.stderr.isatty(), file=sys.stderr)
    try:
        for batch in batches(read_records(options.paths, options.max_bytes), options.batch_size):
            code_batch(batch, service, options, policy, report, reject_file)
            drain(store, out)
            progress.update(len(batch))
        if options.close_at_end:
            close_all(service, report, reject_file)
            drain(store, out)
    finally:
        progress.close()
    return report


def _is_sqlite_file(state: str | None) -> bool:
    """Whether the state is a SQLite file (not PostgreSQL, not in memory)."""
    return bool(state) and state != ":memory:" and not str(state).startswith(POSTGRES_SCHEMES)


def _discard(path: Path) -> None:
    """Remove a SQLite state file and its journal files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
