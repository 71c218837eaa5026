from click.testing import CliRunner

from connector.cli.main import cli


def test_the_demo_replays_the_bundled_feeds_and_prints_the_expected_charges() -> None:
    result = CliRunner().invoke(cli, ["demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ed, obs = result.output.split("Encounter OBS20260302042")
    assert "Encounter ED20260302001 — emergency, facility claim" in ed
    for code, units in [("96374", 1), ("96375", 1), ("96376", 1), ("96361", 2)]:
        assert any(f"  {code}  " in row and f"  {units}  0450" in row for row in ed.splitlines()), (code, ed)
    assert "96372" not in ed  # the IM ketorolac is explained, never charged
    assert [row.split()[1] for row in obs.splitlines() if row.startswith("  2026")] == [
        "96365",
        "96375",
        "96366",
        "96376",
    ]
    assert "rejects: 0 (none)" in result.output
