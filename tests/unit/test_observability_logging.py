"""Structured logs: stdlib records come out as JSON lines (or text) with the standard fields."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from click.testing import CliRunner

from connector.cli.consume import consume
from connector.observability.logging import configure_logging


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_stdlib_records_become_json_lines_with_timestamp_level_logger_event_and_fields(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    logging.getLogger("ivpush.bus").info("parked input %s: %s", "in-7", "not_hl7", extra={"code": "not_hl7"})
    logging.getLogger("ivpush.bus").debug("not at INFO")
    structlog.get_logger("ivpush.other").warning("outbox", pending=3)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 2
    first = lines[0]
    assert list(first)[:4] == ["timestamp", "level", "logger", "event"]
    assert first["level"] == "info" and first["logger"] == "ivpush.bus"
    assert first["event"] == "parked input in-7: not_hl7" and first["code"] == "not_hl7"
    assert first["timestamp"].endswith("Z")
    assert lines[1] == {**lines[1], "level": "warning", "logger": "ivpush.other", "event": "outbox", "pending": 3}


def test_text_format_and_non_ascii_is_written_as_is(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging("DEBUG", "text", stream=out)
    logging.getLogger("ivpush.bus").debug("batch of %d acked", 8, extra={"parked": 0})
    assert "batch of 8 acked" in out.getvalue() and "parked=0" in out.getvalue()
    out = io.StringIO()
    configure_logging("DEBUG", "json", stream=out)  # replaces the previous handler, not adds one
    logging.getLogger("x").info("é")
    assert out.getvalue().count("\n") == 1 and '"event": "é"' in out.getvalue()
    assert sum(type(h).__name__ == "_IvpushHandler" for h in logging.getLogger().handlers) == 1


def test_unknown_levels_and_formats_are_refused_with_the_choices(restore_root: None) -> None:
    with pytest.raises(ValueError, match=r"unknown log level .LOUD.*DEBUG, INFO"):
        configure_logging("loud")
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        configure_logging("INFO", "xml")


def test_consume_refuses_an_unknown_log_level_before_doing_anything() -> None:
    result = CliRunner().invoke(consume, ["--log-level", "LOUD"])
    assert result.exit_code == 2 and "command line: logging.level:" in result.output and "'LOUD'" in result.output
    result = CliRunner().invoke(consume, ["--log-format", "xml"])
    assert result.exit_code == 2 and "'xml' is not one of 'json', 'text'" in result.output
