"""``ivpush replay --jobs N``: N worker processes, each coding the records of its own encounters.

The parent reads the archives once to group the records that may touch each other through the
state and to assign each group to a worker (``connector.cli.replay_shards``). Each worker then
reads the archives itself, cuts them into the batches ``--jobs 1`` would run (``--batch-size``,
the byte budget) and codes its part of every batch, in archive order, with the same batch code
as ``--jobs 1`` (``connector.cli.replay_batch``): each encounter gets the same inputs in the
same transactions, so the same lines and the same messages. No record crosses a pipe. Only
the order of the output differs (below). An archive that holds more records on a later
reading than on the first stops the run (a worker fails).

State:

- In memory (no ``--state``) or a new SQLite file: each worker codes into a SQLite file of its
  own in a scratch directory and closes its encounters at the end of input. Once every worker
  succeeded, the shards are copied into the state (a new ``--state`` file; each shard in one
  transaction: they share no key) and the outbox is written out as ``--jobs 1`` writes it
  (marked sent once written and synced). A run interrupted before leaves no state: run it again.
- An existing SQLite state (to extend or to resume) is coded in one process, as are
  ``--diff-against`` and standard input: the run says so and goes on as ``--jobs 1``.
- PostgreSQL: the workers share the database (encounter locks keep them apart, and no two
  touch the same encounter); the parent closes the open encounters and writes the outbox
  when they are done.

Output order: every message of worker 0, then of worker 1, … (each in its own order: batch
order, then the closing messages by encounter key); with PostgreSQL, commit order. The
rejects file: worker 0's lines, then worker 1's, ….

A worker that dies (a crash, a signal, an exception outside the per-input isolation) stops
the run: exit 1 naming it. With a new SQLite state or in memory nothing is written; with
PostgreSQL what the workers committed stays, its messages are written, and a run again
resumes as ``--jobs 1`` would.
"""

from __future__ import annotations

import multiprocessing
import pickle
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

import click

from connector.adapters.archive import read_records
from connector.bootstrap import POSTGRES_SCHEMES, identity_key, open_store, renderers
from connector.cli.replay_batch import close_all, code_batch, load_adapters
from connector.cli.replay_io import batches, drain
from connector.cli.replay_report import ReplayReport, add

if TYPE_CHECKING:
    from connector.cli.replay_options import ReplayOptions
    from connector.policy.model import Policy
    from connector.service import Service
    from connector.store.base import Store


class WorkerFailed(click.ClickException):
    """A worker process died; exit 1."""


class InputChanged(RuntimeError):
    """The archives changed between the two readings."""


def plan(options: ReplayOptions, fresh: bool) -> tuple[int, str]:
    """The workers a replay can use, and why fewer than asked (empty when not)."""
    if options.jobs <= 1:
        return 1, ""
    spec = options.state or ":memory:"
    why = ""
    if options.diff_against is not None:
        why = "--diff-against codes into one copy of the state"
    elif "-" in options.paths:
        why = "standard input can be read only once"
    elif not (fresh or spec.startswith(POSTGRES_SCHEMES)):
        why = "the SQLite state exists (extending or resuming it runs in one process; PostgreSQL shares one)"
    return (1, f"--jobs {options.jobs} ran as --jobs 1: {why}") if why else (options.jobs, "")


def run_jobs(
    options: ReplayOptions, policy: Policy, out: BinaryIO, reject_file: TextIO | None, store: Store
) -> ReplayReport:
    """Replay with ``options.jobs`` workers into ``store``, writing the messages to ``out`` at the end.

    Raises:
        WorkerFailed: A worker died.
    """
    from connector.cli.replay_shards import assign
    from connector.store.sqlite import SqliteStore
    from connector.store.sqlite_merge import ShardMismatch

    load_adapters(fhir=True)  # before the workers are forked: they inherit them
    report = ReplayReport()
    drain(store, out)  # what an interrupted run left unsent goes out first
    shared = (options.state or "").startswith(POSTGRES_SCHEMES)
    shards = assign(read_records(options.paths, options.max_bytes), options, policy, options.jobs)
    beside = Path(options.state).parent if options.state and not shared and options.state != ":memory:" else None
    # the shard states are as large as the state: beside it, not in a /tmp that may be memory
    with tempfile.TemporaryDirectory(prefix="ivpush-replay-jobs-", dir=beside) as scratch:
        directory = Path(scratch)
        failed = _run_workers(options, policy, shards, directory, out)
        if failed:
            if shared:
                drain(store, out)
            listed = ", ".join(f"worker {k} (exit code {code})" for k, code in failed)
            kept = "what they committed was written out" if shared else "nothing was written; run it again"
            raise WorkerFailed(f"replay {listed} of {options.jobs} failed: {kept}")
        for k in range(options.jobs):
            part: ReplayReport = pickle.loads((directory / f"report-{k}.pickle").read_bytes())  # noqa: S301 - ours
            report.records += part.records
            add(report.totals, part.totals)
            report.rejects.update(part.rejects)
            if reject_file is not None:
                reject_file.write((directory / f"rejects-{k}.ndjson").read_text(encoding="utf-8"))
        paths = [directory / f"shard-{k}.db" for k in range(options.jobs)]
        if shared:
            if options.close_at_end:
                close_all(_service(store, options, policy), report, reject_file)
        elif isinstance(store, SqliteStore):
            try:
                store.merge(paths)
            except ShardMismatch as error:  # our own text: names a shard file and tables, no value
                raise WorkerFailed(f"merging the workers' states failed: {error}") from error
            except sqlite3.Error as error:  # the class only: a driver's text may quote a value
                why = f"merging the workers' states failed ({type(error).__name__}): run it again"
                raise WorkerFailed(why) from error
        else:  # in memory: nothing to keep, each shard written out in turn
            for path in paths:
                shard = SqliteStore(path, synchronous="NORMAL")
                try:
                    drain(shard, out)
                finally:
                    shard.close()
        drain(store, out)
    return report


def _run_workers(
    options: ReplayOptions, policy: Policy, shards: bytearray, scratch: Path, out: BinaryIO
) -> list[tuple[int, int]]:
    """Start the workers and wait for them; the (worker, exit code) of those that failed."""
    # Fork (the policy, the imports and the assignment inherited) unless the parent holds a
    # PostgreSQL store: its pool threads must not be forked; then the workers start afresh.
    shared = (options.state or "").startswith(POSTGRES_SCHEMES)
    fork = "fork" in multiprocessing.get_all_start_methods() and not shared
    context = multiprocessing.get_context("fork") if fork else multiprocessing.get_context("spawn")
    out.flush()  # a forked worker flushes what it inherited when it exits
    sys.stdout.flush()
    sys.stderr.flush()
    workers = [
        context.Process(target=_work, args=(k, options, policy, str(scratch), bytes(shards)), name=f"ivpush-replay-{k}")
        for k in range(options.jobs)
    ]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    except BaseException:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
            if worker.pid is not None:
                worker.join()
        raise
    return [(k, worker.exitcode or 0) for k, worker in enumerate(workers) if worker.exitcode != 0]


def _service(store: Store, options: ReplayOptions, policy: Policy) -> Service:
    from connector.service import Service, ServiceSettings

    settings = ServiceSettings(
        renderers([options.fmt]), options.emit_on, options.claim_type, options.payer, identity_key()
    )
    return Service(store, policy, settings, clock=time.time)


def _work(shard: int, options: ReplayOptions, policy: Policy, scratch: str, shards: bytes) -> None:
    """One worker: read the archives, code its part of each batch, close its encounters, leave its report.

    Every worker reads every record (reading is cheap beside coding) and cuts the batches
    ``--jobs 1`` would cut, so that its encounters see the same transactions.

    Raises:
        InputChanged: The archives hold more records than when they were first read.
    """
    from connector.store.sqlite import SqliteStore

    directory = Path(scratch)
    shared = (options.state or "").startswith(POSTGRES_SCHEMES)
    store = open_store(options.state or "") if shared else SqliteStore(directory / f"shard-{shard}.db", "NORMAL")
    report = ReplayReport()
    try:
        service = _service(store, options, policy)
        with (directory / f"rejects-{shard}.ndjson").open("w", encoding="utf-8") as rejects:
            index = 0
            for batch in batches(read_records(options.paths, options.max_bytes), options.batch_size):
                if index + len(batch) > len(shards):
                    raise InputChanged("the input changed while it was replayed: more records than first read")
                mine = [record for i, record in enumerate(batch, index) if shards[i] == shard]
                index += len(batch)
                if mine:
                    code_batch(mine, service, options, policy, report, rejects)
            if options.close_at_end and not shared:
                close_all(service, report, rejects)
    finally:
        store.close()
    (directory / f"report-{shard}.pickle").write_bytes(pickle.dumps(report))
