r"""MLLP framing without I/O: bytes in, frames (or why there is none) out.

A frame is ``<VT> message <FS><CR>`` (0x0B … 0x1C 0x0D). The decoder is lenient where senders
differ and strict where a message could be lost or mixed up:

- white space between frames (the ``<CR>`` after ``<FS>``, stray line ends) is ignored, and
  ``<FS>`` alone ends a frame (the ``<CR>`` that should follow it is then that white space);
- bytes before ``<VT>`` make the frame ``Unframed``: it is answered (``AR``), never guessed at;
- a frame larger than ``max_bytes`` is not kept: its first bytes (for the ACK's MSH-10) and its
  size are reported as ``Oversize`` once its ``<FS>`` arrives.
"""

from __future__ import annotations

from dataclasses import dataclass

START = b"\x0b"
END = b"\x1c"
CR = b"\x0d"
HEAD_BYTES = 4096
"""Bytes kept of an oversize or unframed frame: enough for its MSH segment (the ACK's fields)."""
_BLANK = b" \t\r\n"


@dataclass(frozen=True, slots=True)
class Frame:
    """A complete message (framing removed)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Oversize:
    """A frame larger than the limit: its first bytes and its size."""

    head: bytes
    size: int


@dataclass(frozen=True, slots=True)
class Unframed:
    """Bytes ended by ``<FS>`` that did not start with ``<VT>``: their first bytes and size."""

    head: bytes
    size: int


Event = Frame | Oversize | Unframed


def wrap(message: bytes) -> bytes:
    """One message in its MLLP frame."""
    return START + message + END + CR


class MllpDecoder:
    """Incremental decoder: ``feed`` the bytes read, get the frames they complete.

    Args:
        max_bytes: Largest frame content kept, in bytes.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self._started = False  # inside a frame (a <VT> or another non-blank byte was seen)
        self._framed = False  # the frame began with <VT>
        self._size = 0  # content bytes of the current frame, kept or not
        self._head = b""  # first bytes of a frame that is no longer kept

    @property
    def pending(self) -> bool:
        """A frame has begun and not ended (a connection closed now would cut it)."""
        return self._started

    def feed(self, chunk: bytes) -> list[Event]:
        """Consume bytes; the frames they complete, in order."""
        events: list[Event] = []
        pos, size = 0, len(chunk)
        while pos < size:
            if not self._started:
                while pos < size and chunk[pos] in _BLANK:
                    pos += 1
                if pos == size:
                    break
                self._started = True
                self._framed = chunk[pos] == START[0]
                pos += 1 if self._framed else 0
                continue
            end = chunk.find(END, pos)
            self._take(chunk[pos:] if end < 0 else chunk[pos:end])
            if end < 0:
                break
            events.append(self._finish())
            pos = end + 1
        return events

    def _take(self, part: bytes) -> None:
        self._size += len(part)
        if self._framed and self._size <= self.max_bytes:
            self._buffer += part
            return
        if self._buffer:  # the frame just outgrew the limit: keep only its beginning from now on
            self._head = bytes(self._buffer[:HEAD_BYTES])
            self._buffer.clear()
        if len(self._head) < HEAD_BYTES:
            self._head += part[: HEAD_BYTES - len(self._head)]

    def _finish(self) -> Event:
        event: Event
        if not self._framed:
            event = Unframed(self._head, self._size)
        elif self._size > self.max_bytes:
            event = Oversize(self._head, self._size)
        else:
            event = Frame(bytes(self._buffer))
        self._buffer.clear()
        self._started = self._framed = False
        self._size = 0
        self._head = b""
        return event
