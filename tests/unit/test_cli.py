from pathlib import Path

from click.testing import CliRunner

from connector.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]


def test_check_validates_the_shipped_mappings() -> None:
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("mappings OK:")


def test_check_exits_2_and_names_file_and_line_for_a_bad_site_overlay(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text(
        "meta: {name: routes, reviewed: 2026-11-26, reference: x}\ntexts:\n  - {text: V, route: vein}\n"
    )
    result = CliRunner().invoke(cli, ["check", "--mappings", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{tmp_path}/routes.yaml:3: route 'vein'" in result.output


def test_explain_shows_why_a_push_got_no_line(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "cases:\n"
        "  - name: Two pushes twenty minutes apart\n"
        "    administrations:\n"
        "      - {id: z1, drug: Ondansetron 4 mg, method: IVP, start: 2026-03-02T10:00}\n"
        "      - {id: z2, drug: Zofran 4 mg, method: IVP, start: 2026-03-02T10:20}\n"
    )
    result = CliRunner().invoke(cli, ["explain", str(scenario)])
    assert result.exit_code == 0, result.output
    assert "96374 x1" in result.output
    assert "2026-03-02 10:20-05:00  z2" in result.output  # local time with its offset
    assert "no line (within_interval): Within 30 min of reported z1 at 2026-03-02 10:00-05:00 (20 min apart)" in (
        result.output
    )
    assert "source: scenario" in result.output


def test_explain_rejects_a_file_that_is_not_a_scenario(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just a list\n")
    result = CliRunner().invoke(cli, ["explain", str(bad)])
    assert result.exit_code == 2
    assert "expected a mapping with a 'cases' list" in result.output


def test_the_demo_encounters_explain_without_error() -> None:
    result = CliRunner().invoke(cli, ["explain", str(ROOT / "examples" / "demo-encounters.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.count("Encounter ") == 3
