"""Replay's output rule (append, cut a torn line, mark sent only what is on disk) and its bounded batches."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from connector.adapters.archive import Record
from connector.cli.replay_io import batches, drain, open_output
from connector.store.base import OutboxRow


class Outbox:
    """A store's outbox relay half, recording what the output file held when rows were marked sent."""

    def __init__(self, rows: list[OutboxRow], out: Path) -> None:
        self.rows, self.out = rows, out
        self.on_disk_when_marked: list[bytes] = []

    def pending(self, limit: int = 1000) -> list[OutboxRow]:
        return self.rows[:limit]

    def mark_sent(self, keys: Iterable[tuple[str, str]]) -> None:
        self.on_disk_when_marked.append(self.out.read_bytes())  # read through another descriptor
        sent = set(keys)
        self.rows = [r for r in self.rows if (r.message_id, r.format) not in sent]


def test_rows_are_marked_sent_only_once_they_are_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "out.ndjson"
    rows = [OutboxRow(f"msg-{n}", "e", "json", b'{"n":%d}' % n) for n in range(2500)]
    store = Outbox(rows, path)
    with open_output(str(path), append=True) as out:
        assert drain(store, out) == 2500  # type: ignore[arg-type]
    expected = b"".join(b'{"n":%d}\n' % n for n in range(2500))
    assert store.on_disk_when_marked == [expected[: expected.index(b'{"n":%d}' % n)] for n in (1000, 2000)] + [expected]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (b"", b""),
        (b'{"a":1}\n', b'{"a":1}\n'),
        (b'{"a":1}\n{"b":', b'{"a":1}\n'),
        (b'{"torn', b""),
        (b"x\n" + b"y" * 200_000, b"x\n"),  # the last newline is more than one read block back
    ],
    ids=["empty", "whole", "torn", "torn-only", "torn-long"],
)
def test_appending_first_cuts_a_last_line_left_without_its_newline(before: bytes, after: bytes, tmp_path: Path) -> None:
    path = tmp_path / "out.ndjson"
    path.write_bytes(before)
    with open_output(str(path), append=True) as out:
        out.write(b"new\n")
    assert path.read_bytes() == after + b"new\n"


def test_without_append_the_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "out.ndjson"
    path.write_bytes(b"old\n")
    with open_output(str(path), append=False) as out:
        out.write(b"new\n")
    assert path.read_bytes() == b"new\n"


def test_batches_close_at_their_size_or_once_they_hold_the_byte_budget() -> None:
    records = [Record("s", f"byte {n}", "hl7", b"x" * size) for n, size in enumerate([10, 10, 60, 10, 10, 10, 10])]
    sizes = [[len(r.data) for r in batch] for batch in batches(iter(records), 3, budget=50)]
    assert sizes == [[10, 10, 60], [10, 10, 10], [10]]
