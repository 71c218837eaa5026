"""Replay refuses a state coded under other settings unless --recode, and then says it recoded."""

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from connector.cli.main import cli
from connector.cli.replay_settings import PREFIX, mappings_digest

FEED = Path(__file__).resolve().parents[2] / "examples" / "feeds" / "ed-visit-2026-03-02.hl7"
CHICAGO = "America/Chicago"


def replay(*args: str) -> Result:
    return CliRunner().invoke(cli, ["replay", str(FEED), *args])


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state.db"
    first = replay("--zone", CHICAGO, "--state", str(path), "--out", str(tmp_path / "first.ndjson"))
    assert first.exit_code == 0, first.output
    assert "recoded" not in first.stderr and "no record" not in first.stderr  # a new state: nothing to say
    return path


def meta(path: Path) -> dict[str, str]:
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT name, value FROM meta WHERE name LIKE 'coding.%'").fetchall())
    finally:
        db.close()


def test_a_state_replay_records_the_settings_it_coded_under(state: Path) -> None:
    assert meta(state) == {
        f"{PREFIX}zone": CHICAGO,
        f"{PREFIX}claim_type": "facility",
        f"{PREFIX}policy": "default",
        f"{PREFIX}mappings": mappings_digest(None),
    }


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--zone", "UTC"], "with zone America/Chicago, this run uses UTC"),
        (["--zone", CHICAGO, "--claim-type", "professional"], "with claim type facility, this run uses professional"),
        (["--zone", CHICAGO, "--policy", "bcbs"], "with default payer policy default, this run uses bcbs"),
    ],
)
def test_diff_against_a_state_coded_under_other_settings_exits_2_with_one_line(
    state: Path, tmp_path: Path, args: list[str], named: str
) -> None:
    out = tmp_path / "diff.ndjson"
    out.write_text("kept\n")
    before = state.read_bytes()
    refused = replay("--diff-against", str(state), "--out", str(out), *args)
    assert refused.exit_code == 2
    assert refused.stderr.strip().splitlines() == [
        f"error: state was coded {named}; pass --recode to recode under the new settings"
    ]
    assert out.read_text() == "kept\n"  # refused before any output was opened
    assert state.read_bytes() == before


def test_recode_runs_and_the_summary_names_what_changed(state: Path) -> None:
    diff = replay("--diff-against", str(state), "--zone", "UTC", "--recode")
    assert diff.exit_code == 0, diff.output
    assert "recoded under new settings: zone UTC (was America/Chicago)" in diff.stderr
    assert meta(state)[f"{PREFIX}zone"] == CHICAGO  # a dry run records nothing


def test_a_state_replay_under_other_settings_is_refused_too_and_recoded_on_request(state: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "second.ndjson")
    refused = replay("--zone", "UTC", "--state", str(state), "--out", out)
    assert refused.exit_code == 2
    assert "state was coded with zone America/Chicago, this run uses UTC" in refused.stderr
    assert meta(state)[f"{PREFIX}zone"] == CHICAGO
    recoded = replay("--zone", "UTC", "--state", str(state), "--out", out, "--recode")
    assert recoded.exit_code == 0, recoded.output
    assert "recoded under new settings: zone UTC (was America/Chicago)" in recoded.stderr
    assert meta(state)[f"{PREFIX}zone"] == "UTC"
    again = replay("--zone", "UTC", "--state", str(state), "--out", out)
    assert again.exit_code == 0 and "recoded" not in again.stderr


def test_other_mappings_are_a_difference(state: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "routes.yaml").write_text(
        "meta: {name: routes, reviewed: 2026-11-26, reference: site dictionary}\n"
        "texts:\n  - {text: IV push slow, route: iv, method: push, reference: site dictionary}\n"
    )
    refused = replay("--diff-against", str(state), "--zone", CHICAGO, "--mappings", str(site))
    assert refused.exit_code == 2
    old, new = mappings_digest(None)[:12], mappings_digest(site)[:12]
    assert f"state was coded with mappings {old}, this run uses {new}" in refused.stderr


def test_a_state_without_a_record_is_not_refused_and_the_summary_says_so(state: Path) -> None:
    db = sqlite3.connect(state)  # as a state from before settings were recorded
    with db:
        db.execute("DELETE FROM meta WHERE name LIKE 'coding.%'")
    db.close()  # the last connection: the change is checkpointed into the file --diff-against copies
    diff = replay("--diff-against", str(state), "--zone", "UTC")
    assert diff.exit_code == 0, diff.output
    assert "the state held no record of the settings it was coded under (older state); recorded: zone UTC" in (
        diff.stderr
    )
