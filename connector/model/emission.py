"""When an encounter's lines are emitted (a setting of the service, ``--emit-on``).

Here rather than in ``connector.service`` (which re-exports it) so that the commands' options can
name its values without importing the service and the rules (start-up, issue #15).
"""

from __future__ import annotations

from enum import StrEnum


class EmitOn(StrEnum):
    """When an encounter's lines are emitted."""

    CLOSE = "close"  # at discharge/finish, idle timeout, or end of a replay; deltas after that
    CHANGE = "change"  # after every change
