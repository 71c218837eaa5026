"""What a committed batch adds to the metrics: input records by type and outcome, charge messages and lines.

Kept apart from the consumer loop so that the loop reads as the delivery contract. Labels are
codes only (``observability.metrics``): the input type comes from the delivery's declared
format or first bytes (``inputs.input_kind``), never from its content.
"""

from __future__ import annotations

from connector.bus.base import Delivery
from connector.bus.inputs import input_kind
from connector.model import ParsedRecord
from connector.observability.metrics import Metrics
from connector.service import Outcome


def count_outcome(metrics: Metrics, handled: list[tuple[Delivery, list[ParsedRecord]]], outcome: Outcome) -> None:
    """Record one committed ``Service.handle`` call over these deliveries and their records.

    Every record is ``accepted`` unless the outcome lists its dedup key as a duplicate; the
    type of a record is the type of the delivery that carried it.
    """
    counts: dict[tuple[str, str], int] = {}
    kinds: dict[str, str] = {}  # dedup key → type, only needed to place duplicates
    for delivery, records in handled:
        kind = input_kind(delivery)
        counts[(kind, "accepted")] = counts.get((kind, "accepted"), 0) + len(records)
        if outcome.duplicate_keys:
            kinds.update((record.dedup_key, kind) for record in records)
    for key in outcome.duplicate_keys:
        kind = kinds.get(key, "unknown")
        counts[(kind, "accepted")] = counts.get((kind, "accepted"), 0) - 1
        counts[(kind, "duplicate")] = counts.get((kind, "duplicate"), 0) + 1
    metrics.input_outcomes(counts)
    metrics.charges_queued(outcome.messages, outcome.lines, outcome.administration_outcomes)


def count_parked(metrics: Metrics, parked: list[tuple[Delivery, str]]) -> None:
    """Record parked deliveries (each one input of its type) and their reject codes."""
    for delivery, code in parked:
        metrics.input_outcomes({(input_kind(delivery), "parked"): 1})
        metrics.rejected(code)
