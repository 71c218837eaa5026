"""``ivpush replay PATH...``: reprocess archived feeds through the same service code as the consumer."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import BinaryIO, TextIO

import click
from tqdm import tqdm

from connector.adapters.archive import DEFAULT_MAX_BYTES, Record, read_records
from connector.adapters.dispatch import read_record
from connector.adapters.errors import AdapterError
from connector.adapters.sanity import DEFAULT_WINDOW, DEFAULT_WINDOW_TEXT, TimeWindow, parse_window
from connector.bootstrap import FORMATS, StoreOpenError, local_zone, open_store, renderers
from connector.cli.options import load_or_exit, mappings_option
from connector.cli.replay_io import batches, drain, exit_if_missing, open_output
from connector.cli.uncoded import report_uncoded
from connector.model import ClaimType, ParsedRecord
from connector.policy.model import Policy
from connector.service import EmitOn, Outcome, Service, ServiceSettings
from connector.store.base import Store
from connector.store.sqlite import SqliteStore

BATCH = 500
# Replay reads archives that can be read again: a commit only needs to survive a process crash,
# not a power loss, so the SQLite state skips the fsync per commit (WAL + NORMAL never corrupts
# the file). The consumer keeps FULL: it acks inputs after the commit.
REPLAY_SYNCHRONOUS = "NORMAL"


def _keep(record: ParsedRecord, since: datetime | None, until: datetime | None, encounter: str | None) -> ParsedRecord:
    """Apply --since/--until (administration start) and --encounter (visit number or key)."""

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
    return ParsedRecord(record.dedup_key, admins, events)


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
@click.option("--strict", is_flag=True, help="Exit 1 when any record was rejected.")
@click.option("--zone", help="Zone of HL7 times sent without an offset (env IVPUSH_TIMEZONE; default UTC).")
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
    callback=lambda _ctx, _param, text: _window(text),
    help="Accepted input times (HL7 and FHIR), FROM..TO (ISO dates, UTC): others are bad_timestamp rejects.",
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
    strict: bool,
    zone: str | None,
    batch_size: int,
    max_bytes: int,
    time_window: TimeWindow,
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
        since=since.replace(tzinfo=site_zone) if since else None,
        until=until.replace(tzinfo=site_zone) if until else None,
        encounter=encounter,
        diff_against=diff_against,
        zone=site_zone,
        batch_size=batch_size,
        max_bytes=max_bytes,
        window=time_window,
    )
    persistent = state not in (None, ":memory:") and diff_against is None  # see replay_io: append, sync
    try:
        out = open_output(out_path, append=persistent)
        reject_file = rejects_path.open("w", encoding="utf-8") if rejects_path else None
    except OSError as error:  # a directory, a missing directory, permissions: one line, exit 2
        click.echo(f"error: cannot write {error.filename}: {error.strerror or type(error).__name__}", err=True)
        raise SystemExit(2) from error
    try:
        report = run(options, policy, out, reject_file)
    except StoreOpenError as error:
        raise click.ClickException(str(error)) from error
    finally:
        if out is not sys.stdout.buffer:
            out.close()
        if reject_file:
            reject_file.close()
    click.echo(report.summary(), err=True)
    if strict and report.rejects:
        raise SystemExit(1)


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
    zone: tzinfo = UTC
    batch_size: int = BATCH
    max_bytes: int = DEFAULT_MAX_BYTES
    window: TimeWindow = DEFAULT_WINDOW


def _window(text: str) -> TimeWindow:
    try:
        return parse_window(text)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--time-window") from error


@dataclass
class ReplayReport:
    """Counts of a replay (no PHI)."""

    records: int = 0
    totals: Outcome = field(default_factory=Outcome)
    rejects: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        """One line for stderr."""
        totals = self.totals
        lines = ", ".join(f"{key} x{count}" for key, count in sorted(totals.lines.items())) or "none"
        reject_text = ", ".join(f"{code} x{count}" for code, count in sorted(self.rejects.items())) or "none"
        return (
            f"records read: {self.records}; inputs: {totals.inputs} ({totals.duplicates} duplicates); "
            f"administrations: {totals.administrations}; encounter events: {totals.events}; "
            f"rejects: {sum(self.rejects.values())} ({reject_text}); charge messages: {totals.messages}; "
            f"lines: {lines}"
        )


def _open_store(options: ReplayOptions, scratch: Path) -> Store:
    if options.diff_against is not None:
        copy = scratch / "state.db"
        shutil.copyfile(options.diff_against, copy)
        return SqliteStore(copy, synchronous="NORMAL")
    return open_store(options.state or ":memory:")


def run(options: ReplayOptions, policy: Policy, out: BinaryIO, reject_file: TextIO | None = None) -> ReplayReport:
    """Replay archives through the service, writing charge messages to ``out``."""
    report = ReplayReport()
    with tempfile.TemporaryDirectory(prefix="ivpush-replay-") as scratch:
        store = _open_store(options, Path(scratch))
        if isinstance(store, SqliteStore):
            store.set_synchronous(REPLAY_SYNCHRONOUS)
        settings = ServiceSettings(renderers([options.fmt]), options.emit_on, options.claim_type, options.payer)
        service = Service(store, policy, settings, clock=time.time)
        drain(store, out)  # what an interrupted run left unsent goes out first
        tqdm.monitor_interval = 0  # no monitor thread: Ctrl-C must reach the main thread, even blocked in a read
        progress = tqdm(unit=" records", disable=not sys.stderr.isatty(), file=sys.stderr)
        try:
            for batch in batches(read_records(options.paths, options.max_bytes), options.batch_size):
                inputs: list[tuple[Record, list[ParsedRecord]]] = []
                for record in batch:
                    report.records += 1
                    try:
                        found = read_record(record, policy, options.zone, options.max_bytes, window=options.window)
                    except AdapterError as error:
                        _reject(report, reject_file, record, record.position, error)
                        continue
                    for part in found.rejects:  # a Bundle entry rejected on its own: the rest is kept
                        _reject(report, reject_file, record, f"{record.position}#{part.part}", part.error)
                    kept = [_keep(i, options.since, options.until, options.encounter) for i in found.records]
                    inputs.append((record, kept))
                outcome = service.handle_inputs([parsed for _, parsed in inputs])
                _add(report.totals, report_uncoded(outcome, [r for r, _ in inputs], report.rejects, reject_file))
                drain(store, out)
                progress.update(len(batch))
            if options.close_at_end:
                _add(report.totals, report_uncoded(service.close(), [], report.rejects, reject_file))
                drain(store, out)
        finally:
            progress.close()
            store.close()
    return report


def _reject(
    report: ReplayReport, reject_file: TextIO | None, record: Record, position: str, error: AdapterError
) -> None:
    """Count a reject and write its line (source, position, code, detail) to the rejects file."""
    report.rejects[error.code] += 1
    if reject_file:
        entry = {"source": record.source, "position": position, "code": error.code, "detail": error.detail}
        reject_file.write(json.dumps(entry) + "\n")


def _add(total: Outcome, part: Outcome) -> None:
    total.inputs += part.inputs
    total.duplicates += part.duplicates
    total.administrations += part.administrations
    total.events += part.events
    total.messages += part.messages
    for key, count in part.lines.items():
        total.lines[key] = total.lines.get(key, 0) + count
