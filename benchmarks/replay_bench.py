"""Replay: records/s and peak RSS of ``ivpush replay`` on synthetic HL7 v2 and FHIR archives.

For each format and size, a seeded archive is written to a temp dir (``connector.synth.render``)
and three programs read it, each in its own process so that its peak RSS is its own (taken
from ``os.wait4``'s rusage of that child):

- ``cat FILE > /dev/null``: the I/O floor (run twice, the faster run kept: page cache warm).
- ``parse``: ``read_records`` + the adapter for each record (``parse_record``), nothing else;
  timed inside the child, after imports and policy load.
- ``replay``: ``ivpush replay FILE --state <tmp>/state.db --out /dev/null --zone
  America/New_York``: adapters, SQLite state, rules, deltas, JSON output. Timed from outside;
  the ``net`` rate subtracts the replay's start-up, so small archives are not dominated by it.

The start-up subtracted is measured the same way and at the same time as the replay it is
subtracted from: the same command and options on an empty archive of the same format (the
interpreter, every import of a replay, the policy load, a new SQLite state), through the same
wrapper, run just before and just after that replay; the smaller of the two is subtracted (so
the net rate errs low). Both are recorded. (Until issue #15 it was one ``ivpush --version`` run
first, with a cold page cache: 1.6 s wall for 0.95 s CPU, more than a replay's own start-up,
which made a quick FHIR replay look faster than its own parse step.)

Rates per CPU-second (user + system time of the child, start-up subtracted likewise) are the
per-core figures: each program is single-threaded; the notes give the replay/parse ratio in
CPU seconds beside the table's wall-clock one. Targets (reported, never asserted): replay
≥ 10,000 HL7 records/s and ≥ 2,000 FHIR records/s per core with SQLite state; peak RSS
< 300 MB at 1M records; ``--jobs 2`` ≥ 1.7 × ``--jobs 1`` (wall clock, both net of their start-up,
measured in the same run on the same archive into a new state).

``python -m benchmarks.replay_bench parse FILE`` is the parse child; ``python -m
benchmarks.replay_bench cat --sizes 100000 1000000`` measures the ``cat`` floor alone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.adapters.archive import DEFAULT_MAX_BYTES, read_records
from connector.adapters.dispatch import parse_record
from connector.adapters.errors import AdapterError
from connector.bootstrap import local_zone
from connector.policy.loader import load_policy
from connector.synth.render import write_feed

ROOT = Path(__file__).resolve().parent.parent
ZONE_NAME = "America/New_York"
SEEDS = {"hl7": 301, "fhir": 302}
EXTENSIONS = {"hl7": "hl7", "fhir": "ndjson"}
TARGET_RECORDS_PER_S = {"hl7": 10_000, "fhir": 2_000}
TARGET_PEAK_RSS_MB = 300
RSS_TARGET_AT = 1_000_000
LARGE_BATCH = 5_000  # also replayed with --batch-size 5000 (default 500), on archives above it and up to:
LARGE_BATCH_UP_TO = 100_000
JOBS = 2  # also replayed with --jobs 2 (a new state), reported as a speed-up over --jobs 1 in the same run
TARGET_JOBS_SPEEDUP = 1.7


@dataclass(frozen=True)
class Child:
    """One finished child process: wall and CPU seconds, peak RSS, exit status and output."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    status: int
    stdout: str
    stderr: str


_SPAWNER = """import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(f"{usage.ru_maxrss} {usage.ru_utime} {usage.ru_stime} {os.waitstatus_to_exitcode(status)}")
"""


def _gnu_time() -> str | None:
    path = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    if path is None:
        return None
    probe = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    return path if "GNU" in probe.stdout + probe.stderr else None


GNU_TIME = _gnu_time()
RSS_METHOD = (
    "GNU time %M (the child's own peak; ~1 MB of time's pages)"
    if GNU_TIME
    else "wait4 in a python -S spawner (the child's own peak, at least the spawner's ~8 MB)"
)


def run_child(command: list[str], discard_output: bool = False) -> Child:
    """Run a command to completion and take its own peak RSS and CPU time.

    Not ``os.wait4``/``RUSAGE_CHILDREN`` of this process: Linux folds the *parent's* peak
    RSS into a child's ``ru_maxrss`` when the child execs (a ``true`` spawned from a 500 MB
    Python reports 513 MB). A small intermediate (GNU time, else a ``python -S`` spawner)
    forks and waits for the command, so the figure is the command's own.

    With ``discard_output`` the command's standard output goes to /dev/null (``cat``).
    """
    with tempfile.TemporaryDirectory() as scratch, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        report = Path(scratch) / "rusage"
        wrapper = (
            [GNU_TIME, "-f", "%M %U %S %x", "-o", str(report)]
            if GNU_TIME
            else [sys.executable, "-S", "-c", _SPAWNER, str(report)]
        )
        started = time.perf_counter()
        stdout = subprocess.DEVNULL if discard_output else out
        subprocess.run([*wrapper, *command], stdout=stdout, stderr=err, cwd=ROOT, check=False)
        wall = time.perf_counter() - started
        fields = report.read_text().strip().splitlines()[-1].split()
        out.seek(0)
        err.seek(0)
        return Child(
            wall,
            float(fields[1]) + float(fields[2]),
            int(fields[0]) / 1024,  # kB on Linux
            int(fields[3]),
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def _ivpush() -> list[str]:
    script = Path(sys.executable).parent / "ivpush"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from connector.cli.main import main; main()"]


def _checked(child: Child, what: str) -> Child:
    if child.status != 0:
        raise RuntimeError(f"{what} exited {child.status}: {child.stderr[-2000:]}")
    return child


def _summary_count(summary: str, label: str) -> int:
    found = re.search(rf"{label}: (\d+)", summary)
    return int(found.group(1)) if found else -1


def _cat(archive: Path) -> Child:
    """``cat FILE > /dev/null``, twice (the second with the page cache warm): the faster run."""
    runs = (_checked(run_child(["cat", str(archive)], discard_output=True), "cat") for _ in range(2))
    return min(runs, key=lambda c: c.wall_s)


def cat_only(sizes: list[int]) -> dict[str, Any]:
    """The ``cat`` floor alone on the same seeded archives (no parse, no replay): minutes, not an hour."""
    results: dict[str, Any] = {}
    scratch = Path(tempfile.mkdtemp(prefix="ivpush-bench-cat-"))
    try:
        for size in sizes:
            for fmt in ("hl7", "fhir"):
                archive = scratch / f"{fmt}-{size}.{EXTENSIONS[fmt]}"
                with archive.open("wb") as out:
                    stats = write_feed(out, fmt, SEEDS[fmt], limit=size)
                cat = _cat(archive)
                results[f"{fmt}_{size}"] = {
                    "records": stats.records,
                    "archive_mb": round(stats.bytes / 1e6, 1),
                    "seconds": round(cat.wall_s, 3),
                    "records_per_s": round(stats.records / cat.wall_s),
                    "mb_per_s": round(stats.bytes / 1e6 / cat.wall_s),
                }
                archive.unlink()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


@dataclass(frozen=True)
class Startup:
    """The start-up of one replay: the empty-archive replays just before and just after it."""

    before: Child
    after: Child

    @property
    def wall_s(self) -> float:
        return min(self.before.wall_s, self.after.wall_s)

    @property
    def cpu_s(self) -> float:
        return min(self.before.cpu_s, self.after.cpu_s)

    def figures(self) -> dict[str, Any]:
        return {
            "wall_seconds": round(self.wall_s, 3),
            "cpu_seconds": round(self.cpu_s, 3),
            "wall_seconds_before_after": [round(self.before.wall_s, 3), round(self.after.wall_s, 3)],
            "cpu_seconds_before_after": [round(self.before.cpu_s, 3), round(self.after.cpu_s, 3)],
            "peak_rss_mb": round(max(self.before.peak_rss_mb, self.after.peak_rss_mb), 1),
        }


def _empty_replay(command: list[str], fmt: str, scratch: Path) -> Child:
    """``command`` (an ``ivpush replay`` of one archive) on an empty archive of ``fmt``, into a new state."""
    empty = scratch / f"empty.{EXTENSIONS[fmt]}"
    empty.touch()
    state = scratch / "startup-state.db"
    for path in scratch.glob("startup-state.db*"):
        path.unlink()
    argv = [*command[: len(_ivpush())], "replay", str(empty), *command[len(_ivpush()) + 2 :]]
    argv[argv.index("--state") + 1] = str(state)
    child = _checked(run_child(argv), "ivpush replay (empty archive)")
    if _summary_count(child.stderr, "records read") != 0:
        raise RuntimeError(f"the start-up replay read records: {child.stderr[-500:]}")
    return child


def _timed_replay(command: list[str], fmt: str, scratch: Path, what: str) -> tuple[Child, Startup]:
    """Run a replay between two empty-archive replays of the same command: the replay and its start-up."""
    before = _empty_replay(command, fmt, scratch)
    replay = _checked(run_child(command), what)
    after = _empty_replay(command, fmt, scratch)
    return replay, Startup(before, after)


def _measure(fmt: str, size: int, scratch: Path) -> dict[str, Any]:
    archive = scratch / f"{fmt}-{size}.{EXTENSIONS[fmt]}"
    started = time.perf_counter()
    with archive.open("wb") as out:
        stats = write_feed(out, fmt, SEEDS[fmt], limit=size)
    generated_s = time.perf_counter() - started
    count = stats.records
    cat = _cat(archive)
    parse = _checked(
        run_child([sys.executable, "-m", "benchmarks.replay_bench", "parse", str(archive), "--zone", ZONE_NAME]),
        "parse",
    )
    parsed = json.loads(parse.stdout)
    state = scratch / "state.db"
    command = [*_ivpush(), "replay", str(archive), "--state", str(state), "--out", os.devnull, "--zone", ZONE_NAME]
    replay, startup = _timed_replay(command, fmt, scratch, "ivpush replay")
    net_s = max(replay.wall_s - startup.wall_s, 1e-9)
    net_cpu_s = max(replay.cpu_s - startup.cpu_s, 1e-9)
    replay_rate = count / net_s
    result: dict[str, Any] = {
        "records": count,
        "encounters": stats.encounters,
        "archive_mb": round(stats.bytes / 1e6, 1),
        "generate_records_per_s": round(count / generated_s),
        "cat": {
            "seconds": round(cat.wall_s, 3),
            "records_per_s": round(count / cat.wall_s),
            "mb_per_s": round(stats.bytes / 1e6 / cat.wall_s),
            "peak_rss_mb": round(cat.peak_rss_mb, 1),
        },
        "parse": {
            "loop_seconds": round(parsed["seconds"], 2),
            "wall_seconds": round(parse.wall_s, 2),
            "records_per_s": round(count / parsed["seconds"]),
            "records_per_cpu_s": round(count / max(parsed["cpu_seconds"], 1e-9)),
            "peak_rss_mb": round(parse.peak_rss_mb, 1),
            "rejects": parsed["rejects"],
        },
        "replay": {
            "wall_seconds": round(replay.wall_s, 2),
            "net_seconds": round(net_s, 2),
            "startup": startup.figures(),
            "records_per_s": round(replay_rate),
            "records_per_cpu_s": round(count / net_cpu_s),
            "peak_rss_mb": round(replay.peak_rss_mb, 1),
            "records_read": _summary_count(replay.stderr, "records read"),
            "rejects": _summary_count(replay.stderr, "rejects"),
            "charge_messages": _summary_count(replay.stderr, "charge messages"),
            "state_db_mb": round(state.stat().st_size / 1e6, 1) if state.exists() else 0.0,
            "target_records_per_s": TARGET_RECORDS_PER_S[fmt],
            "meets_rate_target": count / net_cpu_s >= TARGET_RECORDS_PER_S[fmt],
        },
        "ratio_replay_to_parse": round(replay_rate / (count / parsed["seconds"]), 3),
        "ratio_replay_to_parse_cpu": round(parsed["cpu_seconds"] / net_cpu_s, 3),
        "ratio_replay_to_cat": round(replay_rate / (count / cat.wall_s), 5),
    }
    if size >= RSS_TARGET_AT:
        result["replay"]["meets_rss_target"] = replay.peak_rss_mb < TARGET_PEAK_RSS_MB
    if LARGE_BATCH < size <= LARGE_BATCH_UP_TO:  # a smaller archive is one batch either way
        for path in scratch.glob("state.db*"):
            path.unlink()
        large_command = [*command, "--batch-size", str(LARGE_BATCH)]
        large, large_startup = _timed_replay(large_command, fmt, scratch, "ivpush replay --batch-size")
        large_net_s = max(large.wall_s - large_startup.wall_s, 1e-9)
        large_cpu_s = max(large.cpu_s - large_startup.cpu_s, 1e-9)
        result["replay_large_batch"] = {
            "batch_size": LARGE_BATCH,
            "net_seconds": round(large_net_s, 2),
            "startup": large_startup.figures(),
            "records_per_s": round(count / large_net_s),
            "records_per_cpu_s": round(count / large_cpu_s),
            "peak_rss_mb": round(large.peak_rss_mb, 1),
            "rejects": _summary_count(large.stderr, "rejects"),
            "charge_messages": _summary_count(large.stderr, "charge messages"),
        }
    for path in scratch.glob("state.db*"):
        path.unlink()
    result["replay_jobs"] = _measure_jobs(command, fmt, scratch, count, replay_rate)
    for path in scratch.iterdir():
        path.unlink()
    return result


def _measure_jobs(command: list[str], fmt: str, scratch: Path, count: int, one_rate: float) -> dict[str, Any]:
    """The same replay with ``--jobs JOBS`` into a new state: its rate as a speed-up over ``--jobs 1``."""
    jobs, startup = _timed_replay([*command, "--jobs", str(JOBS)], fmt, scratch, "ivpush replay --jobs")
    net_s = max(jobs.wall_s - startup.wall_s, 1e-9)
    rate = count / net_s
    return {
        "jobs": JOBS,
        "net_seconds": round(net_s, 2),
        "startup": startup.figures(),
        "records_per_s": round(rate),
        "cpu_seconds": round(jobs.cpu_s, 2),  # the parent and the workers it waited for
        "peak_rss_mb": round(jobs.peak_rss_mb, 1),  # the largest of the parent and each worker, not their sum
        "rejects": _summary_count(jobs.stderr, "rejects"),
        "charge_messages": _summary_count(jobs.stderr, "charge messages"),
        "speedup_over_jobs_1": round(rate / one_rate, 3),
        "target_speedup": TARGET_JOBS_SPEEDUP,
        "cores": os.cpu_count(),
    }


def run(quick: bool = False, sizes: list[int] | None = None) -> dict[str, Any]:
    """Measure and return the replay figures (quick: small archives; full: 100k and 1M records)."""
    if sizes is None:
        sizes = [3_000] if quick else [100_000, 1_000_000]
    results: dict[str, Any] = {
        "startup_method": "the same ivpush replay on an empty archive, just before and just after each replay; "
        "the smaller subtracted",
        "rss_method": RSS_METHOD,
    }
    scratch = Path(tempfile.mkdtemp(prefix="ivpush-bench-"))
    try:
        for size in sizes:
            for fmt in ("hl7", "fhir"):
                results[f"{fmt}_{size}"] = _measure(fmt, size, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def rows(results: dict[str, Any]) -> Iterator[tuple[str, str, int, str, int, float, str]]:
    """Table rows: (group, benchmark, records/s, baseline, baseline/s, ratio, note)."""
    for name, row in results.items():
        if not isinstance(row, dict):
            continue
        group = f"replay {name}"
        cat, parse, replay = row["cat"], row["parse"], row["replay"]
        yield group, "cat > /dev/null (floor)", cat["records_per_s"], "", 0, 1.0, f"{cat['mb_per_s']} MB/s"
        yield (
            group,
            "read_records + parse",
            parse["records_per_s"],
            "cat",
            cat["records_per_s"],
            round(parse["records_per_s"] / cat["records_per_s"], 5),
            f"{parse['records_per_cpu_s']}/cpu-s, RSS {parse['peak_rss_mb']:.0f} MB, rejects {parse['rejects']}",
        )
        met = "meets" if replay["meets_rate_target"] else "below"
        rss = ""
        if "meets_rss_target" in replay:
            rss = f" (<{TARGET_PEAK_RSS_MB} MB: {'yes' if replay['meets_rss_target'] else 'NO'})"
        yield (
            group,
            "ivpush replay (net of start-up)",
            replay["records_per_s"],
            "parse",
            parse["records_per_s"],
            row["ratio_replay_to_parse"],
            f"{replay['records_per_cpu_s']}/cpu-s ({met} {replay['target_records_per_s']}; "
            f"cpu ratio {row['ratio_replay_to_parse_cpu']}), RSS {replay['peak_rss_mb']:.0f} MB{rss}, "
            f"rejects {replay['rejects']}; start-up {replay['startup']['wall_seconds']} s "
            f"({replay['startup']['cpu_seconds']} cpu-s) subtracted",
        )
        large = row.get("replay_large_batch")
        if large:
            met = "meets" if large["records_per_cpu_s"] >= replay["target_records_per_s"] else "below"
            yield (
                group,
                f"ivpush replay --batch-size {large['batch_size']}",
                large["records_per_s"],
                "parse",
                parse["records_per_s"],
                round(large["records_per_s"] / parse["records_per_s"], 3),
                f"{large['records_per_cpu_s']}/cpu-s ({met} {replay['target_records_per_s']}), "
                f"RSS {large['peak_rss_mb']:.0f} MB, rejects {large['rejects']}",
            )
        jobs = row.get("replay_jobs")
        if jobs:
            met = "meets" if jobs["speedup_over_jobs_1"] >= jobs["target_speedup"] else "below"
            yield (
                group,
                f"ivpush replay --jobs {jobs['jobs']}",
                jobs["records_per_s"],
                "replay --jobs 1",
                replay["records_per_s"],
                jobs["speedup_over_jobs_1"],
                f"x{jobs['speedup_over_jobs_1']} ({met} x{jobs['target_speedup']} on {jobs['cores']} cores), "
                f"messages {jobs['charge_messages']} (--jobs 1: {replay['charge_messages']}), "
                f"rejects {jobs['rejects']}",
            )


def _parse_child(path: str, zone_name: str) -> None:
    """Read and parse every record of an archive; print counts and the loop's own timing."""
    policy = load_policy()
    zone = local_zone(zone_name)
    count = rejects = 0
    cpu_started = time.process_time()
    started = time.perf_counter()
    for record in read_records([path]):
        count += 1
        try:
            parse_record(record, policy, zone, DEFAULT_MAX_BYTES)
        except AdapterError:
            rejects += 1
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    print(json.dumps({"records": count, "rejects": rejects, "seconds": seconds, "cpu_seconds": cpu_seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    parse = commands.add_parser("parse", help="the parse child: read_records + parse_record over one archive")
    parse.add_argument("path")
    parse.add_argument("--zone", default=ZONE_NAME)
    sized = commands.add_parser("run", help="run the replay benchmark alone")
    sized.add_argument("--sizes", type=int, nargs="+", default=[4_000])
    floor = commands.add_parser("cat", help="only the cat > /dev/null floor on the same archives")
    floor.add_argument("--sizes", type=int, nargs="+", default=[4_000])
    args = parser.parse_args()
    if args.command == "parse":
        _parse_child(args.path, args.zone)
    elif args.command == "cat":
        print(json.dumps(cat_only(args.sizes), indent=2))
    else:
        print(json.dumps(run(sizes=args.sizes), indent=2))


if __name__ == "__main__":
    main()
