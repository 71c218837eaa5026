"""The issue #15 targets table of ``make bench``: each target read from the report, with a verdict."""

from __future__ import annotations

from typing import Any

from benchmarks import targets


def _report() -> dict[str, Any]:
    replay_row = {
        "records": 100_029,  # an archive of 100,000 records ends with a few discharges
        "replay": {"records_per_s": 2_000, "peak_rss_mb": 120.0},
        "ratio_replay_to_parse": 0.41,
        "ratio_replay_to_parse_cpu": 0.45,
        "replay_jobs": {"jobs": 2, "cores": 2, "speedup_over_jobs_1": 1.8},
    }
    return {
        "startup": {
            "python -c 'import click'": {"times_baseline": 1.0},
            "ivpush --version": {"times_baseline": 1.2, "target_times_baseline": 3.0},
        },
        "rules": {"rules_20": {"ratio_to_baseline": 0.06}},
        "adapters": {
            "hl7": {"ivpush parse_hl7": {"ratio_to_floor": 0.125}},
            "fhir": {"fhir.resources model_validate": {"per_s": 4_000}},
        },
        "replay": {
            "startup_method": "text, not a row",
            "hl7_100000": replay_row,
            "fhir_100000": {**replay_row, "replay": {"records_per_s": 3_000, "peak_rss_mb": 90.0}},
            "hl7_1000000": {**replay_row, "records": 1_000_004, "ratio_replay_to_parse": 0.62},
        },
        "bus": {"skipped": "no node"},
    }


def _by_what(entries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        out.setdefault(entry["what"], []).append(entry)
    return out


def test_every_target_has_an_entry_and_a_verdict_from_the_report() -> None:
    entries = _by_what(targets.evaluate(_report()))

    assert set(entries) == {target.what for target in targets.TARGETS}
    verdicts = {what: [e["verdict"] for e in rows] for what, rows in entries.items()}
    assert verdicts["replay HL7, SQLite state, >= 0.6 x its parse step (100k, 1M)"] == ["below", "meets"]
    assert verdicts["replay HL7 peak RSS < 300 MB at 1M records"] == ["indicative", "meets"]  # 100k, 1M
    jobs = verdicts["replay --jobs 2 >= 1.7 x --jobs 1 at 100k records"]
    assert jobs == ["meets", "indicative", "meets"]  # hl7 100k, hl7 1M, fhir 100k
    assert verdicts["ivpush --version / replay --help <= 3 x `import click`"] == ["meets"]
    assert verdicts["rules >= 0.25 x sort + resolve at 20 adm/encounter"] == ["below"]
    assert verdicts["parse_hl7 >= 0.12 x bare split"] == ["meets"]
    fhir = entries["replay FHIR >= 0.8 x fhir.resources validation alone"]
    assert [(e["measured"], e["verdict"]) for e in fhir] == [(0.75, "below")]


def test_a_skipped_section_is_listed_as_not_measured() -> None:
    entries = _by_what(targets.evaluate(_report()))

    bus = entries["consume HL7 >= 0.70 x raw pika loop, zero loss"]
    assert [(e["measured"], e["verdict"]) for e in bus] == [(None, "not measured")]


def test_an_upper_bound_above_it_is_reported_as_above() -> None:
    report = _report()
    report["startup"]["ivpush --version"]["times_baseline"] = 3.4

    entries = _by_what(targets.evaluate(report))

    assert [e["verdict"] for e in entries["ivpush --version / replay --help <= 3 x `import click`"]] == ["above"]


def test_a_bus_run_that_lost_messages_is_below_its_target_whatever_its_ratio() -> None:
    report = _report()
    report["bus"] = {"ratio_hl7_to_pika_loop": 0.9, "hl7": {"lost": 3}}

    entries = _by_what(targets.evaluate(report))

    assert [e["verdict"] for e in entries["consume HL7 >= 0.70 x raw pika loop, zero loss"]] == ["below"]


def test_a_peak_rss_of_exactly_300_mb_is_not_below_300() -> None:
    report = _report()
    report["replay"]["hl7_1000000"]["replay"] = {"records_per_s": 2_000, "peak_rss_mb": 300.0}

    entries = _by_what(targets.evaluate(report))

    assert [e["verdict"] for e in entries["replay HL7 peak RSS < 300 MB at 1M records"]] == ["indicative", "above"]
