"""Rules: encounters/s of ``evaluate`` at 5, 20 and 200 administrations per encounter.

Baseline in the same run: sorting each encounter's administrations and resolving their drug
identities (the unavoidable per-administration work), so the ratio shows what the rules
themselves cost. Growth: time per administration at 200 vs 20 shows the n log n bound.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from connector.model import Encounter
from connector.policy.loader import load_policy
from connector.policy.model import Policy
from connector.rules import evaluate
from connector.synth.encounters import encounters


def _timed(fn: Any, items: list[Encounter]) -> float:
    started = time.perf_counter()
    for item in items:
        fn(item)
    return time.perf_counter() - started


def run(quick: bool = False) -> dict[str, Any]:
    """Measure and return the rules figures."""
    policy: Policy = load_policy()

    def floor(encounter: Encounter) -> None:
        for admin in sorted(encounter.administrations, key=lambda a: (a.start, a.id)):
            policy.drugs.resolve(admin.drug)

    results: dict[str, Any] = {}
    plan = [(5, 4000), (20, 10000), (200, 500)] if not quick else [(5, 1000), (20, 2000), (200, 100)]
    for size, count in plan:
        batch = encounters(seed=size, count=count, size=size)
        for item in batch[:50]:
            evaluate(item, policy)  # warm caches (drug memo) so both runs see the same state
        rules_s = _timed(lambda e: evaluate(e, policy), batch)
        floor_s = _timed(floor, batch)
        results[f"rules_{size}"] = {
            "encounters": count,
            "administrations_per_encounter": size,
            "encounters_per_s": round(count / rules_s),
            "administrations_per_s": round(count * size / rules_s),
            "ms_per_1000_encounters": round(rules_s / count * 1000 * 1000, 1),
            "baseline_sort_and_resolve_encounters_per_s": round(count / floor_s),
            "ratio_to_baseline": round(floor_s / rules_s, 3),
        }
    per_admin_20 = 1 / results["rules_20"]["administrations_per_s"]
    per_admin_200 = 1 / results["rules_200"]["administrations_per_s"]
    results["growth_per_administration_200_vs_20"] = round(per_admin_200 / per_admin_20, 2)
    return results


def rows(results: dict[str, Any]) -> Iterator[tuple[str, str, int, str, int, float, str]]:
    """Table rows: (group, benchmark, encounters/s, baseline, baseline/s, ratio, note)."""
    for name, row in results.items():
        if isinstance(row, dict):
            yield (
                "rules",
                f"evaluate, {row['administrations_per_encounter']} adm/encounter",
                row["encounters_per_s"],
                "sort + resolve drugs",
                row["baseline_sort_and_resolve_encounters_per_s"],
                row["ratio_to_baseline"],
                f"{row['administrations_per_s']} adm/s, {row['ms_per_1000_encounters']} ms/1k enc ({name})",
            )
