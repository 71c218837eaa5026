"""Replay's input and output around the service: paths named, batches, the output file.

A path named that does not exist is a usage error (exit 2, one line); any other path that
cannot be read is a reject (``connector.adapters.archive``). Records are handed to the service
in batches bounded by count (``--batch-size``) and by bytes held (``BATCH_BYTES``), so memory
stays bounded whatever the records' sizes.

The output file follows a rule that keeps a charge from being lost between runs. With a
persistent ``--state``, the state remembers which charge messages were sent and a second run
sends only what is new, so the output must keep what earlier runs wrote:

- ``--out FILE`` is opened for appending, never truncated. A last line without its newline
  (left by a run killed in the middle of a write) is cut off first: it was never marked sent,
  so it is written again, whole.
- Messages are marked sent in the state only after they were written, flushed and, for a
  regular file, fsynced. An interrupted run (Ctrl-C, SIGKILL, a crash) leaves marked only
  messages that are in the file; the ones written but not yet marked are written again by the
  next run (same ``message_id``: a repeat downstream can drop, never a loss).

Without a persistent state every run emits everything, so ``--out FILE`` is truncated.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import click

if TYPE_CHECKING:
    from connector.adapters.archive import Record
    from connector.store.base import Store

BATCH_BYTES = 32 << 20
_TAIL_BLOCK = 1 << 16


def exit_if_missing(paths: Iterable[str]) -> None:
    """Exit 2 with one line naming the paths that do not exist (``-`` is standard input)."""
    missing = []
    for name in paths:
        try:
            if name != "-":
                os.stat(name)
        except OSError as error:  # other errors (permissions, loops) become unreadable_file rejects
            if error.errno in (errno.ENOENT, errno.ENOTDIR):
                missing.append(name)
    if missing:
        click.echo(f"error: no such file or directory: {', '.join(missing)}", err=True)
        raise SystemExit(2)


def batches(records: Iterable[Record], size: int, budget: int = BATCH_BYTES) -> Iterator[list[Record]]:
    """Records in lists of at most ``size``, closed early once they hold ``budget`` bytes."""
    batch: list[Record] = []
    held = 0
    for record in records:
        batch.append(record)
        held += len(record.data)
        if len(batch) >= size or held >= budget:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def open_output(path: str, append: bool) -> BinaryIO:
    """The output stream: stdout for ``-``, else the file, appended to (cut back to its last whole line) or truncated.

    Raises:
        OSError: It cannot be opened.
    """
    if path == "-":
        return sys.stdout.buffer
    if not append:
        return open(path, "wb")
    created = not os.path.lexists(path)
    out = open(path, "a+b")  # noqa: SIM115 - the caller closes it
    if _regular(out):
        _cut_torn_line(out)
        if created:  # the file's directory entry must outlive a power loss as its content does
            _sync_directory(Path(path).resolve().parent)
    return out


def drain(store: Store, out: BinaryIO) -> int:
    """Write the outbox to ``out``, marking rows sent only once they are flushed and synced; the rows written."""
    written = 0
    while rows := store.pending(1000):
        for row in rows:
            out.write(row.body if row.body.endswith(b"\n") else row.body + b"\n")
        out.flush()
        if _regular(out):
            os.fsync(out.fileno())
        store.mark_sent((row.message_id, row.format) for row in rows)
        written += len(rows)
    return written


def _regular(out: BinaryIO) -> bool:
    """Whether the stream is a regular file (a pipe, terminal or /dev/null cannot be fsynced)."""
    try:
        return stat.S_ISREG(os.fstat(out.fileno()).st_mode)
    except (OSError, io.UnsupportedOperation):  # an in-memory stream (tests)
        return False


def _cut_torn_line(out: BinaryIO) -> None:
    """Truncate the file after its last newline (every message ends with one)."""
    end = size = out.seek(0, os.SEEK_END)
    while end > 0:
        start = max(0, end - _TAIL_BLOCK)
        out.seek(start)
        block = out.read(end - start)
        newline = block.rfind(b"\n")
        if newline >= 0:
            end = start + newline + 1
            break
        end = start
    if end < size:
        out.truncate(end)
        out.flush()
        os.fsync(out.fileno())
    out.seek(0, os.SEEK_END)


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
