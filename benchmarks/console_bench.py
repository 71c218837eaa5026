"""Console: server time of the encounter page at 200 administrations, as a ratio to ``explain --state``.

One synthetic encounter of 200 administrations (``connector.synth.encounters``) is stored in a
temp SQLite state, closed, with its outcomes. Then, alternately and ``repeat`` times each, in
this process and with the policy's memos warm:

- ``explain``: ``explain_stored`` — open the state, read the encounter, evaluate it, its
  outcomes, the text (what ``ivpush explain --state S --encounter ID`` does but for printing);
- ``page``: ``GET /encounter/<key>`` through the console's WSGI application (Flask's test
  client: no socket) — read, evaluate, outcomes, timeline geometry, the HTML with its SVG.

The ratio is page time over explain time (the best of the runs of each): what the page adds to
explaining the same encounter (the template, the SVG, the tables; explain also opens the
state each time, which the console does once per thread).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from connector.cli.explain_state import explain_stored
from connector.console.app import create_app
from connector.console.reader import StateSource
from connector.model.events import EncounterRef
from connector.policy.loader import load_policy
from connector.rules import evaluate
from connector.rules.outcomes import outcomes
from connector.store.base import EncounterState
from connector.store.sqlite import SqliteStore
from connector.synth.encounters import encounters

SIZE = 200


def run(quick: bool = False, repeat: int | None = None) -> dict[str, Any]:
    """Measure and return the console figures (quick: 5 runs of each; full: 30)."""
    runs = repeat or (5 if quick else 30)
    policy = load_policy()
    scratch = Path(tempfile.mkdtemp(prefix="ivpush-bench-console-"))
    try:
        (encounter,) = encounters(seed=SIZE, count=1, size=SIZE)
        encounter = replace(encounter, closed=True)
        key = encounter.key
        state = scratch / "state.db"
        store = SqliteStore(state)
        try:
            with store.transaction() as tx:
                ref = EncounterRef(key, key.rpartition("|")[2], "SYN")
                tx.put(EncounterState(ref, encounter, 0.0))
                tx.put_outcomes(key, outcomes(encounter, evaluate(encounter, policy), policy))
        finally:
            store.close()
        source = StateSource(str(state))
        client = create_app(source, policy).test_client()
        explain_s, page_s, size = [], [], 0
        try:
            for _ in range(runs):
                started = time.perf_counter()
                text = explain_stored(str(state), key, policy)
                explain_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                response = client.get(f"/encounter/{key}")
                page_s.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"the encounter page answered {response.status_code}")
                size = len(response.data)
        finally:
            source.close()
        best_explain, best_page = min(explain_s), min(page_s)
        return {
            "administrations": len(encounter.administrations),
            "runs": runs,
            "explain_ms": round(best_explain * 1000, 2),
            "page_ms": round(best_page * 1000, 2),
            "page_to_explain_ratio": round(best_page / best_explain, 2),
            "page_kb": round(size / 1024, 1),
            "explain_lines": len(text),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def rows(results: dict[str, Any]) -> Iterator[tuple[str, str, int, str, int, float, str]]:
    """Table rows: (group, benchmark, pages/s, baseline, explains/s, ratio of times, note)."""
    yield (
        f"console {results['administrations']} adm",
        "encounter page (GET, in process)",
        round(1000 / results["page_ms"]),
        "explain --state (same encounter)",
        round(1000 / results["explain_ms"]),
        results["page_to_explain_ratio"],
        f"time ratio page/explain; page {results['page_ms']} ms, {results['page_kb']} KB; "
        f"explain {results['explain_ms']} ms; best of {results['runs']}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=30, help="runs of each (the best is reported)")
    args = parser.parse_args()
    print(json.dumps(run(repeat=args.repeat), indent=2))


if __name__ == "__main__":
    main()
