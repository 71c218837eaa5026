"""Visit windows and order links: the merge and look-up rules every store shares.

The identity chain's last two service steps read what earlier messages said: the encounter a
placer order was first seen with, and the ADT visit of a patient that covers an administration.
Both must give the same answer whatever order the messages arrive in, and never guess.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from connector.model.events import VisitWindow


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a if b is None else b
    return b if b < a else a


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a if b is None else b
    return b if b > a else a


def widen(held: VisitWindow | None, new: VisitWindow) -> VisitWindow:
    """Two statements of one visit (same patient and encounter) merged: the earliest start, the latest end.

    A missing start or end is unknown, not unbounded: a known one wins over it. So an admit
    (no discharge time) and a discharge (with one) give the closed window whatever order they
    arrive in, and the merge is commutative and associative. A window whose end no message
    gave stays open.
    """
    if held is None:
        return new
    return replace(held, start=_earliest(held.start, new.start), end=_latest(held.end, new.end))


def covers(window: VisitWindow, at: datetime) -> bool:
    """Whether ``at`` lies in the window (instants compared; both ends included).

    A window without a start covers nothing: no message said when the visit began.
    """
    if window.start is None or at < window.start:
        return False
    return window.end is None or at <= window.end


def single_visit_at(windows: Iterable[VisitWindow], at: datetime) -> str | None:
    """The encounter key of the only window covering ``at``; None when none does, or several (never guess)."""
    found = {window.encounter_key for window in windows if covers(window, at)}
    return found.pop() if len(found) == 1 else None


def claim(pending: dict[str, str], order_ids: Iterable[str], encounter_key: str) -> None:
    """Record in ``pending`` (this unit of work's new links) a claim of ``order_ids`` by an encounter.

    Two encounters claiming one order id in one unit of work: the smaller key wins, so the
    outcome does not depend on the order of the claims. Links committed before are the
    caller's to keep (they win over anything pending).
    """
    for order_id in order_ids:
        held = pending.get(order_id)
        if held is None or encounter_key < held:
            pending[order_id] = encounter_key
