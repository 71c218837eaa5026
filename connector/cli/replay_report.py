"""What a replay reports on stderr: counts of records, inputs, rejects, messages, lines and outcomes (no PHI)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connector.service import Outcome


def _no_outcome() -> Outcome:
    """An empty total (the service is imported when a replay runs, not with ``replay --help``)."""
    from connector.service import Outcome

    return Outcome()


@dataclass
class ReplayReport:
    """Counts of a replay (no PHI), and notes on the settings it ran under.

    Attributes:
        records: Archive records read.
        totals: What the service did, summed over the batches.
        rejects: Reject code → count.
        notes: Appended to the summary (``recoded under new settings: zone …``).
    """

    records: int = 0
    totals: Outcome = field(default_factory=_no_outcome)
    rejects: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for stderr."""
        totals = self.totals
        lines = ", ".join(f"{key} x{count}" for key, count in sorted(totals.lines.items())) or "none"
        reject_text = ", ".join(f"{code} x{count}" for code, count in sorted(self.rejects.items())) or "none"
        text = (
            f"records read: {self.records}; inputs: {totals.inputs} ({totals.duplicates} duplicates); "
            f"administrations: {totals.administrations}; encounter events: {totals.events}; "
            f"rejects: {sum(self.rejects.values())} ({reject_text}); charge messages: {totals.messages}; "
            f"lines: {lines}; {outcome_summary(stored_outcomes(totals))}"
        )
        return "; ".join([text, *self.notes])


def add(total: Outcome, part: Outcome) -> None:
    """Add the counts of ``part`` to ``total``."""
    total.inputs += part.inputs
    total.duplicates += part.duplicates
    total.administrations += part.administrations
    total.events += part.events
    total.messages += part.messages
    for key, count in part.lines.items():
        total.lines[key] = total.lines.get(key, 0) + count
    for pair, count in part.administration_outcomes.items():
        total.administration_outcomes[pair] = total.administration_outcomes.get(pair, 0) + count
    total.encounter_outcomes.update(part.encounter_outcomes)  # the latest coding of each encounter


def stored_outcomes(total: Outcome) -> dict[tuple[str, str], int]:
    """(outcome, reason) → administrations, over the latest coding of every encounter coded."""
    counts: dict[tuple[str, str], int] = {}
    for per_encounter in total.encounter_outcomes.values():
        for pair, count in per_encounter.items():
            counts[pair] = counts.get(pair, 0) + count
    return counts


def outcome_summary(counts: dict[tuple[str, str], int]) -> str:
    """``administrations coded 12; no line: 3 inpatient, 1 within_interval; needs review: 2 unmapped_route``."""
    by_kind: dict[str, dict[str, int]] = {}
    for (kind, reason), count in counts.items():
        by_kind.setdefault(kind, {})[reason] = by_kind.get(kind, {}).get(reason, 0) + count
    parts = [f"administrations coded {sum(by_kind.get('coded', {}).values())}"]
    for kind, label in (("no_line", "no line"), ("needs_review", "needs review")):
        reasons = by_kind.get(kind, {})
        text = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))
        parts.append(f"{label}: {text or 'none'}")
    return "; ".join(parts)
