"""Shared fixtures: the shipped policy, loaded once per session; the local RabbitMQ node and PostgreSQL cluster."""

from __future__ import annotations

import pytest
from broker import LocalBroker, local_broker
from postgres import LocalPostgres, local_postgres

from connector.policy.loader import load_policy
from connector.policy.model import Policy


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy()


@pytest.fixture(scope="module")
def rabbit() -> LocalBroker:
    """The session's RabbitMQ node (started on first use; skip locally / fail under CI without one)."""
    return local_broker()


@pytest.fixture(scope="module")
def cluster() -> LocalPostgres:
    """The session's PostgreSQL cluster (started on first use; skip locally / fail under CI without one)."""
    return local_postgres()
