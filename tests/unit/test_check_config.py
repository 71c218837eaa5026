"""``ivpush check``: settings problems as ``source: key: message`` (exit 2), ``--show`` with sources."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from connector.cli.main import cli
from connector.config import keys

SECRET = "Sup3rSecretPw"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's or CI's own IVPUSH_* variables must not leak into these checks."""
    for name in list(os.environ):
        if name.startswith("IVPUSH_"):
            monkeypatch.delenv(name)


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["check", *args], env=env)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_config_file_passes_and_is_summarised(tmp_path: Path) -> None:
    config = write(tmp_path / "ivpush.toml", f"[amqp]\nurl = 'amqp://u:{SECRET}@h/'\nprefetch = 50\n")
    result = run("--config", str(config), env={"IVPUSH_LOG_LEVEL": "debug"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("mappings OK:")
    assert lines[1] == f"settings OK: 3 of {len(keys())} set ({config} 2, environment 1), the rest default"
    assert SECRET not in result.output


def test_without_a_broker_url_check_passes_with_a_note() -> None:
    result = run()
    assert result.exit_code == 0, result.output
    assert "note: amqp.url is not set" in result.output


def test_every_problem_is_printed_as_source_key_message_and_exits_2(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.toml", "[amqp]\nprefech = 3\nca_file = '/nonexistent/ca.pem'\n[coding]\npayer = 'acme'\n"
    )
    result = run("--config", str(config), env={"IVPUSH_AMQP__PREFETCH": "0"})
    assert result.exit_code == 2
    assert f"{config}: amqp.prefech: unknown key; [amqp] allows: url," in result.output
    assert "env IVPUSH_AMQP__PREFETCH: amqp.prefetch: Input should be greater than or equal to 1 (got '0')" in (
        result.output
    )
    assert "settings OK" not in result.output


def test_files_the_settings_name_must_exist(tmp_path: Path) -> None:
    env = {"IVPUSH_AMQP_CA_FILE": str(tmp_path / "ca.pem"), "IVPUSH_STATE": str(tmp_path / "no" / "state.db")}
    result = run(env=env)
    assert result.exit_code == 2
    assert f"env IVPUSH_AMQP_CA_FILE: amqp.ca_file: {tmp_path / 'ca.pem'}: no such readable file" in result.output
    assert f"env IVPUSH_STATE: state.url: the SQLite file's directory {tmp_path / 'no'} does not exist" in (
        result.output
    )


def test_tls_material_that_does_not_load_is_reported(tmp_path: Path) -> None:
    ca = write(tmp_path / "ca.pem", "not a certificate\n")
    result = run(env={"IVPUSH_AMQP_URL": "amqps://u:p@rabbit/", "IVPUSH_AMQP_CA_FILE": str(ca)})
    assert result.exit_code == 2
    assert "env IVPUSH_AMQP_CA_FILE: amqp.ca_file: TLS files: " in result.output


def test_a_default_payer_missing_from_the_mappings_is_reported_with_its_source(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", "[coding]\npayer = 'Acme'\n")
    result = run("--config", str(config))
    assert result.exit_code == 2
    assert result.output.startswith("mappings OK:")
    assert f"{config}: coding.payer: unknown payer policy 'acme'; the mappings have: aetna," in result.output


def test_a_missing_config_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    result = run("--config", str(tmp_path / "none.toml"))
    assert result.exit_code == 2
    assert f"--config: config: cannot read {tmp_path / 'none.toml'}: No such file or directory" in result.output


def test_mapping_and_settings_problems_are_all_reported(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text(
        "meta: {name: routes, reviewed: 2026-11-26, reference: x}\ntexts:\n  - {text: V, route: vein}\n"
    )
    result = run("--mappings", str(tmp_path), env={"IVPUSH_TIMEZONE": "Mars/Base"})
    assert result.exit_code == 2
    assert f"mapping error: {tmp_path}/routes.yaml:3: route 'vein'" in result.output
    assert "env IVPUSH_TIMEZONE: coding.zone: unknown time zone 'Mars/Base'" in result.output


def test_show_prints_every_key_with_its_source_and_redacts_secrets(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", "[metrics]\nport = 0\n")
    secret_file = write(tmp_path / "state", f"postgresql://ivpush:{SECRET}@db/ivpush\n")
    env = {"IVPUSH_AMQP_URL": f"amqps://ivpush:{SECRET}@rabbit/billing", "IVPUSH_STATE_FILE": str(secret_file)}
    result = run("--config", str(config), "--show", "--mappings", str(tmp_path), env=env)
    assert SECRET not in result.output
    shown = {line.split(" = ")[0]: line for line in result.output.splitlines() if " = " in line}
    assert set(shown) == set(keys())
    assert shown["amqp.url"].split() == [
        "amqp.url",
        "=",
        "amqps://ivpush:***@rabbit/billing",
        "(env",
        "IVPUSH_AMQP_URL)",
    ]
    assert shown["state.url"].endswith(f"(file {secret_file} (env IVPUSH_STATE_FILE))")
    assert shown["metrics.port"].split() == ["metrics.port", "=", "0", f"({config})"]
    assert shown["coding.mappings"].split() == ["coding.mappings", "=", str(tmp_path), "(command", "line)"]
    assert shown["amqp.prefetch"].split() == ["amqp.prefetch", "=", "200", "(default)"]


def test_show_with_invalid_values_says_why_nothing_is_shown() -> None:
    result = run("--show", env={"IVPUSH_AMQP__PREFETCH": "x"})
    assert result.exit_code == 2
    assert "settings not shown: fix the problems above first" in result.output
