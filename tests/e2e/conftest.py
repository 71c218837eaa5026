"""End-to-end tests: the figures measured against the real broker are summarised at the end of the run."""

import pytest
from broker import FIGURES


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "run_last: runs after every other test of the session (the PHI log scan)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``run_last`` tests go to the end: the PHI log scan must see every consumer log of the session."""
    items.sort(key=lambda item: item.get_closest_marker("run_last") is not None)  # stable: order kept


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("ivpush bus figures")
        for text in FIGURES:
            terminalreporter.write_line(text)
