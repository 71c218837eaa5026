"""Hostile files that must be made at test time: gzip bombs, unreadable files, FIFOs, links, directories.

Each runs the real ``ivpush replay`` in its own process, as a user would. The memory bounds are
checked with an address-space limit on that process (``RLIMIT_AS``), a limit, not a timing: a
normal replay of the samples needs about 90 MiB of address space here, so 300 MiB leaves room
for any platform, and is what the issue asks of peak RSS (RSS never exceeds the address space).
A reader that held a 2 GiB line, or 400 records of 900 KB at once, dies of ``MemoryError``.

The bombs are built by compressing a 1 MiB block once and repeating its deflate output (each
copy follows a full flush, so they are identical): 2 GiB of input costs a second to build.
"""

from __future__ import annotations

import json
import os
import resource
import struct
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

IVPUSH = Path(sys.executable).parent / "ivpush"
LIMIT = 300 << 20
MIB = 1 << 20
ZONE = "America/New_York"


def message(n: int, visit: str, extra: bytes = b"") -> bytes:
    """A RAS^O17 with one IV push on its own encounter (invented patient)."""
    return (
        f"MSH|^~\\&|EPIC|GENHOSP|IVPUSH|GENHOSP|20260302101500-0500||RAS^O17^RAS_O17|B{n:05d}|P|2.5.1\r"
        f"PID|1||MRN7{n:05d}^^^GENHOSP^MR||ZZPLOVER^ANSELM||19800101|F\r"
        f"PV1|1|E|ED^B12^01^GENHOSP||||9999^DOCTOR^TEST||||||||||||{visit}^^^GENHOSP^VN\r"
        f"ORC|RE|ORD{n}^EPC|FIL{n}^EPC\r"
        "RXA|0|1|20260302101500||313002^ondansetron 2 MG/ML Injectable Solution^RXNORM|4|mg"
        "|||||||||||||CP||20260302101800\r"
        "RXR|IV^Intravenous^HL70162|LA^Left Arm^HL70163||IVP^IV Push^HL70165\r"
    ).encode() + extra


def fhir_line(n: int, visit: str) -> bytes:
    """One MedicationAdministration NDJSON line, an IV push on its own encounter."""
    return (
        json.dumps(
            {
                "resourceType": "MedicationAdministration",
                "id": f"ma-{visit}-{n}",
                "status": "completed",
                "medicationCodeableConcept": {"text": "Zofran 4 mg IV"},
                "subject": {"reference": f"Patient/MRN6{n:04d}"},
                "context": {"reference": f"Encounter/{visit}"},
                "effectiveDateTime": "2026-03-02T10:15:00-05:00",
                "dosage": {
                    "route": {"coding": [{"system": "http://snomed.info/sct", "code": "47625008"}]},
                    "method": {"text": "IV push"},
                },
            },
            separators=(",", ":"),
        ).encode()
        + b"\n"
    )


def write_bomb(path: Path, parts: Sequence[bytes | tuple[bytes, int]]) -> int:
    """A gzip file of ``parts``: bytes as they are, ``(block, n)`` as ``block`` n times; its decompressed size."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    crc = size = 0
    with path.open("wb") as out:
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
        for part in parts:
            block, times = (part, 1) if isinstance(part, bytes) else part
            packed = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
            for _ in range(times):
                out.write(packed)
                crc = zlib.crc32(block, crc)
            size += len(block) * times
        out.write(compressor.flush(zlib.Z_FINISH) + struct.pack("<II", crc, size & 0xFFFFFFFF))
    return size


def replay(
    *args: str | Path, limit: int | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    def cap() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    command = [str(IVPUSH), "replay", "--zone", ZONE, *map(str, args)]
    return subprocess.run(command, capture_output=True, input=stdin, preexec_fn=cap, timeout=900, check=False)


def rejects_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def net_visits(out: Path) -> dict[str, list[str]]:
    """Net charge codes by visit number."""
    current: dict[str, dict[str, str]] = {}
    for text in out.read_text().splitlines() if out.exists() else []:
        msg = json.loads(text)
        lines = current.setdefault(msg["encounter"]["id"], {})
        for line in msg["lines"]:
            if line["action"] == "charge":
                lines[line["line_id"]] = line["code"]
            else:
                lines.pop(line["line_id"], None)
    return {visit: sorted(codes.values()) for visit, codes in current.items() if codes}


def test_the_address_space_limit_is_tight_enough_to_catch_a_reader_that_holds_a_line() -> None:
    holding = subprocess.run(
        [sys.executable, "-c", f"data = b'A' * {LIMIT}"],
        capture_output=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT)),
        timeout=120,
        check=False,
    )
    assert holding.returncode != 0 and b"MemoryError" in holding.stderr


def test_a_replay_of_the_samples_fits_in_the_limit(tmp_path: Path) -> None:
    samples = Path(__file__).resolve().parents[1] / "samples"
    done = replay(samples, "--state", tmp_path / "s.db", "--out", tmp_path / "o", "--format", "chargeitem", limit=LIMIT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "o").stat().st_size > 0


@pytest.mark.parametrize("fmt", ["hl7", "ndjson"])
def test_a_gzip_of_one_2_gib_line_is_one_oversize_reject_within_the_limit(fmt: str, tmp_path: Path) -> None:
    bomb = tmp_path / f"bomb.{fmt}.gz"
    if fmt == "hl7":  # HL7 without a terminator: one segment of 2 GiB, between two good messages
        head = message(1, "V3001") + message(2, "V3002")[:-1] + b"|NTE|1||"
        size = write_bomb(bomb, [head, (b"A" * MIB, 2048), b"\r" + message(3, "V3003")])
        where = f"byte {len(message(1, 'V3001'))}"
    else:  # one NDJSON line of 2 GiB between two good lines
        head = fhir_line(1, "V3001") + b'{"resourceType":"MedicationAdministration","id":"'
        size = write_bomb(bomb, [head, (b"A" * MIB, 2048), b'"}\n' + fhir_line(3, "V3003")])
        where = "line 2"
    assert size > 2 << 30 and bomb.stat().st_size < 3 * MIB
    out, rejects = tmp_path / "out.ndjson", tmp_path / "rejects.ndjson"
    done = replay(bomb, "--out", out, "--rejects", rejects, limit=LIMIT)
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr[-3000:]
    assert [(r["code"], r["position"]) for r in rejects_of(rejects)] == [("oversize_input", where)]
    assert net_visits(out) == {"V3001": ["96374"], "V3003": ["96374"]}


def test_a_gzip_of_a_2_gib_json_document_is_one_oversize_reject_within_the_limit(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.json.gz"
    write_bomb(bomb, [b'{\n  "resourceType": "Bundle",\n  "id": "', (b"A" * MIB, 2048), b'"\n}\n'])
    rejects = tmp_path / "rejects.ndjson"
    done = replay(bomb, "--out", tmp_path / "out", "--rejects", rejects, limit=LIMIT)
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr[-3000:]
    assert [(r["code"], r["position"]) for r in rejects_of(rejects)] == [("oversize_input", "document")]


def test_four_hundred_records_just_under_the_limit_are_not_held_at_once(tmp_path: Path) -> None:
    """360 MB of records, each under --max-bytes: batches are bounded by bytes as well as by count."""
    filler = b"ZNT|1|" + b"A" * (900 * 1024) + b"\r"
    bomb = tmp_path / "big-records.hl7.gz"
    write_bomb(bomb, [part for n in range(400) for part in (message(n, f"V4{n:03d}"), filler)])
    out, rejects = tmp_path / "out.ndjson", tmp_path / "rejects.ndjson"
    done = replay(bomb, "--out", out, "--rejects", rejects, limit=LIMIT)
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr[-3000:]
    assert rejects_of(rejects) == []
    assert net_visits(out) == {f"V4{n:03d}": ["96374"] for n in range(400)}


def test_a_directory_of_broken_and_odd_files_is_rejects_while_the_good_files_are_charged(tmp_path: Path) -> None:
    feed = tmp_path / "feed"
    feed.mkdir()
    (feed / "a-good.hl7").write_bytes(message(90001, "V5001"))
    (feed / "b-corrupt.hl7.gz").write_bytes(b"\x1f\x8b\x08\x00" + bytes(6) + b"\xff" * 40)
    data = b"".join(message(n, f"T{n:04d}") for n in range(8000))  # read chunks (1 MiB) before the cut
    whole = zlib.compress(data, wbits=31)
    (feed / "c-truncated.hl7.gz").write_bytes(whole[: len(whole) * 3 // 4])
    (feed / "d-not-gzip.hl7.gz").write_bytes(message(90002, "V5002"))
    (feed / "e-empty.hl7").write_bytes(b"")
    (feed / "f-garbage.hl7").write_bytes(bytes(range(256)) * 8)
    os.mkfifo(feed / "g-fifo.hl7")
    (feed / "h-dangling.hl7").symlink_to(tmp_path / "gone.hl7")
    (feed / "i-loop.hl7").symlink_to(feed / "i-loop.hl7")
    (feed / "j-read-error.hl7").symlink_to("/proc/self/mem")  # opens, then EIO at offset 0, root or not
    (feed / "k-directory.hl7").mkdir()  # a directory named like a file is a directory: read below it
    (feed / "k-directory.hl7" / "inside.hl7").write_bytes(message(90003, "V5003"))
    (feed / "l-parent").symlink_to(feed)
    (feed / "m-good.hl7.gz").write_bytes(zlib.compress(message(90004, "V5004"), wbits=31))
    out, rejects = tmp_path / "out.ndjson", tmp_path / "rejects.ndjson"

    done = replay(feed, "--out", out, "--rejects", rejects)

    assert done.returncode == 0 and b"Traceback" not in done.stderr and b"Aborted" not in done.stderr, done.stderr
    found = {Path(r["source"]).name: (r["code"], r["position"], r["detail"]) for r in rejects_of(rejects)}
    assert {name: code for name, (code, _, _) in found.items()} == {
        "b-corrupt.hl7.gz": "corrupt_archive",
        "c-truncated.hl7.gz": "corrupt_archive",
        "d-not-gzip.hl7.gz": "corrupt_archive",
        "f-garbage.hl7": "not_hl7",
        "g-fifo.hl7": "unreadable_file",
        "h-dangling.hl7": "unreadable_file",
        "i-loop.hl7": "unreadable_file",
        "j-read-error.hl7": "unreadable_file",
        "l-parent": "unreadable_file",
    }
    _, position, detail = found["c-truncated.hl7.gz"]
    read = int(position.removeprefix("byte "))
    assert (
        0 < read < len(data) and detail.startswith("truncated gzip stream (after ") and f", {read} bytes read" in detail
    )
    truncated = {v for v in net_visits(out) if v.startswith("T")}
    assert 0 < len(truncated) < 8000  # the messages before the cut are charged
    assert {"V5001", "V5003", "V5004"} <= set(net_visits(out))
    assert b"unreadable_file x5" in done.stderr and b"corrupt_archive x3" in done.stderr


def test_a_mode_000_file_is_an_unreadable_file_reject(tmp_path: Path) -> None:
    """As a user, a mode-000 file cannot be opened: one reject, the other files are read.

    Root reads a mode-000 file (CAP_DAC_OVERRIDE), and CI runs as root: there the file is read
    like any other, which this asserts instead. A failed open as root is covered by the
    ``/proc/self/mem`` link of the directory test (a real EIO) and by an injected
    PermissionError in ``tests/unit/test_archive_bounds.py``.
    """
    (tmp_path / "a.hl7").write_bytes(message(1, "V6001"))
    (tmp_path / "a.hl7").chmod(0)
    (tmp_path / "b.hl7").write_bytes(message(2, "V6002"))
    out, rejects = tmp_path / "out.ndjson", tmp_path / "rejects.ndjson"
    done = replay(tmp_path / "a.hl7", tmp_path / "b.hl7", "--out", out, "--rejects", rejects)
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr
    if os.geteuid() == 0:
        assert rejects_of(rejects) == [] and set(net_visits(out)) == {"V6001", "V6002"}
    else:
        assert [(Path(r["source"]).name, r["code"], r["detail"]) for r in rejects_of(rejects)] == [
            ("a.hl7", "unreadable_file", "permission denied (after 0 records, 0 bytes read)")
        ]
        assert set(net_visits(out)) == {"V6002"}


def test_a_missing_path_is_a_usage_error_on_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.hl7").write_bytes(message(1, "V7001"))
    out = tmp_path / "out.ndjson"
    done = replay(tmp_path / "a.hl7", tmp_path / "missing.hl7", tmp_path / "nodir" / "x.hl7", "--out", out)
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        f"error: no such file or directory: {tmp_path / 'missing.hl7'}, {tmp_path / 'nodir' / 'x.hl7'}"
    ]
    assert not out.exists()  # nothing replayed: the command is wrong as a whole


def test_an_output_file_that_cannot_be_opened_is_a_usage_error_on_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.hl7").write_bytes(message(1, "V7002"))
    done = replay(tmp_path / "a.hl7", "--out", tmp_path)
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [f"error: cannot write {tmp_path}: Is a directory"]


def test_gzip_on_standard_input_is_recognised_by_its_magic_bytes(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    done = replay("-", "--out", out, stdin=zlib.compress(message(1, "V7003") + message(2, "V7004"), wbits=31))
    assert done.returncode == 0, done.stderr
    assert set(net_visits(out)) == {"V7003", "V7004"}


def test_a_corrupt_gzip_on_standard_input_is_one_reject(tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.ndjson"
    done = replay("-", "--out", tmp_path / "out", "--rejects", rejects, stdin=b"\x1f\x8b\x08\x00" + b"\xff" * 20)
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr
    assert Counter(r["code"] for r in rejects_of(rejects)) == {"corrupt_archive": 1}
