"""Checksums of ivpush's outputs, to show that a performance change is behaviour-neutral.

Run it before a change (``--save before.json``) and after (``--compare before.json``): every
line must match. What is hashed (sha256):

- ``replay``: the bytes ``ivpush replay`` writes (``--out``) and its rejects file, for the
  seeded synthetic HL7 and FHIR archives (``--records``, default 100,000 each) and every file
  under ``--samples``, in each output mode of ``MODES``. Each
  replay is its own process with a fresh SQLite state, zone ``America/New_York``. The default
  samples: the public ones beside the repository and ``examples/feeds``.
- ``parse``: every record of the same archives through ``read_record``: the parsed records,
  or the reject's code and detail, canonically (sets sorted).

File paths enter both as the file's name only (``SourceRef.file``, the rejects' ``source``), so
checksums of two copies of the code, in two directories, compare.
- ``evaluate``: ``rules.evaluate`` over the rules benchmark's synthetic encounters (5, 20 and
  200 administrations each, same seeds), canonically.

The synthetic archives are written once into ``--work`` and reused (same seed, same bytes).
The replay output order is deterministic (one process, records in file order), so the hash
is of the bytes as written. ``python -m benchmarks.checksums --help`` for the options.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

from connector.adapters.archive import DEFAULT_MAX_BYTES, read_records
from connector.adapters.dispatch import read_record
from connector.adapters.errors import AdapterError
from connector.bootstrap import local_zone
from connector.policy.loader import load_policy
from connector.rules import evaluate
from connector.synth.encounters import encounters
from connector.synth.render import write_feed

ROOT = Path(__file__).resolve().parent.parent
ZONE = "America/New_York"
SEEDS = {"hl7": 301, "fhir": 302}  # as benchmarks.replay_bench
EXTENSIONS = {"hl7": "hl7", "fhir": "ndjson"}
MODES = {  # name: extra ``ivpush replay`` options
    "json": ["--format", "json"],
    "json-change": ["--format", "json", "--emit-on", "change"],
    "dft": ["--format", "dft"],
    "chargeitem": ["--format", "chargeitem"],
}
RULES_PLAN = ((5, 1000), (20, 2000), (200, 100))  # (administrations per encounter, encounters)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canon(value: Any) -> Any:
    """A JSON-able form of a model value, independent of hash randomisation (sets sorted)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [type(value).__name__, *(canon(getattr(value, f.name)) for f in dataclasses.fields(value))]
    if isinstance(value, (frozenset, set)):
        return sorted(canon(item) for item in value)
    if isinstance(value, (tuple, list)):
        return [canon(item) for item in value]
    if isinstance(value, dict):
        return [[canon(k), canon(v)] for k, v in value.items()]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)  # datetime, date, Decimal, tzinfo: deterministic reprs


def archives(work: Path, records: int, samples: list[Path]) -> Iterator[tuple[str, Path]]:
    """(name, path) of the synthetic archives (written if missing) and of every sample file."""
    for fmt, seed in SEEDS.items():
        if not records:
            break
        path = work / f"synth-{fmt}-{records}-{seed}.{EXTENSIONS[fmt]}"
        if not path.exists():
            partial = path.with_suffix(".partial")
            with partial.open("wb") as out:
                write_feed(out, fmt, seed, limit=records)
            partial.rename(path)
        yield f"synth-{fmt}-{records}", path
    for folder in samples:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".hl7", ".json", ".ndjson")):
            yield f"sample:{folder.name}/{path.relative_to(folder)}", path


def replay(path: Path, mode: str, scratch: Path) -> tuple[str, str]:
    """sha256 of the output and of the rejects of one ``ivpush replay`` in ``mode``."""
    out, rejects, state = scratch / "out", scratch / "rejects.ndjson", scratch / "state.db"
    for stale in (out, rejects, state):
        stale.unlink(missing_ok=True)
    command = [str(Path(sys.executable).with_name("ivpush")), "replay", str(path), "--state", str(state)]
    command += ["--out", str(out), "--rejects", str(rejects), "--zone", ZONE, *MODES[mode]]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"replay {path} {mode} exited {done.returncode}: {done.stderr[-800:]!r}")
    # Reject lines name the file read: its name only, so the digest does not depend on where it is.
    rejected = rejects.read_bytes().replace(json.dumps(str(path)).encode(), json.dumps(path.name).encode())
    return _sha(out.read_bytes()), _sha(rejected)


def parse_digest(path: Path, policy: Any) -> str:
    """sha256 over every record of ``path`` as ``read_record`` reads it (records or reject)."""
    digest = hashlib.sha256()
    zone = local_zone(ZONE)
    for read in read_records([str(path)], DEFAULT_MAX_BYTES):
        record = dataclasses.replace(read, source=path.name)  # the same digest wherever the file is
        try:
            parsed: Any = read_record(record, policy, zone, DEFAULT_MAX_BYTES)
        except AdapterError as error:
            parsed = ["reject", error.code, error.detail]
        digest.update(json.dumps(canon(parsed)).encode() + b"\n")
    return digest.hexdigest()


def evaluate_digests(policy: Any) -> dict[str, str]:
    """sha256 of ``evaluate`` over the rules benchmark's encounters, per size."""
    result = {}
    for size, count in RULES_PLAN:
        digest = hashlib.sha256()
        for item in encounters(seed=size, count=count, size=size):
            digest.update(json.dumps(canon(evaluate(item, policy))).encode() + b"\n")
        result[f"evaluate-{size}x{count}"] = digest.hexdigest()
    return result


def main(argv: list[str] | None = None) -> int:
    """Print (and save or compare) the checksums; exit 1 when a comparison differs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="Records per synthetic archive (0: none).")
    parser.add_argument(
        "--samples", type=Path, nargs="*", default=[ROOT.parent / "shared" / "samples", ROOT / "examples" / "feeds"]
    )
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ivpush-checksums")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--skip-replay", action="store_true", help="Only the in-process parse/evaluate digests.")
    parser.add_argument("--save", type=Path, help="Write the checksums here (JSON).")
    parser.add_argument("--compare", type=Path, help="Compare with checksums saved earlier.")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    policy = load_policy()
    sums: dict[str, str] = {}
    started = time.monotonic()
    for name, path in archives(args.work, args.records, args.samples):
        sums[f"parse {name}"] = parse_digest(path, policy)
        print(f"{sums[f'parse {name}']}  parse {name}", flush=True)
        if args.skip_replay:
            continue
        with tempfile.TemporaryDirectory(prefix="ivpush-checksums-") as scratch:
            for mode in args.modes:
                out_sum, rejects_sum = replay(path, mode, Path(scratch))
                sums[f"replay {name} {mode}"], sums[f"rejects {name} {mode}"] = out_sum, rejects_sum
                print(f"{out_sum}  replay {name} {mode}\n{rejects_sum}  rejects {name} {mode}", flush=True)
    for key, value in evaluate_digests(policy).items():
        sums[key] = value
        print(f"{value}  {key}", flush=True)
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    if args.save:
        args.save.write_text(json.dumps(sums, indent=1) + "\n")
    if args.compare:
        before = json.loads(args.compare.read_text())
        differ = sorted(k for k in sums.keys() & before.keys() if sums[k] != before[k])
        print(f"compared {len(sums.keys() & before.keys())} checksums: {len(differ)} differ", file=sys.stderr)
        for key in differ:
            print(f"DIFFERS: {key}", file=sys.stderr)
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
