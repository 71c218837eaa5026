"""Start-up: wall time of ``ivpush --version`` and ``ivpush replay --help`` against ``python -c 'import click'``.

Each command is a fresh process of this interpreter (the console script ``ivpush`` of the same
environment, as a user runs it), so what is measured is the interpreter, ``site``, the imports and
click's parsing: every command, every ``--help`` and every test subprocess pays it. The baseline,
``python -c 'import click'`` (the interpreter and click, nothing of ours), runs in the same rounds,
interleaved with the commands, so that load drifting over the run hits all three alike. The
figure kept for each is the fastest of its rounds (start-up has no useful "typical" beyond noise).

Target (issue #15, reported, never asserted): each command ≤ 3× the baseline's time. The ratio
column is, like every other row of the table, the command's rate over the baseline's (starts/s),
so ≥ 0.33 meets it; the note gives the time multiple. What the commands import is asserted by
``tests/unit/test_startup.py`` (the import graph, not a time).

``python -m benchmarks.startup_bench [--rounds N]`` runs this section alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_TIMES = 3.0  # each command at most 3× the baseline's wall time
BASELINE = "python -c 'import click'"


def _ivpush() -> list[str]:
    script = Path(sys.executable).parent / "ivpush"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from connector.cli.main import main; main()"]


def commands() -> dict[str, list[str]]:
    """Label → argv: the baseline first, then the commands measured against it."""
    return {
        BASELINE: [sys.executable, "-c", "import click"],
        "ivpush --version": [*_ivpush(), "--version"],
        "ivpush replay --help": [*_ivpush(), "replay", "--help"],
    }


def _once(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one run of ``argv``, output discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run(quick: bool = False, rounds: int | None = None) -> dict[str, Any]:
    """Measure and return the start-up figures (quick: 10 interleaved rounds; full: 30)."""
    rounds = rounds or (10 if quick else 30)
    argvs = commands()
    for argv in argvs.values():  # one unmeasured run each: bytecode compiled, files in the page cache
        _once(argv)
    walls: dict[str, list[float]] = {label: [] for label in argvs}
    cpus: dict[str, list[float]] = {label: [] for label in argvs}
    for _ in range(rounds):
        for label, argv in argvs.items():
            wall, cpu = _once(argv)
            walls[label].append(wall)
            cpus[label].append(cpu)
    base = min(walls[BASELINE])
    results: dict[str, Any] = {"rounds": rounds, "baseline": BASELINE}
    for label in argvs:
        best = min(walls[label])
        ordered = sorted(walls[label])
        results[label] = {
            "best_wall_ms": round(best * 1000, 1),
            "median_wall_ms": round(ordered[len(ordered) // 2] * 1000, 1),
            "best_cpu_ms": round(min(cpus[label]) * 1000, 1),
            "times_baseline": round(best / base, 2),
        }
        if label != BASELINE:
            results[label]["target_times_baseline"] = TARGET_TIMES
            results[label]["meets_target"] = best / base <= TARGET_TIMES
    return results


def rows(results: dict[str, Any]) -> Iterator[tuple[str, str, int, str, int, float, str]]:
    """Table rows: (group, benchmark, starts/s, baseline, baseline starts/s, ratio, note)."""
    base = results[BASELINE]
    base_rate = round(1000 / base["best_wall_ms"])
    yield (
        "startup",
        BASELINE,
        base_rate,
        "",
        0,
        1.0,
        f"{base['best_wall_ms']} ms (median {base['median_wall_ms']}), best of {results['rounds']}",
    )
    for label, row in results.items():
        if not isinstance(row, dict) or label == BASELINE or "times_baseline" not in row:
            continue
        met = "meets" if row["meets_target"] else "MISSES"
        yield (
            "startup",
            label,
            round(1000 / row["best_wall_ms"]),
            "import click",
            base_rate,
            round(base["best_wall_ms"] / row["best_wall_ms"], 3),
            f"{row['best_wall_ms']} ms (median {row['median_wall_ms']}, cpu {row['best_cpu_ms']}): "
            f"x{row['times_baseline']} the baseline's time (target <= x{row['target_times_baseline']:g}: {met})",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    results = run(rounds=args.rounds)
    print(json.dumps(results, indent=2))
    for row in rows(results):
        print(row)


if __name__ == "__main__":
    main()
