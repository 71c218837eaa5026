r"""Archive readers: files, directories, stdin and ``.gz`` → one record per message/resource.

Archives arrive in every framing: HL7 as plain files with ``\r``, ``\n`` or ``\r\n``
terminators (one or many messages, FHS/BHS batches) or MLLP-framed captures
(``0x0B … 0x1C 0x0D``); FHIR as one JSON resource or Bundle per file, or NDJSON (bulk
export). Format is detected per file from its first bytes. Reading streams in chunks, so
memory stays flat for archives of any size, and every record carries its position (file and
byte offset or line) so a reject can be found again. Nothing is skipped silently: an
undetectable file becomes one record of format ``unknown`` for the caller to reject.
"""

from __future__ import annotations

import gzip
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20
DEFAULT_MAX_BYTES = 1 << 20
MLLP_START, MLLP_END = b"\x0b", b"\x1c"
BATCH_SEGMENTS = (b"FHS", b"BHS", b"BTS", b"FTS")
_SEGMENT = re.compile(rb"[^\r\n]+")


@dataclass(frozen=True, slots=True)
class Record:
    r"""One input record read from an archive.

    Attributes:
        source: File path, or ``-`` for standard input.
        position: Where it starts: ``byte N`` (HL7) or ``line N`` (NDJSON) or ``document``.
        format: ``hl7``, ``fhir`` or ``unknown``.
        data: The record's bytes (HL7 segments joined with ``\r``), at most ``max_bytes``.
        oversize: The record was larger than ``max_bytes`` and was cut; reject it.
    """

    source: str
    position: str
    format: str
    data: bytes
    oversize: bool = False

    @property
    def where(self) -> str:
        """``source@position`` for reject reports."""
        return f"{self.source}@{self.position}"


def expand(paths: Iterable[str]) -> Iterator[str]:
    """Files named, and every file below directories named (sorted, for determinism)."""
    for name in paths:
        path = Path(name)
        if name != "-" and path.is_dir():
            yield from (str(p) for p in sorted(path.rglob("*")) if p.is_file())
        else:
            yield name


def read_records(paths: Iterable[str], max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Record]:
    """Every record of every archive named (``-`` reads standard input)."""
    for name in expand(paths):
        if name == "-":
            yield from read_stream(sys.stdin.buffer, "-", max_bytes)
            continue
        with _open(Path(name)) as stream:
            yield from read_stream(stream, name, max_bytes)


def _open(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def read_stream(stream: BinaryIO, source: str, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Record]:
    """Detect the format from the first bytes and split the stream into records."""
    head = stream.read(CHUNK)
    start = len(head) - len(head.lstrip(b" \t\r\n"))  # not bare lstrip(): 0x0B is whitespace to Python
    first = head[start : start + 3]
    if first[:1] == MLLP_START:
        yield from _mllp(head, stream, source, max_bytes)
    elif first in (b"MSH", *BATCH_SEGMENTS):
        yield from _hl7_plain(head, stream, source, max_bytes)
    elif first[:1] in (b"{", b"["):
        yield from _json(head, stream, source, max_bytes)
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
    offset = 0  # stream offset of the start of ``pending``
    pending = b""
    for chunk in _chunks(head, stream):
        buffer = pending + chunk
        last_break = max(buffer.rfind(b"\r"), buffer.rfind(b"\n"))
        complete, pending = buffer[: last_break + 1], buffer[last_break + 1 :]
        for match in _SEGMENT.finditer(complete):
            yield from _hl7_segment(match.group(), offset + match.start(), message, source)
        offset += len(complete)
    if pending.strip():
        yield from _hl7_segment(pending.rstrip(b"\r\n"), offset, message, source)
    last = message.take(source, "hl7")
    if last:
        yield last


def _hl7_segment(segment: bytes, offset: int, message: _Collector, source: str) -> Iterator[Record]:
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
    if leftover is not None and leftover.data.strip():
        yield leftover  # an unterminated last frame is still a record (the adapter decides)


def _json(head: bytes, stream: BinaryIO, source: str, max_bytes: int) -> Iterator[Record]:
    first_line, newline, _rest = head.partition(b"\n")
    if newline and first_line.strip().endswith(b"}") and _looks_like_ndjson(head):
        yield from _ndjson(head, stream, source, max_bytes)
        return
    document = _Collector(max_bytes, b"")
    for chunk in _chunks(head, stream):
        document.add(chunk, 0)
    record = document.take(source, "fhir")
    if record is not None:
        yield Record(source, "document", "fhir", record.data, record.oversize)


def _looks_like_ndjson(head: bytes) -> bool:
    lines = [line.strip() for line in head.split(b"\n")[:3] if line.strip()]
    return len(lines) > 1 and all(line.startswith(b"{") for line in lines[1:]) and lines[0].endswith(b"}")


def _ndjson(head: bytes, stream: BinaryIO, source: str, max_bytes: int) -> Iterator[Record]:
    number = 0
    pending = b""
    for chunk in _chunks(head, stream):
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            number += 1
            if line.strip():
                yield Record(source, f"line {number}", "fhir", line[:max_bytes], len(line) > max_bytes)
    if pending.strip():
        yield Record(source, f"line {number + 1}", "fhir", pending[:max_bytes], len(pending) > max_bytes)
