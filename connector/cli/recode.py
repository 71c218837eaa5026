"""``ivpush recode --state S``: code the stored encounters again under the current mappings (docs/explain.md).

No feed is read: every encounter of the state (or the ``--encounter`` ones), in batches of
sorted keys, is settled again by ``Service.recode`` — the service's own delta (credits for the
lines emitted that no longer hold, charges for the new ones), history cause ``recode``.

- ``--dry-run``: each batch's transaction is rolled back; only the report is printed (counts by
  code and action, payer policy and flag; encounters changed and unchanged; a sample of
  explanations). Nothing is written to the state (nor its outbox, history or settings).
- Otherwise the messages go to the state's outbox: ``--out FILE`` (or ``-``) drains the outbox
  to it as ``ivpush replay`` does (anything else pending too); without ``--out`` they stay for
  the consumer's relay (a consumer's state) or the next ``replay --state … --out``. A full
  run (no ``--encounter``, nothing that cannot be coded) records the settings in a state that
  holds a record (``replay_settings``), so a later replay is not refused.

The report goes to standard output (standard error when ``--out -`` sends the messages there).
Exit 0; 1 when an encounter cannot be coded under the new mappings (it is left as it was) or the
store fails mid-run; 2 on usage errors (one line): no such state, an unknown encounter, payer
policy or policy version.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

import click

from connector.bootstrap import FORMATS, POSTGRES_SCHEMES, StoreOpenError, open_store, renderers, store_label
from connector.cli.options import exit_with_error, load_or_exit, mappings_option, settings_or_exit
from connector.cli.recode_report import RecodeReport
from connector.cli.replay_io import drain, open_output
from connector.cli.replay_settings import CodingSettings, differences, mappings_digest, record, recorded
from connector.model import ClaimType
from connector.policy.cms import table_version
from connector.policy.model import Policy
from connector.service import Service, ServiceSettings
from connector.store.base import Store, Transaction

BATCH = 500  # encounters per transaction
_SCAN = 5000  # keys per page when a visit number is looked up


@dataclass(frozen=True)
class RecodeOptions:
    """How to recode (the command's options, parsed).

    Attributes:
        claim_type: Replace each encounter's claim type (None: keep).
        payer: Replace each encounter's default payer policy (None: keep).
        dry_run: Roll every batch back.
        batch_size: Encounters per transaction.
        sample: Changed encounters to explain.
    """

    claim_type: ClaimType | None = None
    payer: str | None = None
    dry_run: bool = False
    batch_size: int = BATCH
    sample: int = 5


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="IVPUSH_CONFIG",
    help="TOML settings (a consumer's): state.url, coding.formats and mappings, [dft], [chargeitem].",
)
@click.option(
    "--state",
    help="The state: a SQLite file or a postgresql:// URL [default: the config's state.url]. A URL with a "
    "password belongs in IVPUSH_STATE, not on the command line.",
)
@click.option("--dry-run", is_flag=True, help="Report the deltas only; write nothing.")
@click.option("--encounter", "encounters", multiple=True, help="Only this encounter (key or visit number; repeat).")
@click.option(
    "--claim-type", type=click.Choice([c.value for c in ClaimType]), help="Recode as this claim type [default: keep]."
)
@click.option("--policy", "payer", help="Default payer policy (when the feed named none) [default: keep].")
@click.option(
    "--policy-version", help="A loaded policy version (a payer's meta.version, a CMS quarter): checked, reported."
)
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(FORMATS),
    help="Output format (repeat) [default: the --config's coding.formats, else json].",
)
@click.option("--out", "out_path", help="Drain the outbox to this file (- for stdout) [default: leave it queued].")
@click.option("--report", "report_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--sample", type=click.IntRange(0), default=5, show_default=True, help="Changed encounters explained.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=BATCH, show_default=True)
@mappings_option
def recode(
    config_path: Path | None,
    state: str | None,
    dry_run: bool,
    encounters: tuple[str, ...],
    claim_type: str | None,
    payer: str | None,
    policy_version: str | None,
    formats: tuple[str, ...],
    out_path: str | None,
    report_format: str,
    sample: int,
    batch_size: int,
    mappings: Path | None,
) -> None:
    """Code stored encounters again under the current mappings; emit (or, --dry-run, report) the deltas."""
    overrides: dict[str, object] = {"state.url": state, "coding.mappings": mappings, "coding.formats": formats or None}
    settings = settings_or_exit(config_path, overrides)
    spec = settings.state.spec
    if spec == ":memory:" or (not spec.startswith(POSTGRES_SCHEMES) and not os.path.isfile(spec)):
        exit_with_error(f"no such state file: {spec}")
    policy = load_or_exit(settings.coding.mappings)
    if payer is not None and payer.lower() not in policy.payers:
        exit_with_error(f"unknown payer policy '{payer}' (known: {', '.join(sorted(policy.payers))})")
    version_note = check_version(policy, policy_version) if policy_version is not None else ""
    names = formats or (settings.coding.formats if config_path else ("json",))
    outputs = renderers(names, settings.dft.emitter_settings(), settings.chargeitem.emitter_settings())
    options = RecodeOptions(
        ClaimType(claim_type) if claim_type else None, payer.lower() if payer else None, dry_run, batch_size, sample
    )
    try:
        store = open_store(spec)
    except StoreOpenError as error:
        exit_with_error(str(error))
    try:
        service = Service(store, policy, ServiceSettings(outputs), clock=time.time)
        digest = mappings_digest(settings.coding.mappings)
        report = _run(store, service, options, encounters, digest, out_path)
    except (sqlite3.Error, OSError, RuntimeError) as error:  # the store went away: its text may quote values
        click.echo(f"error: recoding {store_label(spec)} failed ({type(error).__name__})", err=True)
        raise SystemExit(1) from error
    finally:
        store.close()
    if version_note:
        report.notes.append(version_note)
    stream: TextIO = sys.stderr if out_path == "-" else sys.stdout
    if report_format == "json":
        stream.write(json.dumps(report.as_dict(dry_run), indent=2) + "\n")
    else:
        stream.write("\n".join(report.text(dry_run, store_label(spec))) + "\n")
    if report.failed:
        raise SystemExit(1)


def known_versions(policy: Policy) -> list[str]:
    """The policy versions loaded: each payer policy's and each CMS table's.

    A table answers to its quarter (``2026q1``, ``mue-2026q1``) and to its full version as lines
    name it (``mue-2026q1.3fa2b1c0``).
    """
    known = {payer.version for payer in policy.payers.values()}
    for kind, tables in (("mue", policy.cms.mue), ("ptp", policy.cms.ptp)):
        known.update(
            name
            for table in tables
            for name in (table.label, f"{kind}-{table.label}", table_version(kind, table.label, table.digest))
        )
    return sorted(known)


def check_version(policy: Policy, version: str) -> str:
    """A note naming ``version``, or exit 2 (one line) when it is not a loaded version."""
    known = known_versions(policy)
    if version not in known:
        exit_with_error(f"unknown policy version '{version}' (loaded: {', '.join(known)})")
    return (
        f"policy version {version} is loaded; each encounter is coded with the versions in force on its dates "
        "of service"
    )


def _run(
    store: Store,
    service: Service,
    options: RecodeOptions,
    wanted: Sequence[str],
    digest: str,
    out_path: str | None,
) -> RecodeReport:
    """Resolve the encounters, recode, drain to ``--out`` and record the settings (not in a dry run)."""
    with store.transaction() as tx:
        keys = [find_key(tx, name) for name in wanted] if wanted else None
        old = recorded(tx)
    new = None
    if old is not None:
        new = CodingSettings(old.zone, options.claim_type or old.claim_type, options.payer or old.policy, digest)
    out = None
    if out_path is not None and not options.dry_run:
        try:
            out = open_output(out_path, append=True)
        except OSError as error:
            exit_with_error(f"cannot write {error.filename}: {error.strerror or type(error).__name__}")
    try:
        report = run_recode(store, service, options, keys, out)
    finally:
        if out is not None and out is not sys.stdout.buffer:
            out.close()
    if old is not None and new is not None and old != new:  # new is None exactly when old is
        changed = ", ".join(f"{label} {after} (was {before})" for label, before, after in differences(old, new))
        report.notes.append(f"settings: {changed}")
    if not options.dry_run:
        report.notes.append(_recorded_note(store, new, keys is None and not report.failed))
        where = "standard output" if out_path == "-" else out_path
        report.notes.append(f"charge messages written to {where}" if out_path else _QUEUED)
    return report


_QUEUED = (
    "charge messages left in the outbox: a consumer's relay publishes them; for a replay's state, "
    "the next ivpush replay --state … --out (or ivpush recode --out) writes them"
)


def _recorded_note(store: Store, new: CodingSettings | None, complete: bool) -> str:
    """Record the settings in the state when the whole state was recoded and it holds a record; say what was done."""
    if new is None:
        return "the state holds no record of coding settings: none recorded"
    if not complete:
        return "coding settings not recorded (only some encounters were recoded)"
    with store.transaction() as tx:
        record(tx, new)
    return "coding settings recorded in the state"


def run_recode(
    store: Store, service: Service, options: RecodeOptions, keys: Sequence[str] | None, out: BinaryIO | None = None
) -> RecodeReport:
    """Recode ``keys`` (None: every encounter of the state) in batches, draining to ``out`` after each one."""
    report = RecodeReport(sample_size=options.sample)
    if out is not None:
        drain(store, out)  # what an interrupted run left unsent goes out first
    for batch in _batches(store, keys, options.batch_size):
        report.add(service.recode(batch, options.claim_type, options.payer, write=not options.dry_run))
        if out is not None:
            drain(store, out)
    return report


def _batches(store: Store, keys: Sequence[str] | None, size: int) -> Iterator[list[str]]:
    """The given keys, or every key of the state page by page, in sorted batches of ``size``."""
    if keys is not None:
        ordered = sorted(set(keys))
        for start in range(0, len(ordered), size):
            yield ordered[start : start + size]
        return
    after: str | None = None
    while True:
        with store.transaction() as tx:
            batch = tx.encounter_keys(after, size)
        if not batch:
            return
        yield batch
        after = batch[-1]


def find_key(tx: Transaction, wanted: str) -> str:
    """The key ``wanted`` names: itself, or the one key ending in ``|wanted`` (else exit 2, one line)."""
    if tx.get(wanted) is not None:
        return wanted
    matches: list[str] = []
    after: str | None = None
    while page := tx.encounter_keys(after, _SCAN):
        matches += [key for key in page if key.rpartition("|")[2] == wanted]
        after = page[-1]
    if not matches:
        exit_with_error(f"no encounter '{wanted}' in the state")
    if len(matches) > 1:
        exit_with_error(f"visit number '{wanted}' names {len(matches)} encounters: {', '.join(matches)}")
    return matches[0]
