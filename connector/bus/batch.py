"""One batch of deliveries through steps 1–4 of the delivery contract (``consumer`` loops around it).

1. parse every delivery (``inputs.read_delivery``); an ``AdapterError`` marks it poison;
2. ``Service.handle_inputs`` the parsed records (each delivery one input) in **one** store
   transaction (dedup keys, encounter state, outbox rows) and commit;
3. park the poison deliveries (``parking.park``: a confirmed copy with the reason in headers);
4. ack the batch (``multiple=True`` on its last tag).

The order is the guarantee: nothing is acked before its records are committed or its copy is
parked, so a crash before 4 only redelivers the batch, and its dedup keys make the committed
part an ack-only. Kept apart from the loop so that the per-batch decisions (which input is at
fault, which failure is not) read in one place:

- a delivery whose encounter cannot be coded or rendered (``Service.handle_inputs`` leaves it
  out of the transaction: ``Outcome.rejected``) is parked with ``coding_failed`` or
  ``render_failed`` while the rest of the batch commits;
- a batch whose processing raises anything else that is not transient (a bug) is isolated by
  re-handling it delivery by delivery, the failing ones parked with ``processing_error``;
- a transient failure (store locked, I/O) is no input's fault and surfaces as
  ``TransientError`` for the loop to reconnect;
- a delivery read with some parts rejected on their own (FHIR Bundle entries:
  ``inputs.read_delivery``) commits its good records and is parked once, with the first
  rejected part's code and detail (``Bundle.entry[3]: …``, ``(+N more rejected parts)``);
  re-driving the copy is safe: the committed records come back as duplicates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from connector.adapters.errors import AdapterError
from connector.adapters.result import Parsed, PartReject
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
Parse = Callable[[Delivery], list[ParsedRecord] | Parsed]


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
        partial: list[Poison] = []
        for delivery in deliveries:
            try:
                found = self.parse(delivery)
            except AdapterError as error:
                poison.append(Poison(delivery, error.code, error.detail))
                continue
            parsed = found if isinstance(found, Parsed) else Parsed(tuple(found))
            if parsed.records:
                good.append((delivery, list(parsed.records)))
            if parsed.rejects:
                partial.append(_parts_rejected(delivery, parsed.rejects))
        poison.extend(self._handle(good))
        parked = {id(item.delivery) for item in poison}  # parked whole: no second copy for its parts
        poison.extend(item for item in partial if id(item.delivery) not in parked)
        self.faults.hit("after_commit")
        if poison:
            park(bus, poison, self.topology, self.settings, self.metrics)
            self.faults.hit("after_park")
        bus.ack(max(d.delivery_tag for d in deliveries), multiple=True)
        self.faults.hit("after_ack")
        self.stats.batches += 1
        self.stats.deliveries += len(deliveries)
        self.stats.parked += len(poison)
        count_parked(self.metrics, [(item.delivery, item.code) for item in poison])
        self.metrics.batch_done(len(deliveries), time.monotonic() - received)
        LOG.debug(
            "batch of %d acked (%d parked)", len(deliveries), len(poison),
            extra={"deliveries": len(deliveries), "parked": len(poison)},
        )  # fmt: skip

    def _handle(self, good: list[tuple[Delivery, list[ParsedRecord]]]) -> list[Poison]:
        """Commit the batch; when it fails for a non-transient reason, isolate the culprits."""
        try:
            return self._commit(good)
        except Exception as error:  # classified below: transient → reconnect, else isolate
            if is_transient(error):
                raise TransientError(f"store: {error.__class__.__name__}") from error
            LOG.error("batch failed (%s): retrying delivery by delivery", error.__class__.__name__)
            self.metrics.error("batch_failed")
        failed: list[Poison] = []
        for delivery, records in good:
            try:
                failed.extend(self._commit([(delivery, records)]))
            except Exception as error:  # same, one delivery at a time
                if is_transient(error):
                    raise TransientError(f"store: {error.__class__.__name__}") from error
                failed.append(Poison(delivery, PROCESSING_ERROR, error.__class__.__name__, _dedup_key(records)))
        return failed

    def _commit(self, items: list[tuple[Delivery, list[ParsedRecord]]]) -> list[Poison]:
        """One ``handle_inputs`` call (a delivery is one input); the deliveries it left out, to park."""
        outcome = self.service.handle_inputs([records for _, records in items])
        self._count([item for index, item in enumerate(items) if index not in outcome.rejected], outcome)
        return [
            Poison(delivery, failure.code, failure.detail, _dedup_key(records))
            for index, (delivery, records) in enumerate(items)
            if (failure := outcome.rejected.get(index)) is not None
        ]

    def _count(self, handled: list[tuple[Delivery, list[ParsedRecord]]], outcome: Outcome) -> None:
        """Add a committed outcome to the stats and the metrics (a commit also proves the store answers)."""
        self.stats.add(outcome)
        self.metrics.store_probed(ok=True)
        count_outcome(self.metrics, handled, outcome)


def _dedup_key(records: list[ParsedRecord]) -> str | None:
    """The delivery's dedup key when it holds one record (the parked copy's id), else None."""
    return records[0].dedup_key if len(records) == 1 else None


def _parts_rejected(delivery: Delivery, rejects: tuple[PartReject, ...]) -> Poison:
    """The parked copy of a delivery whose other parts were kept: the first rejected part's reason."""
    first = rejects[0]
    record = first.part.rpartition("#")[0]  # ``line 2`` in a delivery of several records
    detail = f"{record}: {first.error.detail}" if record else first.error.detail
    more = f" (+{len(rejects) - 1} more rejected parts)" if len(rejects) > 1 else ""
    return Poison(delivery, first.error.code, detail + more)
