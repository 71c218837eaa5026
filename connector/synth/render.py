r"""Synthetic feeds as bytes: HL7 v2.5.1 RAS^O17/ADT^A03 archives and FHIR R4 NDJSON.

Renders the stream of ``connector.synth.feed.timeline`` the way hospital interfaces send it
(``connector.synth.hl7``, ``connector.synth.fhir``), so benchmarks and tests read realistic
archives of any length without shipping any. Everything is a pure function of the seed;
writing streams, so a million-record archive is never held in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

from connector.synth.feed import ADMINISTERED, CORRECTED, DISCHARGED, FeedEvent, feed_encounters, timeline
from connector.synth.fhir import fhir_line
from connector.synth.hl7 import hl7_message

FORMATS: Final = ("hl7", "fhir")
_FLUSH_EVERY: Final = 1024


@dataclass(frozen=True, slots=True)
class FeedStats:
    """What a written feed holds (records = messages or NDJSON lines)."""

    records: int
    encounters: int
    administrations: int
    corrections: int
    bytes: int


def renderer(fmt: str, seed: int) -> Callable[[FeedEvent, int], bytes]:
    """The function that renders the ``sequence``-th event (1-based) of a feed in ``fmt``.

    HL7 control ids (MSH-10) are ``S<seed>-<sequence>``: unique in the feed, same every run.

    Raises:
        ValueError: Unknown format.
    """
    if fmt == "hl7":
        prefix = f"S{seed}-"

        def hl7(event: FeedEvent, sequence: int) -> bytes:
            return hl7_message(event, f"{prefix}{sequence:09d}")

        return hl7
    if fmt == "fhir":
        return lambda event, _sequence: fhir_line(event)
    raise ValueError(f"unknown feed format '{fmt}' (known: {', '.join(FORMATS)})")


def events(seed: int, encounters: int | None = None, limit: int | None = None) -> Iterator[FeedEvent]:
    """The events of a synthetic feed in sending order.

    Args:
        seed: Same seed, same events.
        encounters: How many encounters (all of their events are sent).
        limit: Stop starting encounters once this many events are under way (the ones
            started are finished). At least one of ``encounters``/``limit`` is needed.

    Raises:
        ValueError: Neither bound given.
    """
    if encounters is None and limit is None:
        raise ValueError("give a number of encounters or of records")
    return timeline(feed_encounters(seed, encounters), limit)


def records(fmt: str, seed: int, encounters: int | None = None, limit: int | None = None) -> Iterator[bytes]:
    """The records of a synthetic feed, one at a time: an HL7 message or an NDJSON line each.

    Arguments as for ``events``; ``fmt`` is ``hl7`` or ``fhir``.
    """
    render = renderer(fmt, seed)
    for sequence, event in enumerate(events(seed, encounters, limit), start=1):
        yield render(event, sequence)


def write_feed(
    out: BinaryIO, fmt: str, seed: int, encounters: int | None = None, limit: int | None = None
) -> FeedStats:
    """Write a synthetic feed to a binary stream in chunks, so memory stays flat.

    Arguments as for ``records``; returns what was written.
    """
    render = renderer(fmt, seed)
    count = written = closed = administrations = corrections = 0
    chunk: list[bytes] = []
    for count, event in enumerate(events(seed, encounters, limit), start=1):
        chunk.append(render(event, count))
        if event.kind == ADMINISTERED:
            administrations += 1
        elif event.kind == CORRECTED:
            corrections += 1
        elif event.kind == DISCHARGED:
            closed += 1
        if len(chunk) >= _FLUSH_EVERY:
            written += out.write(b"".join(chunk))
            chunk.clear()
    if chunk:
        written += out.write(b"".join(chunk))
    out.flush()
    return FeedStats(count, closed, administrations, corrections, written)
