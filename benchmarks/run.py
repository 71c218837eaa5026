"""``make bench`` / ``make bench-quick``: run the benchmarks, print a table, write latest.json."""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from benchmarks import rules_bench

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller runs, under a minute")
    args = parser.parse_args()
    report = {"machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()}}
    report["rules"] = rules_bench.run(quick=args.quick)
    print(
        f"{'benchmark':<12} {'adm/enc':>8} {'enc/s':>9} {'adm/s':>10} {'ms/1k enc':>10} "
        f"{'baseline enc/s':>15} {'ratio':>6}"
    )
    for name, row in report["rules"].items():
        if isinstance(row, dict):
            print(
                f"{name:<12} {row['administrations_per_encounter']:>8} {row['encounters_per_s']:>9} "
                f"{row['administrations_per_s']:>10} {row['ms_per_1000_encounters']:>10} "
                f"{row['baseline_sort_and_resolve_encounters_per_s']:>15} {row['ratio_to_baseline']:>6}"
            )
    print(
        f"cost per administration, 200 vs 20 per encounter: x{report['rules']['growth_per_administration_200_vs_20']}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
