"""End-to-end tests: the figures measured against the real broker are summarised at the end of the run."""

import pytest
from broker import FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("ivpush bus figures")
        for text in FIGURES:
            terminalreporter.write_line(text)
