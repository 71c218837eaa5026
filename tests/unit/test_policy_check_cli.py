"""``ivpush check`` validates and reports the site files (site, payer map, places of service)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from connector.cli.main import cli

META = "meta: {name: site, reviewed: 2026-11-26, reference: test, effective_from: 2020-01-01}\n"


def test_ivpush_check_reports_the_site_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("mappings OK:")
    assert "site: shipped defaults" in first and "payer map: " in first and "places of service: " in first
    (tmp_path / "site.yaml").write_text(META + "zones:\n  MAIN: Mars/Olympus\n", encoding="utf-8")
    bad = CliRunner().invoke(cli, ["check", "--mappings", str(tmp_path)])
    assert bad.exit_code == 2
    assert f"{tmp_path}/site.yaml:3: 'Mars/Olympus' is not a known IANA time zone" in bad.output


def test_ivpush_check_names_the_line_of_a_bad_payer_map_entry(tmp_path: Path) -> None:
    (tmp_path / "payer_map.yaml").write_text(META + 'entries:\n  - {id: "X1", payer: humana}\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["check", "--mappings", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{tmp_path}/payer_map.yaml:3: payer 'humana' is not a payer policy" in result.output
