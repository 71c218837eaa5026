"""Archive readers hold at most ``max_bytes`` of a record whatever its length, and name unreadable files.

Memory is measured with ``tracemalloc`` (bytes allocated by Python, a limit, not a timing): a
reader that accumulated an over-long line would hold all of it.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import random
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.adapters.archive import Record, read_records, read_stream
from connector.adapters.archive_files import walk
from connector.adapters.errors import CorruptArchive, UnreadableFile
from connector.adapters.lines import split_lines

MSG1 = b"MSH|^~\\&|A|F|B|R|20260302101500||RAS^O17|1|P|2.5\rPID|1\rRXA|0|1|20260302101500"
MSG2 = b"MSH|^~\\&|A|F|B|R|20260302101600||RAS^O17|2|P|2.5\rPID|1\rRXA|0|1|20260302101600"
MIB = 1 << 20


class Endless(io.RawIOBase):
    """A stream of ``size`` bytes made on the fly: a prefix, filler, a suffix; counts what was read."""

    def __init__(self, prefix: bytes, size: int, suffix: bytes = b"", filler: bytes = b"A") -> None:
        self.parts = [prefix, filler, suffix]
        self.size, self.position = size, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        prefix, filler, suffix = self.parts
        end = len(prefix) + self.size + len(suffix)
        size = min(size if size >= 0 else end, end - self.position)
        out = bytearray()
        while len(out) < size:
            at = self.position + len(out)
            if at < len(prefix):
                out += prefix[at : at + size - len(out)]
            elif at < len(prefix) + self.size:
                out += filler * min(size - len(out), len(prefix) + self.size - at)
            else:
                start = at - len(prefix) - self.size
                out += suffix[start : start + size - len(out)]
        self.position += len(out)
        return bytes(out)


def peak_while(records: Iterator[Record]) -> tuple[list[Record], int]:
    tracemalloc.start()
    try:
        found = list(records)
        return found, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("seed", range(20))
def test_lines_are_split_as_a_plain_split_would_whatever_the_chunking(seed: int) -> None:
    rng = random.Random(seed)
    data = bytes(rng.choice(b"ab\r\n") for _ in range(rng.randrange(1, 400)))
    cuts = sorted(rng.sample(range(1, len(data) + 1), min(len(data), rng.randrange(1, 12))))
    chunks = [data[a:b] for a, b in zip([0, *cuts], cuts, strict=False)] + [data[cuts[-1] :]]
    limit = rng.randrange(1, 6)
    for breaks, normalised in ((b"\n", data), (b"\r\n", data.replace(b"\n", b"\r"))):
        pieces = normalised.split(breaks[:1] if breaks == b"\n" else b"\r")
        if not pieces[-1]:
            pieces.pop()
        offsets = [sum(len(p) + 1 for p in pieces[:i]) for i in range(len(pieces))]
        found = list(split_lines(chunks, limit, breaks))
        assert [(line.offset, line.data, line.size) for line in found] == [
            (offset, piece[:limit], len(piece)) for offset, piece in zip(offsets, pieces, strict=True)
        ]


def test_a_line_of_64_mib_is_counted_not_held() -> None:
    stream = Endless(b"x", 64 * MIB, b"\nend\n")
    chunks = iter(lambda: stream.read(MIB), b"")
    tracemalloc.start()
    try:
        found = list(split_lines(chunks, 1000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(line.size, len(line.data)) for line in found] == [(64 * MIB + 1, 1000), (3, 3)]
    assert peak < 8 * MIB


def test_an_hl7_segment_without_terminator_is_skipped_to_its_end_and_the_next_message_read() -> None:
    stream = Endless(MSG1 + b"\rNTE|1||", 64 * MIB, b"\r" + MSG2 + b"\r")
    found, peak = peak_while(read_stream(stream, "t", 1000))  # type: ignore[arg-type]
    assert [(r.position, r.oversize) for r in found] == [
        ("byte 0", True),
        (f"byte {len(MSG1) + 9 + stream.size}", False),
    ]
    assert found[1].data == MSG2 and len(found[0].data) <= 1000
    assert peak < 8 * MIB


def test_an_mllp_frame_of_64_mib_is_bounded_and_the_next_frame_read() -> None:
    stream = Endless(b"\x0b" + MSG1 + b"\rNTE|", 64 * MIB, b"\x1c\x0d\x0b" + MSG2 + b"\x1c\x0d")
    found, peak = peak_while(read_stream(stream, "t", 1000))  # type: ignore[arg-type]
    assert [r.oversize for r in found] == [True, False] and found[1].data == MSG2
    assert peak < 8 * MIB


@pytest.mark.parametrize("before", [b"", b'{"resourceType":"Encounter","id":"1"}\n'], ids=["first", "second"])
def test_an_ndjson_line_of_64_mib_is_one_oversize_record_and_the_others_are_read(before: bytes) -> None:
    after = b'"}\n{"resourceType":"Encounter","id":"2"}\n'
    stream = Endless(before + b'{"resourceType":"Encounter","id":"', 64 * MIB, after)
    found, peak = peak_while(read_stream(stream, "t", 1000))  # type: ignore[arg-type]
    big = 2 if before else 1
    assert [(r.position, r.oversize) for r in found][-2:] == [(f"line {big}", True), (f"line {big + 1}", False)]
    assert peak < 8 * MIB


def test_a_json_document_over_the_limit_is_one_oversize_record_and_reading_stops() -> None:
    stream = Endless(b'{\n  "resourceType": "Bundle", "x": "', 1 << 40)  # a terabyte: never read to its end
    found = list(read_stream(stream, "t", 1000))  # type: ignore[arg-type]
    assert [(r.position, r.oversize) for r in found] == [("document", True)]
    assert stream.position <= 2 * MIB


def write_gz(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data, mtime=0))
    return path


def messages(count: int) -> bytes:
    return b"".join(MSG1.replace(b"|1|P", f"|{n}|P".encode()) + b"\r" for n in range(count))


def test_a_truncated_gzip_keeps_the_records_read_and_names_how_far_it_got(tmp_path: Path) -> None:
    data = messages(30_000)  # several read chunks, so records come before the cut
    whole = gzip.compress(data, mtime=0)
    (tmp_path / "cut.hl7.gz").write_bytes(whole[: len(whole) * 3 // 4])
    found = list(read_records([str(tmp_path / "cut.hl7.gz")]))
    *records, fault = found
    assert records and all(r.error is None for r in records)
    assert isinstance(fault.error, CorruptArchive)
    assert fault.error.detail.startswith(f"truncated gzip stream (after {len(records)} records, ")
    assert fault.position == f"byte {int(fault.error.detail.split(', ')[1].split()[0])}"
    assert 0 < int(fault.position.split()[1]) < len(data)


def test_one_corrupt_file_in_a_directory_does_not_stop_the_others(tmp_path: Path) -> None:
    write_gz(tmp_path / "a.hl7.gz", MSG1)
    (tmp_path / "b.hl7.gz").write_bytes(MSG1)  # not gzip
    (tmp_path / "c.hl7.gz").write_bytes(gzip.compress(MSG2)[:-9])  # truncated
    write_gz(tmp_path / "d.hl7", MSG2)  # gzip by its magic bytes
    found = [(Path(r.source).name, r.error.code if r.error else r.format) for r in read_records([str(tmp_path)])]
    assert found == [
        ("a.hl7.gz", "hl7"),
        ("b.hl7.gz", "corrupt_archive"),
        ("c.hl7.gz", "corrupt_archive"),
        ("d.hl7", "hl7"),
    ]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"\xff\xff\xff", "corrupt gzip data"),
        (gzip.compress(MSG1) + b"junk", "data after a gzip member that is not gzip"),
        (gzip.compress(MSG1)[:-8] + b"\x00\x00\x00\x00" + gzip.compress(MSG1)[-4:], "gzip checksum mismatch"),
        (b"\x1f\x8b\x07" + gzip.compress(MSG1)[3:], "unknown gzip compression method"),
        (b"MSH|not gzip", "not a gzip stream"),
    ],
    ids=["corrupt-deflate", "trailing-junk", "crc", "method", "not-gzip"],
)
def test_gzip_failures_are_named_without_quoting_the_file(tmp_path: Path, data: bytes, words: str) -> None:
    path = tmp_path / "x.hl7.gz"
    path.write_bytes(data)
    [fault] = read_records([str(path)])
    assert isinstance(fault.error, CorruptArchive)
    assert fault.error.detail.startswith(words)
    assert "b'" not in fault.error.detail and "MSH" not in fault.error.detail and "junk" not in fault.error.detail


def test_fifos_dangling_links_and_link_loops_below_a_directory_are_reported_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "a-fifo")  # opened for reading, it would block until a writer came
    (tmp_path / "b-dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "c-loop").symlink_to(tmp_path / "c-loop")
    (tmp_path / "d-sub").mkdir()
    (tmp_path / "d-sub" / "up").symlink_to(tmp_path)
    (tmp_path / "e.hl7").write_bytes(MSG1)
    found = [
        (Path(path).relative_to(tmp_path).as_posix(), fault and fault.detail) for path, fault in walk([str(tmp_path)])
    ]
    assert found == [
        ("a-fifo", "not a regular file (FIFO, socket or device): not read"),
        ("b-dangling", "no such file (a dangling symbolic link?)"),
        ("c-loop", "symbolic link loop"),
        ("d-sub/up", "symbolic link loop (a directory inside itself)"),
        ("e.hl7", None),
    ]


def test_a_directory_that_cannot_be_listed_is_one_reject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Injected: the tests run as root in CI, and root lists a mode-000 directory."""
    (tmp_path / "sub").mkdir()
    real = os.scandir

    def scandir(path: str) -> object:
        if str(path).endswith("sub"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    [record] = read_records([str(tmp_path)])
    assert isinstance(record.error, UnreadableFile)
    assert record.error.detail == "directory cannot be listed: permission denied"


def test_a_file_that_cannot_be_opened_is_one_reject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Injected PermissionError at open (root opens a mode-000 file; the CLI test covers non-root)."""
    (tmp_path / "a.hl7").write_bytes(MSG1)
    (tmp_path / "b.hl7").write_bytes(MSG2)
    real = open

    def refuse(name: str, mode: str = "r") -> object:
        if name.endswith("a.hl7"):
            raise PermissionError(errno.EACCES, "Permission denied", name)
        return real(name, mode)

    monkeypatch.setattr("builtins.open", refuse)
    found = list(read_records([str(tmp_path)]))
    assert [(Path(r.source).name, r.error.code if r.error else r.data) for r in found] == [
        ("a.hl7", "unreadable_file"),
        ("b.hl7", MSG2),
    ]
    assert found[0].error is not None and found[0].error.detail == "permission denied (after 0 records, 0 bytes read)"


def test_publish_skips_what_it_cannot_publish_whole_and_names_it(capsys: pytest.CaptureFixture[str]) -> None:
    from connector.cli.publish import _whole  # noqa: PLC0415 - the CLI's filter, tested alone (no broker)

    records = [
        Record("a.hl7", "byte 0", "hl7", MSG1),
        Record("a.hl7", "byte 90", "hl7", b"MSH|cut", oversize=True),
        Record("b.hl7.gz", "byte 0", "unknown", b"", error=CorruptArchive("truncated gzip stream")),
    ]
    skipped: list[str] = []
    assert [r.data for r in _whole(records, skipped)] == [MSG1]
    assert skipped == ["a.hl7@byte 90", "b.hl7.gz@byte 0"]
    assert capsys.readouterr().err.splitlines() == [
        "skipped a.hl7@byte 90: oversize_input",
        "skipped b.hl7.gz@byte 0: corrupt_archive",
    ]
