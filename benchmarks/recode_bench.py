"""Recode: encounters/s of ``ivpush recode`` over a SQLite state replayed from a synthetic HL7 feed.

The state is built once (``ivpush replay``'s ``run`` into a temp SQLite file, default payer
policy). Then, each on a freshly opened store (cold state cache, as a new ``ivpush recode``
process would see it; the policy's memos warm, as in a long replay), with the payer policy
changed to ``medicare`` (a new policy version: every line of every encounter is credited and
re-charged, the most a recode can emit):

- ``recode --dry-run``: read, evaluate, diff, render, roll back;
- ``recode``: the same, written (outbox, emitted lines, history, outcomes), messages left queued;
- ``recode`` again: nothing changed (every encounter coded to the lines it has: the steady cost).

Baseline in the same run: ``rules.evaluate`` alone over the same encounters (read from the
state beforehand, with the claim type and payer the recode gives them), so each ratio shows
what the store round trip, the delta and rendering add to the rules.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from connector.bootstrap import open_store, renderers
from connector.cli.recode import RecodeOptions, run_recode
from connector.cli.replay import run as replay
from connector.cli.replay_options import ReplayOptions
from connector.model import Encounter
from connector.policy.loader import load_policy
from connector.policy.model import Policy
from connector.rules import evaluate
from connector.service import Service, ServiceSettings
from connector.store.base import Store
from connector.synth.render import write_feed

SEED = 316
NEW_PAYER = "medicare"
CLOCK = 1_800_000_000.0  # the time recorded in the history entries


def _encounters(store: Store, payer: str) -> list[Encounter]:
    """Every encounter of the state, as the recode codes it (closed ones; the new default payer)."""
    found: list[Encounter] = []
    with store.transaction() as tx:
        for key in tx.encounter_keys():
            state = tx.get(key)
            if state is not None and (state.encounter.closed or state.messages):
                found.append(replace(state.encounter, payer=payer))
    return found


def _recode(path: Path, policy: Policy, options: RecodeOptions) -> tuple[float, dict[str, Any]]:
    store = open_store(str(path))  # as ivpush recode opens it: synchronous=FULL, an empty cache
    try:
        settings = ServiceSettings(renderers(["json"]))
        service = Service(store, policy, settings, clock=lambda: CLOCK)  # history times: not measured
        started = time.perf_counter()
        report = run_recode(store, service, options, None)
        seconds = time.perf_counter() - started
    finally:
        store.close()
    return seconds, report.as_dict(options.dry_run)


def run(quick: bool = False, records: int | None = None) -> dict[str, Any]:
    """Measure and return the recode figures (quick: a 3,000-record feed; full: 100,000)."""
    size = records or (3_000 if quick else 100_000)
    policy = load_policy()
    scratch = Path(tempfile.mkdtemp(prefix="ivpush-bench-recode-"))
    try:
        archive, state = scratch / "feed.hl7", scratch / "state.db"
        with archive.open("wb") as out:
            stats = write_feed(out, "hl7", SEED, limit=size)
        started = time.perf_counter()
        replay(ReplayOptions(paths=(str(archive),), state=str(state)), policy, io.BytesIO())
        build_s = time.perf_counter() - started
        store = open_store(str(state))
        try:
            encounters = _encounters(store, NEW_PAYER)
        finally:
            store.close()
        if not encounters:
            raise RuntimeError(f"the replayed state holds no closed encounter ({stats.records} records replayed)")
        for encounter in encounters:  # warm the policy's memos for every measurement alike
            evaluate(encounter, policy)
        started = time.perf_counter()
        for encounter in encounters:
            evaluate(encounter, policy)
        evaluate_s = time.perf_counter() - started
        count = len(encounters)
        results: dict[str, Any] = {
            "records": stats.records,
            "encounters": count,
            "state_build_seconds": round(build_s, 1),
            "state_db_mb": round(state.stat().st_size / 1e6, 1),
            "evaluate": {"seconds": round(evaluate_s, 3), "encounters_per_s": round(count / evaluate_s)},
        }
        runs = {
            "dry_run": RecodeOptions(payer=NEW_PAYER, dry_run=True),
            "recode": RecodeOptions(payer=NEW_PAYER),
            "unchanged": RecodeOptions(payer=NEW_PAYER),
        }
        for name, options in runs.items():
            seconds, report = _recode(state, policy, options)
            rate = count / seconds
            results[name] = {
                "seconds": round(seconds, 3),
                "encounters_per_s": round(rate),
                "ratio_to_evaluate": round(rate / (count / evaluate_s), 3),
                "recoded": report["encounters"]["recoded"],
                "changed": report["encounters"]["changed"],
                "lines": report["lines"],
            }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


LABELS = {
    "dry_run": "recode --dry-run (new payer policy)",
    "recode": "recode (new payer policy, queued)",
    "unchanged": "recode again (nothing changed)",
}


def rows(results: dict[str, Any]) -> Iterator[tuple[str, str, int, str, int, float, str]]:
    """Table rows: (group, benchmark, encounters/s, baseline, baseline/s, ratio, note)."""
    group = f"recode {results['records']} rec"
    base = results["evaluate"]["encounters_per_s"]
    yield (
        group,
        "evaluate alone (baseline)",
        base,
        "",
        0,
        1.0,
        f"{results['encounters']} encounters; state built in {results['state_build_seconds']} s "
        f"({results['state_db_mb']} MB)",
    )
    for name, label in LABELS.items():
        row = results[name]
        lines = row["lines"]
        yield (
            group,
            label,
            row["encounters_per_s"],
            "evaluate",
            base,
            row["ratio_to_evaluate"],
            f"{row['changed']} of {row['recoded']} changed; {lines['credit']} credit, {lines['charge']} charge lines",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=3_000, help="synthetic HL7 records in the state's feed")
    args = parser.parse_args()
    print(json.dumps(run(records=args.records), indent=2))


if __name__ == "__main__":
    main()
