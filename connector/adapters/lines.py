r"""Bounded line splitting over a stream read in chunks: no line is ever held beyond a limit.

The archive readers split HL7 files into segments and NDJSON files into lines. A line can be
of any length (a gzip of a few MB can expand to one line of several GB), so a line is never
accumulated whole: its first ``limit`` bytes are kept, the rest is counted and dropped as it
streams past, and the caller learns its full length to reject it as oversize.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple


class Line(NamedTuple):
    """One line of a stream, without its terminator.

    Attributes:
        offset: Stream offset of its first byte.
        data: Its first bytes, at most the splitter's ``limit``.
        size: Its full length (``size > len(data)``: it was cut).
        ended: A terminator followed it (False only for an unterminated last line).
    """

    offset: int
    data: bytes
    size: int
    ended: bool = True


def split_lines(chunks: Iterable[bytes], limit: int, breaks: bytes = b"\n") -> Iterator[Line]:
    r"""Every line of a chunked stream, empty ones included, each holding at most ``limit`` bytes.

    Args:
        chunks: The stream, in chunks of bounded size.
        limit: Bytes of a line kept (the rest is counted, not held).
        breaks: ``b"\n"`` (NDJSON), or ``b"\r\n"``: either byte ends a line (HL7; ``\r\n``
            then yields an empty line between the two).

    Yields:
        Each line in order; an unterminated last line only when it is not empty.
    """
    either = breaks == b"\r\n"
    start = 0  # offset of the line being read
    head: list[bytes] = []  # its first bytes, ``kept`` of them (at most ``limit``)
    kept = size = 0
    for chunk in chunks:
        pieces = (chunk.replace(b"\n", b"\r") if either else chunk).split(b"\r" if either else b"\n")
        last = len(pieces) - 1
        for index, piece in enumerate(pieces):
            if not size and index < last:  # a whole line inside this chunk: the common case
                yield Line(start, piece[:limit], len(piece))
                start += len(piece) + 1
                continue
            if kept < limit and piece:
                part = piece[: limit - kept]
                head.append(part)
                kept += len(part)
            size += len(piece)
            if index < last:
                yield Line(start, b"".join(head), size)
                start += size + 1
                head, kept, size = [], 0, 0
    if size:
        yield Line(start, b"".join(head), size, ended=False)
