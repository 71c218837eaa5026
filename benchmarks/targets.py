"""Issue #15's targets, each beside the ratio a run measured: printed after the table, kept in the JSON.

Every target is a ratio to a baseline measured in the same run (or a peak RSS), read from the
report ``run.py`` builds; a target whose section did not run or was skipped is listed as "not
measured", so every run shows the same list. The replay targets name 100k and 1M records: a
quick run reports its 3,000-record figures against them, the size in the source column.
Targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The measured value, where it comes from, and a verdict that overrides the bound's (None: by
# the bound): "indicative" for a figure at another size than the target names, "below" when
# a zero-loss target lost messages.
Reading = tuple[float, str, str | None]
Reader = Callable[[dict[str, Any]], Iterator[Reading]]


@dataclass(frozen=True)
class Target:
    """One line of the issue: what is compared, the bound, and how to read it from the report."""

    number: str
    what: str
    bound: float
    at_least: bool  # True: the measured value must be >= bound; False: below it (or at it, if inclusive)
    read: Reader
    inclusive: bool = True  # an upper bound the value may equal ("<= 3 x"), or not ("< 300 MB")


def _replay_rows(report: dict[str, Any], fmt: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every size the run replayed (a quick run's 3,000 records too: the source names the size)."""
    for name, row in report.get("replay", {}).items():
        if name.startswith(f"{fmt}_") and isinstance(row, dict) and "replay" in row:
            yield name, row


def _at(name: str, sizes: tuple[int, ...]) -> str | None:
    """None when the row (``hl7_100000``: its nominal size) is of a size the target names, else "indicative".

    The nominal size, not ``records``: an archive of 100,000 records ends with its encounters'
    discharges, a few more records (100,029).
    """
    nominal = name.rpartition("_")[2]
    return None if nominal.isdigit() and int(nominal) in sizes else "indicative"


def _replay_to_parse(report: dict[str, Any]) -> Iterator[Reading]:
    for name, row in _replay_rows(report, "hl7"):
        source = f"{name}: replay/parse (cpu ratio {row['ratio_replay_to_parse_cpu']})"
        yield row["ratio_replay_to_parse"], source, _at(name, (100_000, 1_000_000))


def _replay_rss(report: dict[str, Any]) -> Iterator[Reading]:
    for name, row in _replay_rows(report, "hl7"):
        yield row["replay"]["peak_rss_mb"], f"{name}: peak RSS, MB", _at(name, (1_000_000,))


def _fhir_replay_to_validation(report: dict[str, Any]) -> Iterator[Reading]:
    validate = report.get("adapters", {}).get("fhir", {}).get("fhir.resources model_validate", {})
    if "per_s" not in validate:
        return
    for name, row in _replay_rows(report, "fhir"):
        rate = row["replay"]["records_per_s"]
        source = f"{name}: replay {rate}/s / model_validate {validate['per_s']}/s"
        yield round(rate / validate["per_s"], 3), source, _at(name, (100_000, 1_000_000))


def _jobs_speedup(report: dict[str, Any]) -> Iterator[Reading]:
    for name, row in (*_replay_rows(report, "hl7"), *_replay_rows(report, "fhir")):
        jobs = row.get("replay_jobs")
        if jobs:
            source = f"{name}: --jobs {jobs['jobs']} on {jobs['cores']} cores"
            yield jobs["speedup_over_jobs_1"], source, _at(name, (100_000,))


def _startup(report: dict[str, Any]) -> Iterator[Reading]:
    for label, row in report.get("startup", {}).items():
        if isinstance(row, dict) and "target_times_baseline" in row:
            yield row["times_baseline"], f"{label}: times `import click`", None


def _bus(fmt: str, key: str) -> Reader:
    def read(report: dict[str, Any]) -> Iterator[Reading]:
        bus = report.get("bus", {})
        if key in bus:
            lost = bus.get(fmt, {}).get("lost")
            yield bus[key], f"consume {fmt.upper()} (lost {lost})", "below" if lost else None

    return read


def _bus_latency(report: dict[str, Any]) -> Iterator[Reading]:
    latency = report.get("bus", {}).get("hl7", {}).get("latency")
    if latency:
        yield latency["p99_ms"], f"p99 ms at {latency.get('fraction_of_max', 0.5):.0%} load (reported, no bound)", None


def _rules(report: dict[str, Any]) -> Iterator[Reading]:
    row = report.get("rules", {}).get("rules_20")
    if row:
        yield row["ratio_to_baseline"], "evaluate at 20 adm/encounter / sort + resolve", None


def _parse_hl7(report: dict[str, Any]) -> Iterator[Reading]:
    row = report.get("adapters", {}).get("hl7", {}).get("ivpush parse_hl7")
    if row and "ratio_to_floor" in row:
        yield row["ratio_to_floor"], "parse_hl7 / bare split", None


TARGETS = (
    Target("1", "replay HL7, SQLite state, >= 0.6 x its parse step (100k, 1M)", 0.6, True, _replay_to_parse),
    Target("1", "replay HL7 peak RSS < 300 MB at 1M records", 300, False, _replay_rss, inclusive=False),
    Target("1", "replay FHIR >= 0.8 x fhir.resources validation alone", 0.8, True, _fhir_replay_to_validation),
    Target("2", "replay --jobs 2 >= 1.7 x --jobs 1 at 100k records", 1.7, True, _jobs_speedup),
    Target("3", "ivpush --version / replay --help <= 3 x `import click`", 3.0, False, _startup),
    Target("4", "consume HL7 >= 0.70 x raw pika loop, zero loss", 0.70, True, _bus("hl7", "ratio_hl7_to_pika_loop")),
    Target(
        "4",
        "consume FHIR >= 0.8 x fhir.resources validation",
        0.8,
        True,
        _bus("fhir", "ratio_fhir_to_fhir_resources_validate"),
    ),
    Target("4", "latency publish -> charge at 50 % load", 0.0, False, _bus_latency),
    Target("5", "rules >= 0.25 x sort + resolve at 20 adm/encounter", 0.25, True, _rules),
    Target("6", "parse_hl7 >= 0.12 x bare split", 0.12, True, _parse_hl7),
)


def verdict(target: Target, value: float) -> str:
    """``meets``/``below``/``above`` for a bounded target, ``reported`` for a figure without one."""
    if not target.bound:
        return "reported"
    if target.at_least:
        return "meets" if value >= target.bound else "below"
    return "meets" if value < target.bound or (target.inclusive and value == target.bound) else "above"


def evaluate(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per (target, reading); a target nothing measured gets one "not measured" entry."""
    out: list[dict[str, Any]] = []
    for target in TARGETS:
        readings = list(target.read(report))
        if not readings:
            out.append({"target": target.number, "what": target.what, "verdict": "not measured", "measured": None})
        for value, source, override in readings:
            out.append(
                {
                    "target": target.number,
                    "what": target.what,
                    "measured": value,
                    "source": source,
                    "verdict": override or verdict(target, value),
                }
            )
    return out


def print_targets(entries: list[dict[str, Any]], quick: bool) -> None:
    """The targets table: issue item, target, measured value, verdict, where the value comes from."""
    print()
    note = " (quick run: replay at 3,000 records; the targets name 100k and 1M, `make bench`)" if quick else ""
    print(f"issue #15 targets{note}")
    for entry in entries:
        measured = "-" if entry["measured"] is None else f"{entry['measured']:g}"
        source = entry.get("source", "")
        print(f"  {entry['target']:<2} {entry['what']:<66} {measured:>8}  {entry['verdict']:<12} {source}")


def main() -> None:
    """``python -m benchmarks.targets FILE``: the targets table of a saved run (its JSON), evaluated again."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("report", type=Path, help="a run's JSON (benchmarks/results/full.json, quick.json, ...)")
    args = parser.parse_args()
    report = json.loads(args.report.read_text(encoding="utf-8"))
    print_targets(evaluate(report), report.get("mode") == "quick")


if __name__ == "__main__":
    main()
