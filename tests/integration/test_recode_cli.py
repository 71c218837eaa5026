"""``ivpush recode`` on a SQLite state replayed from a synthetic feed, after a site mappings change (issue #16)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from postgres import LocalPostgres
from recode_support import net, write_site

from connector.cli.main import cli
from connector.synth.render import write_feed


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def messages(*paths: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in paths for line in path.read_text().splitlines() if line.strip()]


def by_code(found: list[dict[str, Any]], units: bool = False) -> dict[str, dict[str, int]]:
    """Code → action → lines (or their units) in the messages."""
    counts: dict[str, dict[str, int]] = {}
    for message in found:
        for line in message["lines"]:
            counts.setdefault(line["code"], {"credit": 0, "charge": 0})[line["action"]] += line["units"] if units else 1
    return counts


def deltas(
    old: dict[str, dict[str, dict[str, Any]]], new: dict[str, dict[str, dict[str, Any]]]
) -> tuple[dict[str, dict[str, int]], int]:
    """Code → credit/charge lines that turn net lines ``old`` into ``new``, and how many encounters change."""
    expected: dict[str, dict[str, int]] = {}
    changed = 0
    for key in old.keys() | new.keys():
        was, now = old.get(key, {}), new.get(key, {})
        changed += was.keys() != now.keys()
        for line_id in was.keys() - now.keys():
            expected.setdefault(was[line_id]["code"], {"credit": 0, "charge": 0})["credit"] += 1
        for line_id in now.keys() - was.keys():
            expected.setdefault(now[line_id]["code"], {"credit": 0, "charge": 0})["charge"] += 1
    return expected, changed


def one_line_error(result: Result, text: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [f"error: {text}"]
    assert result.stdout == "" and "Traceback" not in result.output


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("feed") / "feed.hl7"
    with path.open("wb") as out:
        write_feed(out, "hl7", 16, encounters=30)
    return path


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return write_site(tmp_path / "site", "site-2026q2")


@pytest.fixture
def state(tmp_path: Path, feed: Path) -> Path:
    path = tmp_path / "state.db"
    first = invoke("replay", str(feed), "--state", str(path), "--out", str(tmp_path / "first.ndjson"))
    assert first.exit_code == 0, first.output
    return path


def meta(path: Path) -> dict[str, str]:
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT name, value FROM meta").fetchall())
    finally:
        db.close()


def test_a_dry_run_reports_the_deltas_of_a_mappings_change_and_writes_nothing(
    state: Path, site: Path, feed: Path, tmp_path: Path
) -> None:
    before = hashlib.sha256(state.read_bytes()).hexdigest()
    result = invoke("recode", "--state", str(state), "--mappings", str(site), "--dry-run", "--report", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert hashlib.sha256(state.read_bytes()).hexdigest() == before
    assert not Path(f"{state}-wal").exists() or Path(f"{state}-wal").stat().st_size == 0
    # The deltas expected: what a fresh replay under the new mappings charges, against what was charged.
    fresh = tmp_path / "fresh.ndjson"
    assert invoke("replay", str(feed), "--mappings", str(site), "--out", str(fresh)).exit_code == 0
    old, new = net(messages(tmp_path / "first.ndjson")), net(messages(fresh))
    expected, changed = deltas(old, new)
    assert report["by_code"] == expected
    assert report["encounters"]["changed"] == report["messages"] == changed > 0
    assert report["by_flag"]["mue_capped"]["charge"] > 0  # the cap shows up
    assert report["by_payer"] == {"default": {"messages": report["messages"], **report["lines"]}}
    assert report["sample"] and len(report["sample"]) == 5
    assert {line["reason"] for sample in report["sample"] for line in sample["lines"]} - {""}
    text = invoke("recode", "--state", str(state), "--mappings", str(site), "--dry-run", "--sample", "1")
    assert text.exit_code == 0 and "(dry run: nothing written)" in text.stdout
    assert "mue_capped" in text.stdout and "sample (the first 1 changed encounters):" in text.stdout
    assert hashlib.sha256(state.read_bytes()).hexdigest() == before


def test_the_real_run_emits_what_the_dry_run_reported_and_nets_to_a_fresh_replay(
    state: Path, site: Path, feed: Path, tmp_path: Path
) -> None:
    dry = invoke("recode", "--state", str(state), "--mappings", str(site), "--dry-run", "--report", "json")
    report = json.loads(dry.stdout)
    out = tmp_path / "recode.ndjson"
    real = invoke("recode", "--state", str(state), "--mappings", str(site), "--out", str(out), "--report", "json")
    assert real.exit_code == 0, real.output
    emitted = messages(out)
    assert len(emitted) == report["messages"] and by_code(emitted) == report["by_code"]
    assert by_code(emitted, units=True) == report["units_by_code"]
    assert report["units_by_code"]["96375"]["charge"] < report["units_by_code"]["96375"]["credit"]  # the cap
    assert {k: v for k, v in json.loads(real.stdout).items() if k not in ("dry_run", "notes")} == {
        k: v for k, v in report.items() if k not in ("dry_run", "notes")
    }
    fresh = tmp_path / "fresh.ndjson"
    assert invoke("replay", str(feed), "--mappings", str(site), "--out", str(fresh)).exit_code == 0
    assert net(messages(tmp_path / "first.ndjson", out)) == net(messages(fresh))
    db = sqlite3.connect(state)
    causes = Counter(cause for (cause,) in db.execute("SELECT cause FROM history"))
    pending = db.execute("SELECT count(*) FROM outbox WHERE sent = 0").fetchone()[0]
    db.close()
    assert causes["recode"] == len(emitted) and pending == 0
    # The settings were recorded: a later replay under the new mappings is not refused, and has nothing to add.
    later = invoke("replay", str(feed), "--state", str(state), "--mappings", str(site), "--out", str(out))
    assert later.exit_code == 0, later.output
    assert "charge messages: 0" in later.stderr
    again = invoke("recode", "--state", str(state), "--mappings", str(site), "--dry-run", "--report", "json")
    assert json.loads(again.stdout)["encounters"]["changed"] == 0


MUE_FILE = """"CPT codes, descriptions and other data only are copyright 2025 American Medical Association."
"HCPCS/CPT Code","Outpatient Hospital Services MUE Values","MUE Adjudication Indicator","MUE Rationale"
"96375","1","1 Line Edit","Clinical: Data"
"96376","2","3 Date of Service Edit: Clinical","Clinical: Data"
"96361","4","2 Date of Service Edit: Policy","Nature of Service/Procedure"
"""


def test_after_an_mue_import_the_dry_run_reports_the_deltas_and_the_real_run_nets_to_a_fresh_replay(
    state: Path, feed: Path, tmp_path: Path
) -> None:
    cms = tmp_path / "MCR_MUE_OutpatientHospitalServices_Eff_01-01-2026.csv"
    cms.write_text(MUE_FILE, encoding="utf-8")
    site = tmp_path / "cms-site"
    site.mkdir()
    imported = invoke(
        "policy",
        "import-mue",
        str(cms),
        "--claim-type",
        "facility",
        "--effective",
        "2026-01-01",
        "--mappings",
        str(site),
    )
    assert imported.exit_code == 0, imported.output
    before = hashlib.sha256(state.read_bytes()).hexdigest()
    dry = invoke("recode", "--state", str(state), "--mappings", str(site), "--dry-run", "--report", "json")
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.stdout)
    assert hashlib.sha256(state.read_bytes()).hexdigest() == before
    fresh = tmp_path / "fresh.ndjson"
    assert invoke("replay", str(feed), "--mappings", str(site), "--out", str(fresh)).exit_code == 0
    expected, changed = deltas(net(messages(tmp_path / "first.ndjson")), net(messages(fresh)))
    assert report["by_code"] == expected and report["encounters"]["changed"] == changed > 0
    assert report["by_flag"]["mue_capped"]["charge"] > 0
    assert all("/mue-2026q1" in sample["policy_version"] for sample in report["sample"])
    out = tmp_path / "recode.ndjson"
    real = invoke("recode", "--state", str(state), "--mappings", str(site), "--out", str(out))
    assert real.exit_code == 0, real.output
    assert by_code(messages(out)) == report["by_code"]
    assert net(messages(tmp_path / "first.ndjson", out)) == net(messages(fresh))


def test_without_out_the_messages_stay_queued_and_a_subset_records_no_settings(
    state: Path, site: Path, feed: Path
) -> None:
    recorded = meta(state)
    result = invoke("recode", "--state", str(state), "--mappings", str(site), "--encounter", "V16-0000003")
    assert result.exit_code == 0, result.output
    assert "encounters: 1 recoded, 1 changed" in result.stdout
    assert "left in the outbox" in result.stdout and "not recorded" in result.stdout
    db = sqlite3.connect(state)
    pending = db.execute("SELECT encounter_key FROM outbox WHERE sent = 0").fetchall()
    db.close()
    assert pending == [("GENHOSP|V16-0000003",)]
    assert meta(state) == recorded
    refused = invoke("replay", str(feed), "--mappings", str(site), "--state", str(state))
    assert refused.exit_code == 2 and "pass --recode" in refused.stderr


def test_a_claim_type_and_payer_recode_are_recorded_for_later_replays(state: Path, feed: Path, tmp_path: Path) -> None:
    out = tmp_path / "recode.ndjson"
    result = invoke("recode", "--state", str(state), "--claim-type", "professional", "--policy", "Medicare")
    assert result.exit_code == 0, result.output
    assert "settings: claim type professional (was facility), default payer policy medicare (was default)" in (
        result.stdout
    )
    assert meta(state)["coding.claim_type"] == "professional" and meta(state)["coding.policy"] == "medicare"
    later = invoke("replay", str(feed), "--state", str(state), "--claim-type", "professional", "--policy", "medicare")
    assert later.exit_code == 0, later.output
    drained = invoke("recode", "--state", str(state), "--out", str(out), "--dry-run")
    assert drained.exit_code == 0 and not out.exists()  # a dry run opens no output


def test_usage_errors_are_one_line_and_exit_2(state: Path, tmp_path: Path) -> None:
    one_line_error(
        invoke("recode", "--state", str(tmp_path / "missing.db")), f"no such state file: {tmp_path}/missing.db"
    )
    one_line_error(invoke("recode", "--state", str(state), "--encounter", "NOPE"), "no encounter 'NOPE' in the state")
    one_line_error(
        invoke("recode", "--state", str(state), "--policy", "acme"),
        "unknown payer policy 'acme' (known: aetna, bcbs, cigna, default, medicare, uhc)",
    )
    unknown = invoke("recode", "--state", str(state), "--policy-version", "2031q4", "--dry-run")
    assert unknown.exit_code == 2 and len(unknown.stderr.strip().splitlines()) == 1
    assert (
        unknown.stderr.startswith("error: unknown policy version '2031q4' (loaded: ") and "cpt-2026.1" in unknown.stderr
    )
    known = invoke("recode", "--state", str(state), "--policy-version", "cpt-2026.1", "--dry-run")
    assert known.exit_code == 0 and "policy version cpt-2026.1 is loaded" in known.stdout
    not_a_state = tmp_path / "junk.db"
    not_a_state.write_text("not a database")
    result = invoke("recode", "--state", str(not_a_state), "--dry-run")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: cannot open the SQLite state file") and "Traceback" not in result.output


@pytest.mark.integration
def test_on_postgresql_a_dry_run_is_rolled_back_and_the_real_run_queues_the_deltas(
    cluster: LocalPostgres, site: Path, feed: Path, tmp_path: Path
) -> None:
    def counts(dsn: str) -> list[int]:
        queries = [f"SELECT count(*) FROM {table}" for table in ("outbox", "history", "emitted", "meta")]
        with psycopg.connect(dsn) as conn:
            return [
                conn.execute(query).fetchone()[0] for query in [*queries, "SELECT count(*) FROM outbox WHERE NOT sent"]
            ]

    with cluster.fresh_schema("recode") as dsn:
        first = invoke("replay", str(feed), "--state", dsn, "--out", str(tmp_path / "first.ndjson"))
        assert first.exit_code == 0, first.output
        before = counts(dsn)
        dry = invoke("recode", "--state", dsn, "--mappings", str(site), "--dry-run", "--report", "json")
        assert dry.exit_code == 0, dry.output
        assert counts(dsn) == before
        changed = json.loads(dry.stdout)["messages"]
        real = invoke("recode", "--state", dsn, "--mappings", str(site), "--report", "json")
        assert real.exit_code == 0, real.output
        after = counts(dsn)
        assert after[0] - before[0] == after[1] - before[1] == after[4] - before[4] == changed > 0
