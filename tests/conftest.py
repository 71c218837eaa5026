"""Shared fixtures: the shipped policy, loaded once per session."""

from __future__ import annotations

import pytest

from connector.policy.loader import load_policy
from connector.policy.model import Policy


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy()
