"""`ivpush replay` when one encounter cannot be rendered (issue #12, class 3): reject lines, the rest charged.

The failing renderer is registered for the test (``connector.cli.replay.renderers``) and raises
for one encounter key: the adapters now refuse the identifiers that made the ChargeItem renderer
raise, and what is tested is replay's handling of any failure to code or render one encounter.
"""

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from broker import expected_charges, hl7_feed
from click.testing import CliRunner, Result

from connector.cli import replay as replay_module
from connector.cli.main import cli
from connector.emitters import json_charge
from connector.model.messages import ChargeMessage

BAD = "GENHOSP|V00001"


def broken(names: Iterable[str], *_args: object) -> dict[str, Callable[[ChargeMessage], bytes]]:
    def render(message: ChargeMessage) -> bytes:
        if message.encounter.key == BAD:
            raise ValueError(f"refused: {BAD}")
        return json_charge.render(message)

    return dict.fromkeys(names, render)


@pytest.fixture
def feed_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(replay_module, "renderers", broken)
    path = tmp_path / "feed.hl7"
    path.write_bytes(b"\n".join(hl7_feed(3, tag="X")) + b"\n")
    return path


def replay(feed: Path, tmp_path: Path, *args: str) -> tuple[Result, list[dict[str, object]]]:
    rejects = tmp_path / "rejects.ndjson"
    result = CliRunner().invoke(
        cli, ["replay", str(feed), "--rejects", str(rejects), "--out", str(tmp_path / "out.ndjson"), *args]
    )
    lines = [json.loads(line) for line in rejects.read_text().splitlines()] if rejects.exists() else []
    return result, lines


def charged(tmp_path: Path) -> set[str]:
    return {json.loads(line)["message_id"] for line in (tmp_path / "out.ndjson").read_text().splitlines()}


def good_ids() -> set[str]:
    return {mid for mid, _ in expected_charges([b for b in hl7_feed(3, tag="X") if b"V00001" not in b])}


def test_the_inputs_of_the_encounter_are_rejected_with_a_code_and_the_others_charged(
    feed_file: Path, tmp_path: Path
) -> None:
    result, rejects = replay(feed_file, tmp_path)
    assert result.exit_code == 0, result.output
    assert result.exception is None and "Traceback" not in result.output
    assert charged(tmp_path) == good_ids()
    assert len(rejects) == 5  # its four pushes and its discharge, all in the one batch that failed
    assert {(r["code"], r["detail"]) for r in rejects} == {("render_failed", "json renderer: ValueError")}
    assert all(r["source"] == str(feed_file) and str(r["position"]).startswith("byte ") for r in rejects)
    assert "rejects: 5 (render_failed x5)" in result.stderr


def test_an_encounter_that_cannot_be_closed_at_the_end_gets_a_reject_line_naming_it(
    feed_file: Path, tmp_path: Path
) -> None:
    result, rejects = replay(feed_file, tmp_path, "--batch-size", "1", "--strict")
    assert result.exit_code == 1, result.output  # --strict: any reject
    assert charged(tmp_path) == good_ids()
    (discharge, encounter) = rejects  # the discharge's own batch failed; the pushes were committed
    assert discharge["code"] == "render_failed" and discharge["source"] == str(feed_file)
    assert encounter == {
        "source": None,
        "position": None,
        "encounter": BAD,
        "code": "render_failed",
        "detail": "json renderer: ValueError",
    }
