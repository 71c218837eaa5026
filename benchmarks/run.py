"""``make bench`` / ``make bench-quick``: run the benchmarks, print one table, write latest.json.

Sections: startup (``ivpush --version`` and ``ivpush replay --help`` against ``python -c
'import click'``), rules (``evaluate``), adapters (HL7 v2 and FHIR parsers against their floors),
replay (``ivpush replay`` on synthetic archives against ``cat`` and the parse step), recode
(``ivpush recode`` of a replayed state against ``evaluate`` alone), console (the encounter
page of ``ivpush serve`` at 200 administrations against ``explain --state``) and bus
(``ivpush consume`` on a real RabbitMQ node against a raw pika loop, and MLLP in through
``ivpush listen`` against the AMQP path; skipped without a node). Every
ratio is against a baseline measured in the same run; the machine's load and a calibration
loop are recorded beside the figures, since the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import time
import timeit
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks import (
    adapters_bench,
    bus_bench,
    bus_node,
    console_bench,
    recode_bench,
    replay_bench,
    rules_bench,
    startup_bench,
    targets,
)

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
Row = tuple[str, str, int, str, int, float, str]
SECTIONS: dict[str, tuple[Callable[..., dict[str, Any]], Callable[[dict[str, Any]], Iterator[Row]]]] = {
    "startup": (startup_bench.run, startup_bench.rows),
    "rules": (rules_bench.run, rules_bench.rows),
    "adapters": (adapters_bench.run, adapters_bench.rows),
    "replay": (replay_bench.run, replay_bench.rows),
    "recode": (recode_bench.run, recode_bench.rows),
    "console": (console_bench.run, console_bench.rows),
    "bus": (bus_bench.run, bus_bench.rows),
}


def machine() -> dict[str, Any]:
    """What the figures were measured on, and how busy it was."""
    calibration = min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000
    return {
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "calibration_sum_range_1000_us": round(calibration * 1e6, 1),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rss_method": replay_bench.RSS_METHOD,
        "git": _git_state(),
    }


def _git_state() -> str:
    """The commit measured, and whether the tree had uncommitted changes (other sessions' work)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=False)
    except OSError:
        return "unknown"
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def print_table(report: dict[str, Any]) -> None:
    """One table for all sections: rate, the baseline it is compared with, the ratio."""
    header = f"{'section':<22} {'benchmark':<42} {'per s':>9}  {'baseline':<30} {'per s':>9} {'ratio':>8}  note"
    print(header)
    print("-" * len(header))
    for name, (_, rows) in SECTIONS.items():
        if name not in report:
            continue
        for section, bench, rate, baseline, baseline_rate, ratio, note in rows(report[name]):
            base = f"{baseline_rate:>9}" if baseline else " " * 9
            print(f"{section:<22} {bench:<42} {rate:>9}  {baseline:<30} {base} {ratio:>8}  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small corpora, no 1M archives: under a minute")
    parser.add_argument("--only", choices=list(SECTIONS), nargs="+", help="run only these sections")
    args = parser.parse_args()
    report: dict[str, Any] = {"mode": "quick" if args.quick else "full", "machine": machine()}
    seconds: dict[str, float] = {}
    run_started = time.perf_counter()
    if not args.only or "bus" in args.only:
        bus_node.prestart()
    parent_rss: dict[str, float] = {}
    for name, (measure, _) in SECTIONS.items():
        if args.only and name not in args.only:
            continue
        started = time.perf_counter()
        report[name] = measure(quick=args.quick)
        seconds[name] = round(time.perf_counter() - started, 1)
        parent_rss[name] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["seconds"] = seconds
    report["total_seconds"] = round(time.perf_counter() - run_started, 1)
    report["bench_process_peak_rss_mb_after"] = parent_rss  # this process, not the measured children
    print_table(report)
    rules = report.get("rules")
    if rules:
        print(
            f"rules: cost per administration, 200 vs 20 per encounter: x{rules['growth_per_administration_200_vs_20']}"
        )
    report["targets"] = targets.evaluate(report)
    targets.print_targets(report["targets"], args.quick)
    m = report["machine"]
    print(
        f"machine: {m['cores']} cores, load {m['load_average_at_start']} -> {m['load_average_at_end']}, "
        f"sum(range(1000)) {m['calibration_sum_range_1000_us']} us; sections took {seconds} s, "
        f"{report['total_seconds']} s in all"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2) + "\n"
    RESULTS.write_text(text, encoding="utf-8")
    if not args.only:  # the last complete run of each mode stays beside latest.json
        (RESULTS.parent / f"{report['mode']}.json").write_text(text, encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
