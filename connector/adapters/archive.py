r"""Archive readers: files, directories, stdin and ``.gz`` → one record per message/resource.

Archives arrive in every framing: HL7 as plain files with ``\r``, ``\n`` or ``\r\n``
terminators (one or many messages, FHS/BHS batches) or MLLP-framed captures
(``0x0B … 0x1C 0x0D``); FHIR as one JSON resource or Bundle per file, or NDJSON (bulk
export). Format is detected per file from its first bytes. Reading streams in chunks, so
memory stays flat for archives of any size, and every record carries its position (file and
byte offset or line) so a reject can be found again. Nothing is skipped silently: an
undetectable file becomes one record of format ``unknown`` for the caller to reject.

Every bound holds while reading: a line, message, NDJSON line or JSON document over
``max_bytes`` is skipped to its end without being held (``lines``) and becomes one oversize
record at its position; a file that cannot be opened or read to its end (``archive_files``:
permissions, not gzip, a truncated or corrupt gzip stream) becomes one record carrying an
``unreadable_file``/``corrupt_archive`` error after the records read before the failure, and
the next file is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import chain
from typing import BinaryIO

from connector.adapters.archive_files import (
    CORRUPT,
    READ_ERRORS,
    CountingReader,
    Fault,
    open_input,
    read_fault,
    walk,
)
from connector.adapters.errors import AdapterError, CorruptArchive, UnreadableFile
from connector.adapters.lines import split_lines

CHUNK = 1 << 20
DEFAULT_MAX_BYTES = 1 << 20
MLLP_START, MLLP_END = b"\x0b", b"\x1c"
BOM = b"\xef\xbb\xbf"
BATCH_SEGMENTS = (b"FHS", b"BHS", b"BTS", b"FTS")


@dataclass(frozen=True, slots=True)
class Record:
    r"""One input record read from an archive.

    Attributes:
        source: File path, or ``-`` for standard input.
        position: Where it starts: ``byte N`` (HL7) or ``line N`` (NDJSON) or ``document``.
        format: ``hl7``, ``fhir`` or ``unknown``.
        data: The record's bytes (HL7 segments joined with ``\r``), at most ``max_bytes``.
        oversize: The record was larger than ``max_bytes`` and was cut; reject it.
        error: The file could not be read (from ``position`` on): reject the record with it.
    """

    source: str
    position: str
    format: str
    data: bytes
    oversize: bool = False
    error: AdapterError | None = None

    @property
    def where(self) -> str:
        """``source@position`` for reject reports."""
        return f"{self.source}@{self.position}"


def read_records(paths: Iterable[str], max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Record]:
    """Every record of every archive named (``-`` reads standard input; directories: every file below).

    A file that cannot be read yields, after the records read before the failure, one record
    whose ``error`` says why and how far reading got.
    """
    for name, fault in walk(paths):
        if fault is None:
            yield from _read_file(name, max_bytes)
        else:
            yield _fault_record(name, "byte 0", fault)


def _read_file(name: str, max_bytes: int) -> Iterator[Record]:
    records = 0
    stream: CountingReader | None = None
    try:
        with ExitStack() as stack:
            stream = open_input(name, stack)
            for record in read_stream(stream, name, max_bytes):  # type: ignore[arg-type] # only read() is used
                records += 1
                yield record
    except READ_ERRORS as error:  # the records yielded stand; the rest of this file is one reject
        offset = stream.offset if stream is not None else 0
        yield _fault_record(name, f"byte {offset}", read_fault(error, records, offset))


def _fault_record(source: str, position: str, fault: Fault) -> Record:
    error = CorruptArchive(fault.detail) if fault.code == CORRUPT else UnreadableFile(fault.detail)
    return Record(source, position, "unknown", b"", error=error)


def read_stream(stream: BinaryIO, source: str, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Record]:
    """Detect the format from the first bytes and split the stream into records."""
    head = stream.read(CHUNK)
    lead = len(head) - len(head.lstrip(b" \t\r\n"))  # not bare lstrip(): 0x0B is whitespace to Python
    bom = len(BOM) if head.startswith(BOM, lead) else 0  # a UTF-8 byte-order mark is not content
    first = head[lead + bom :].lstrip(b" \t\r\n")[:3] if bom else head[lead : lead + 3]
    if first[:1] == MLLP_START:
        yield from _mllp(head, stream, source, max_bytes)
    elif first in (b"MSH", *BATCH_SEGMENTS):
        yield from _hl7_plain(head, stream, source, max_bytes)
    elif first[:1] in (b"{", b"["):  # JSON parsers refuse a BOM; HL7 segments drop their own
        yield from _json(head[:lead] + head[lead + bom :] if bom else head, stream, source, max_bytes)
    elif head.strip():
        yield Record(source, "byte 0", "unknown", head[:max_bytes], len(head) > max_bytes)


def _chunks(head: bytes, stream: BinaryIO) -> Iterator[bytes]:
    yield head
    while chunk := stream.read(CHUNK):
        yield chunk


class _Collector:
    """Accumulates one record's parts, keeping at most ``max_bytes`` of them."""

    def __init__(self, max_bytes: int, joiner: bytes) -> None:
        self.max_bytes = max_bytes
        self.joiner = joiner
        self.parts: list[bytes] = []
        self.size = 0  # size of the whole record as joined, kept or not
        self.start = -1

    def begin(self, offset: int) -> None:
        """Open a record at a stream offset (an empty record still counts)."""
        if self.start < 0:
            self.start = offset

    def add(self, part: bytes, offset: int) -> None:
        """Append a part; parts beyond ``max_bytes`` are counted but not kept."""
        self.begin(offset)
        self.size += len(part) + (len(self.joiner) if self.size else 0)
        if self.size <= self.max_bytes:
            self.parts.append(part)

    def grow(self, extra: int) -> None:
        """Count bytes of the open record that were never held (the cut tail of an over-long line)."""
        if self.start >= 0:
            self.size += extra

    def take(self, source: str, fmt: str) -> Record | None:
        """Close the record (None when none is open)."""
        if self.start < 0:
            return None
        oversize = self.size > self.max_bytes
        record = Record(source, f"byte {self.start}", fmt, self.joiner.join(self.parts), oversize)
        self.parts, self.size, self.start = [], 0, -1
        return record


def _hl7_plain(head: bytes, stream: BinaryIO, source: str, max_bytes: int) -> Iterator[Record]:
    message = _Collector(max_bytes, b"\r")
    for line in split_lines(_chunks(head, stream), max_bytes, b"\r\n"):  # no segment held beyond max_bytes
        if line.size and (line.ended or line.data.strip()):
            yield from _hl7_segment(line.data, line.offset, message, source)
            if line.size > max_bytes:
                message.grow(line.size - len(line.data))  # an over-long segment makes its message oversize
    last = message.take(source, "hl7")
    if last:
        yield last


def _hl7_segment(segment: bytes, offset: int, message: _Collector, source: str) -> Iterator[Record]:
    if segment.startswith(BOM):  # a BOM before a message (files concatenated from BOM-started ones)
        segment, offset = segment[len(BOM) :], offset + len(BOM)
    name = segment[:3]
    if name in BATCH_SEGMENTS:
        done = message.take(source, "hl7")  # a batch trailer/header ends the message
        if done:
            yield done
        return
    if name == b"MSH":
        done = message.take(source, "hl7")
        if done:
            yield done
    elif message.start < 0 and not segment.strip():
        return
    message.add(segment, offset)


def _mllp(head: bytes, stream: BinaryIO, source: str, max_bytes: int) -> Iterator[Record]:
    frame = _Collector(max_bytes, b"")
    offset = 0
    for chunk in _chunks(head, stream):
        cursor = 0
        while cursor < len(chunk):
            if frame.start < 0:
                begin = chunk.find(MLLP_START, cursor)
                if begin < 0:
                    break
                frame.begin(offset + begin)
                cursor = begin + 1
            end = chunk.find(MLLP_END, cursor)
            if end < 0:
                frame.add(chunk[cursor:], offset + cursor)
                break
            frame.add(chunk[cursor:end], offset + cursor)
            record = frame.take(source, "hl7")
            if record is not None:
                yield record
            cursor = end + 1
        offset += len(chunk)
    leftover = frame.take(source, "hl7")
    if leftover is not None and (leftover.oversize or leftover.data.strip()):
        yield leftover  # an unterminated last frame is still a record (the adapter decides)


def _json(head: bytes, stream: BinaryIO, source: str, max_bytes: int) -> Iterator[Record]:
    first_line, newline, _rest = head.partition(b"\n")
    chunks = _chunks(head, stream)
    if newline and first_line.strip().endswith(b"}") and _looks_like_ndjson(head):
        yield from _ndjson(chunks, source, max_bytes)
        return
    if not newline and (more := stream.read(CHUNK)):  # a first line longer than a chunk: NDJSON, line
        yield from _ndjson(chain((head, more), _chunks(b"", stream)), source, max_bytes)  # by line
        return
    document = _Collector(max_bytes, b"")
    for chunk in chunks:
        document.add(chunk, 0)
        if document.size > max_bytes:
            break  # one document over the limit: one oversize record, the rest is not read
    record = document.take(source, "fhir")
    if record is not None:
        yield Record(source, "document", "fhir", record.data, record.oversize)


def _looks_like_ndjson(head: bytes) -> bool:
    lines = [line.strip() for line in head.split(b"\n")[:3] if line.strip()]
    return len(lines) > 1 and all(line.startswith(b"{") for line in lines[1:]) and lines[0].endswith(b"}")


def _ndjson(chunks: Iterable[bytes], source: str, max_bytes: int) -> Iterator[Record]:
    for number, line in enumerate(split_lines(chunks, max_bytes), start=1):  # no line held beyond max_bytes
        oversize = line.size > max_bytes
        if oversize or line.data.strip():
            yield Record(source, f"line {number}", "fhir", line.data, oversize)
