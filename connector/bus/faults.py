"""Crash injection for the delivery-contract tests: ``IVPUSH_FAULT=point:N[,point:N]``.

At the N-th time the consumer passes ``point`` it calls ``os._exit(137)`` (what ``kill -9``
leaves behind: no ``finally``, no flush, no ack). Points, in contract order:

- ``after_receive``: a batch was received, nothing processed (per batch);
- ``after_commit``: the batch's store transaction committed, not acked (per batch);
- ``after_park``: the batch's poison was parked (copies confirmed), not acked (per batch with
  poison): the batch comes back and its poison is parked again, under the same ``message_id``;
- ``after_publish``: a charge message was written to the socket, its confirm not yet matched
  (per message; the publisher calls the relay's hook after the I/O pump that wrote it);
- ``after_confirm``: confirms arrived, rows not yet marked sent (per relay round);
- ``after_ack``: the batch was acked (per batch).

The points are hit on the production path whether or not a fault is armed (no branch adds or
skips work when one is): unset, every hit is a dictionary lookup.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter
from collections.abc import Mapping

FAULT_ENV = "IVPUSH_FAULT"
POINTS = ("after_receive", "after_commit", "after_park", "after_publish", "after_confirm", "after_ack")
EXIT_CODE = 137


class Faults:
    """Counts passes through each point and exits at the configured one."""

    def __init__(self, spec: str | None = None) -> None:
        self._at: dict[str, int] = {}
        self._seen: Counter[str] = Counter()
        for item in (spec or "").split(","):
            if not item.strip():
                continue
            point, _, count = item.strip().partition(":")
            if point not in POINTS or not count.isdigit() or int(count) < 1:
                raise ValueError(f"{FAULT_ENV}: expected point:N with point in {', '.join(POINTS)}, got '{item}'")
            self._at[point] = int(count)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Faults:
        """From ``IVPUSH_FAULT`` (none when unset)."""
        env = os.environ if environ is None else environ
        return cls(env.get(FAULT_ENV))

    @property
    def active(self) -> bool:
        """Some point is armed."""
        return bool(self._at)

    def hit(self, point: str) -> None:
        """Pass through ``point``: exit the process at its N-th pass."""
        if point not in self._at:
            return
        self._seen[point] += 1
        if self._seen[point] == self._at[point]:
            logging.getLogger("ivpush.bus").warning("fault injection: exiting at %s:%d", point, self._at[point])
            for handler in logging.getLogger().handlers:
                handler.flush()
            sys.stderr.flush()
            os._exit(EXIT_CODE)
