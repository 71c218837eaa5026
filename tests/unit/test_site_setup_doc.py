"""docs/site-setup.md stays true: its excerpts are in the files it names, its commands print what it quotes.

Conventions of the page (every fenced block follows one of them):

- ``In `examples/…/FILE`…:`` then a ```` ```yaml ```` or ```` ```hl7 ```` block: consecutive lines of FILE;
- ```` `ivpush …` prints…: ```` (or ``reports it as``) then a ```` ```text ```` block: each line is part
  of a line the command prints, run through click's CliRunner from the repository root;
- the one ``mapping error:`` block: what ``ivpush check`` prints for a misspelt zone in a copy of
  ``examples/site``.

The counts of the shipped tables (drugs, routes, methods, chargemaster items) in ``ivpush check``'s
summary are compared as numbers, not values: they grow with the shipped mappings, which this page
does not document.
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "site-setup.md"
SITE = ROOT / "examples" / "site"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
EXCERPT = re.compile(r"\bIn\s+`(examples/[^`]+)`[^`\n]*:\n\n```(?:yaml|hl7)\n(.*?)^```$", re.M | re.S)
OUTPUT = re.compile(r"`(ivpush [^`]+)`\s+(?:prints|reports it as)[^`]*?:\n\n```text\n(.*?)^```$", re.M | re.S)
ERROR = re.compile(r"^```text\n(mapping error: [^\n]*)\n```$", re.M)
SHIPPED_COUNTS = re.compile(r"\b\d+ (drugs|routes|methods|chargemaster items)\b")
ENVIRONMENT = ("IVPUSH_MAPPINGS", "IVPUSH_CODING__MAPPINGS", "IVPUSH_CONFIG", "IVPUSH_TIMEZONE", "IVPUSH_CODING__ZONE")

TEXT = DOC.read_text(encoding="utf-8")
EXCERPTS: list[tuple[str, str]] = EXCERPT.findall(TEXT)
OUTPUTS: list[tuple[str, str]] = OUTPUT.findall(TEXT)


def _normal(text: str) -> str:
    return SHIPPED_COUNTS.sub(r"N \1", text)


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(ROOT)  # site files are named by the path given: examples/site/…
    yield


@cache
def _printed(command: str) -> list[str]:
    """The lines a command prints (stdout and stderr), run in-process from the repository root."""
    args = shlex.split(command)
    assert args[0] == "ivpush", command
    result = CliRunner().invoke(cli, args[1:], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return [_normal(line) for line in result.output.splitlines()]


def test_every_block_of_the_page_is_checked() -> None:
    checked = len(EXCERPTS) + len(OUTPUTS) + len(ERROR.findall(TEXT))
    assert checked == len(FENCE.findall(TEXT)) > 10


@pytest.mark.parametrize(("path", "block"), EXCERPTS, ids=[path for path, _ in EXCERPTS])
def test_each_excerpt_is_consecutive_lines_of_its_file(path: str, block: str) -> None:
    content = (ROOT / path).read_bytes().decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    assert block.endswith("\n") and f"\n{block}" in f"\n{content}", f"{path} no longer holds:\n{block}"


@pytest.mark.parametrize(("command", "block"), OUTPUTS, ids=[command for command, _ in OUTPUTS])
def test_each_quoted_output_is_printed_by_its_command(command: str, block: str) -> None:
    printed = _printed(command)
    for quoted in filter(None, (line.strip() for line in block.splitlines())):
        wanted = _normal(quoted)
        assert any(wanted in line for line in printed), f"`{command}` no longer prints:\n{quoted}\n" + "\n".join(
            printed
        )


def test_the_example_site_checks_and_names_its_settings() -> None:
    printed = "\n".join(_printed("ivpush check --mappings examples/site"))
    assert "mappings OK:" in printed
    assert "site: examples/site/site.yaml:1 (1 facility zones, identity PV1-19 > PID-18 > order > visit" in printed


def test_the_quoted_mistake_is_what_check_prints_for_a_misspelt_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "examples" / "site"
    shutil.copytree(SITE, copy)
    site = copy / "site.yaml"
    site.write_text(site.read_text(encoding="utf-8").replace("America/New_York", "America/New_Yrok"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["check", "--mappings", "examples/site"])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("mapping error:")]
    assert ERROR.findall(TEXT) == errors
