"""``ivpush replay PATH...``: reprocess archived feeds through the same service code as the consumer."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from itertools import islice
from pathlib import Path
from typing import BinaryIO, TextIO

import click
from tqdm import tqdm

from connector.adapters.archive import DEFAULT_MAX_BYTES, Record, read_records
from connector.adapters.dispatch import parse_record
from connector.adapters.errors import AdapterError
from connector.bootstrap import FORMATS, StoreOpenError, local_zone, open_store, renderers
from connector.cli.options import load_or_exit, mappings_option
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


def _batches(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    while batch := list(islice(records, size)):
        yield batch


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


def _drain(store: Store, out: BinaryIO) -> int:
    written = 0
    while rows := store.pending(1000):
        for row in rows:
            out.write(row.body if row.body.endswith(b"\n") else row.body + b"\n")
        store.mark_sent((row.message_id, row.format) for row in rows)
        written += len(rows)
    out.flush()
    return written


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
    mappings: Path | None,
) -> None:
    """Replay archived HL7 v2 / FHIR feeds (files, directories, - for stdin, .gz) and print the charges."""
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
    )
    out = sys.stdout.buffer if out_path == "-" else open(out_path, "wb")  # noqa: SIM115 - closed below
    reject_file = rejects_path.open("w", encoding="utf-8") if rejects_path else None
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
        progress = tqdm(unit=" records", disable=not sys.stderr.isatty(), file=sys.stderr)
        try:
            for batch in _batches(read_records(options.paths, options.max_bytes), options.batch_size):
                parsed: list[ParsedRecord] = []
                for record in batch:
                    report.records += 1
                    try:
                        found = parse_record(record, policy, options.zone, options.max_bytes)
                    except AdapterError as error:
                        report.rejects[error.code] += 1
                        if reject_file:
                            entry = {
                                "source": record.source,
                                "position": record.position,
                                "code": error.code,
                                "detail": error.detail,
                            }
                            reject_file.write(json.dumps(entry) + "\n")
                        continue
                    parsed.extend(_keep(item, options.since, options.until, options.encounter) for item in found)
                _add(report.totals, service.handle(parsed))
                _drain(store, out)
                progress.update(len(batch))
            if options.close_at_end:
                _add(report.totals, service.close())
                _drain(store, out)
        finally:
            progress.close()
            store.close()
    return report


def _add(total: Outcome, part: Outcome) -> None:
    total.inputs += part.inputs
    total.duplicates += part.duplicates
    total.administrations += part.administrations
    total.events += part.events
    total.messages += part.messages
    for key, count in part.lines.items():
        total.lines[key] = total.lines.get(key, 0) + count
