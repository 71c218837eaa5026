"""Capped exponential back-off with jitter (reconnects and unroutable retries)."""

from __future__ import annotations

import random  # jitter for reconnect back-off, not ids (TID251 is off for connector/bus)
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """``uniform(c / 2, c)`` seconds with ``c = min(cap, base * 2**attempt)``; ``reset()`` after a success.

    The jitter spreads the reconnects of many consumers after a broker restart; the lower
    half keeps a minimum pause so a dead broker is not hammered.
    """

    base: float = 0.5
    cap: float = 30.0
    attempt: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay(self) -> float:
        """The delay before the next try (and count the try)."""
        ceiling = min(self.cap, self.base * (2 ** min(self.attempt, 32)))
        self.attempt += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start again from ``base`` (after a success)."""
        self.attempt = 0
