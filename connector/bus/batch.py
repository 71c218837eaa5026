"""One batch of deliveries through steps 1–4 of the delivery contract (``consumer`` loops around it).

1. parse every delivery (``inputs.parse_delivery``); an ``AdapterError`` marks it poison;
2. ``Service.handle`` the parsed records in **one** store transaction (dedup keys, encounter
   state, outbox rows) and commit;
3. park the poison deliveries (``parking.park``: a confirmed copy with the reason in headers);
4. ack the batch (``multiple=True`` on its last tag).

The order is the guarantee: nothing is acked before its records are committed or its copy is
parked, so a crash before 4 only redelivers the batch, and its dedup keys make the committed
part an ack-only. Kept apart from the loop so that the per-batch decisions (which input is at
fault, which failure is not) read in one place: a delivery whose processing raises something
other than an ``AdapterError`` (a bug on one input) is isolated by re-handling the batch
delivery by delivery and parked with ``x-ivpush-error: processing_error``, while a transient
failure (store locked, I/O) is no input's fault and surfaces as ``TransientError`` for the
loop to reconnect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from connector.adapters.errors import AdapterError
from connector.bus.base import Bus, Delivery
from connector.bus.control import ConsumerSettings, ConsumerStats, TransientError, is_transient
from connector.bus.faults import Faults
from connector.bus.parking import Poison, park
from connector.bus.telemetry import count_outcome, count_parked
from connector.bus.topology import Topology
from connector.model import ParsedRecord
from connector.observability.metrics import Metrics
from connector.service import Outcome, Service

LOG = logging.getLogger("ivpush.bus")
PROCESSING_ERROR = "processing_error"
Parse = Callable[[Delivery], list[ParsedRecord]]


class BatchProcessor:
    """Parses, commits, parks and acks one batch, counting into the consumer's stats and metrics."""

    def __init__(
        self,
        service: Service,
        parse: Parse,
        topology: Topology,
        settings: ConsumerSettings,
        faults: Faults,
        stats: ConsumerStats,
        metrics: Metrics,
    ) -> None:
        self.service = service
        self.parse = parse
        self.topology = topology
        self.settings = settings
        self.faults = faults
        self.stats = stats
        self.metrics = metrics

    def process(self, bus: Bus, deliveries: list[Delivery]) -> None:
        """One batch: parse, one transaction, park poison, ack (see the module docstring)."""
        received = time.monotonic()
        self.faults.hit("after_receive")
        good: list[tuple[Delivery, list[ParsedRecord]]] = []
        poison: list[Poison] = []
        for delivery in deliveries:
            try:
                good.append((delivery, self.parse(delivery)))
            except AdapterError as error:
                poison.append((delivery, error.code, error.detail))
        poison.extend(self._handle(good))
        self.faults.hit("after_commit")
        if poison:
            park(bus, poison, self.topology, self.settings, self.metrics)
        bus.ack(max(d.delivery_tag for d in deliveries), multiple=True)
        self.faults.hit("after_ack")
        self.stats.batches += 1
        self.stats.deliveries += len(deliveries)
        self.stats.parked += len(poison)
        count_parked(self.metrics, [(delivery, code) for delivery, code, _ in poison])
        self.metrics.batch_done(len(deliveries), time.monotonic() - received)
        LOG.debug(
            "batch of %d acked (%d parked)", len(deliveries), len(poison),
            extra={"deliveries": len(deliveries), "parked": len(poison)},
        )  # fmt: skip

    def _handle(self, good: list[tuple[Delivery, list[ParsedRecord]]]) -> list[Poison]:
        """Commit the batch; when it fails for a non-transient reason, isolate the culprits."""
        try:
            self._count(good, self.service.handle([record for _, records in good for record in records]))
            return []
        except Exception as error:  # classified below: transient → reconnect, else isolate
            if is_transient(error):
                raise TransientError(f"store: {error.__class__.__name__}") from error
            LOG.error("batch failed (%s): retrying delivery by delivery", error.__class__.__name__)
        failed: list[Poison] = []
        for delivery, records in good:
            try:
                self._count([(delivery, records)], self.service.handle(records))
            except Exception as error:  # same, one delivery at a time
                if is_transient(error):
                    raise TransientError(f"store: {error.__class__.__name__}") from error
                failed.append((delivery, PROCESSING_ERROR, error.__class__.__name__))
        return failed

    def _count(self, handled: list[tuple[Delivery, list[ParsedRecord]]], outcome: Outcome) -> None:
        """Add a committed outcome to the stats and the metrics (a commit also proves the store answers)."""
        self.stats.add(outcome)
        self.metrics.store_probed(ok=True)
        count_outcome(self.metrics, handled, outcome)
