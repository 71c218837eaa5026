"""The files behind archive paths: walking directories, opening (gzip or not), and read failures.

Every path named is read; below a directory, regular files are read in name order (symbolic
links followed, loops detected) and anything else (a FIFO, socket or device, a dangling link,
a subdirectory that cannot be listed) is reported, never opened: a FIFO would block the replay.
A failure to open or read a file is a ``Fault`` (a reject code and a detail naming the problem
and how far reading got, never a byte of content): the caller reports it and goes on with the
next file. Gzip is recognised by its magic bytes or a ``.gz`` name.
"""

from __future__ import annotations

import errno
import gzip
import os
import stat
import sys
import zlib
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import BinaryIO, Protocol

GZIP_MAGIC = b"\x1f\x8b"
READ_ERRORS = (OSError, EOFError, zlib.error)  # what reading a file can raise (BadGzipFile is an OSError)
UNREADABLE, CORRUPT = "unreadable_file", "corrupt_archive"
_REASONS = {
    errno.ENOENT: "no such file (a dangling symbolic link?)",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ELOOP: "symbolic link loop",
    errno.EISDIR: "is a directory",
    errno.EIO: "input/output error",
}
_GZIP_ERRORS = (  # keywords of gzip.BadGzipFile's texts (which may quote bytes of the file) → words
    ("no gzip header", "not a gzip stream"),  # ours: named .gz, no magic bytes
    ("gzipped", "data after a gzip member that is not gzip"),  # the first member's magic was checked
    ("CRC", "gzip checksum mismatch"),
    ("length", "gzip length mismatch"),
    ("compression method", "unknown gzip compression method"),
)


@dataclass(frozen=True, slots=True)
class Fault:
    """Why a file (or what is left of it) cannot be read.

    Attributes:
        code: ``unreadable_file`` (cannot be opened, listed or read) or ``corrupt_archive``
            (not gzip, truncated or corrupt compressed data).
        detail: What failed, without a byte of the file's content.
    """

    code: str
    detail: str


def walk(paths: Iterable[str]) -> Iterator[tuple[str, Fault | None]]:
    """Each file to read (``-``: standard input) with None, or a path that cannot be read with its fault."""
    for name in paths:
        if name == "-":
            yield name, None
            continue
        try:
            found = os.stat(name)
        except OSError as error:
            yield name, Fault(UNREADABLE, reason(error))
            continue
        if stat.S_ISDIR(found.st_mode):
            yield from _below(name, frozenset({(found.st_dev, found.st_ino)}))
        else:  # named explicitly: read whatever it is (a pipe from <(zcat …) included)
            yield name, None


def _below(directory: str, ancestors: frozenset[tuple[int, int]]) -> Iterator[tuple[str, Fault | None]]:
    try:
        with os.scandir(directory) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as error:
        yield directory, Fault(UNREADABLE, f"directory cannot be listed: {reason(error)}")
        return
    for entry in entries:
        try:
            found = entry.stat()  # follows symbolic links
        except OSError as error:
            yield entry.path, Fault(UNREADABLE, reason(error))
            continue
        if stat.S_ISDIR(found.st_mode):
            identity = (found.st_dev, found.st_ino)
            if identity in ancestors:
                yield entry.path, Fault(UNREADABLE, "symbolic link loop (a directory inside itself)")
            else:
                yield from _below(entry.path, ancestors | {identity})
        elif stat.S_ISREG(found.st_mode):
            yield entry.path, None
        else:
            yield entry.path, Fault(UNREADABLE, "not a regular file (FIFO, socket or device): not read")


def reason(error: OSError) -> str:
    """An OS error in words, without the path or any other value."""
    code = error.errno or 0
    return _REASONS.get(code) or f"{type(error).__name__} ({errno.errorcode.get(code, 'no errno')})"


class Readable(Protocol):
    """What the readers need of a stream."""

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (fewer only at the end)."""
        ...


class CountingReader:
    """A binary stream that counts the bytes read through it (how far reading got)."""

    def __init__(self, stream: Readable) -> None:
        """Wrap ``stream``."""
        self._stream = stream
        self.offset = 0

    def read(self, size: int = -1) -> bytes:
        """Read like the wrapped stream, counting."""
        data = self._stream.read(size)
        self.offset += len(data)
        return data


def open_input(name: str, stack: ExitStack) -> CountingReader:
    """Open a file (``-``: standard input) for reading, decompressing gzip; closed with ``stack``.

    Raises:
        OSError: It cannot be opened.
        gzip.BadGzipFile: Named ``.gz`` but not gzip.
    """
    if name == "-":
        raw: BinaryIO = sys.stdin.buffer
    else:
        raw = stack.enter_context(open(name, "rb"))  # noqa: SIM115 - closed by the stack
    peek = getattr(raw, "peek", None)
    magic = peek(2)[:2] if peek else b""
    if magic == GZIP_MAGIC:
        return CountingReader(stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb")))
    if name.endswith(".gz") and magic:  # an empty file is empty, whatever its name
        raise gzip.BadGzipFile("no gzip header")
    return CountingReader(raw)


def read_fault(error: Exception, records: int, offset: int) -> Fault:
    """The fault of a read that failed after ``records`` records and ``offset`` bytes (decompressed)."""
    where = f"after {records} records, {offset} bytes read"
    if isinstance(error, EOFError):
        return Fault(CORRUPT, f"truncated gzip stream ({where})")
    if isinstance(error, zlib.error):
        return Fault(CORRUPT, f"corrupt gzip data ({where})")
    if isinstance(error, gzip.BadGzipFile):
        kind = next((words for key, words in _GZIP_ERRORS if key in str(error)), "corrupt gzip header")
        return Fault(CORRUPT, f"{kind} ({where})")
    if isinstance(error, OSError):
        return Fault(UNREADABLE, f"{reason(error)} ({where})")
    return Fault(UNREADABLE, f"{type(error).__name__} ({where})")
