"""The forwarder's Prometheus metrics, in the registry of the process's ``Metrics``.

Labels are codes only: ACK codes (``AA`` … ``CR``), outcomes and retry reasons. The broker
connection gauge, reconnects and the loop heartbeat are the shared ones of ``Metrics``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from connector.forward.ack import CODES
from connector.observability.metrics import Metrics
from connector.observability.server import Check, HealthLimits, liveness

OUTCOMES = ("acked", "parked")
RETRY_REASONS = ("connect", "timeout", "closed", "oversize", "bad_ack")
# A receiver answers in ms when it only queues, in seconds when it posts before answering.
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ForwardMetrics:
    """Sent, ACK codes, outcomes, retries and ACK latency of ``ivpush forward``."""

    def __init__(self, metrics: Metrics) -> None:
        self.base = metrics
        r = metrics.registry
        self.sent = Counter(
            "ivpush_forward_sent_total", "Messages written to the receiver (resends included).", registry=r
        )
        self.acks = Counter(
            "ivpush_forward_acks_total", "ACKs received, by MSA-1 code (AA, AE, AR, CA, CE, CR).", ["code"], registry=r
        )
        self.outcomes = Counter(
            "ivpush_forward_messages_total",
            "Deliveries settled: acked (receiver accepted) or parked (refused, or out of attempts).",
            ["outcome"],
            registry=r,
        )
        self.retries = Counter(
            "ivpush_forward_retries_total",
            "Resends after connect failure, ACK timeout, lost connection, oversize or unusable ACK.",
            ["reason"],
            registry=r,
        )
        self.latency = Histogram(
            "ivpush_forward_ack_seconds", "Seconds from writing a message to its ACK.", buckets=ACK_BUCKETS, registry=r
        )
        self.receiver = Gauge(
            "ivpush_forward_receiver_connected", "1 while an MLLP connection to the receiver is open.", registry=r
        )
        for code in CODES:  # series exist at 0 from the start
            self.acks.labels(code)
        for outcome in OUTCOMES:
            self.outcomes.labels(outcome)
        for reason in RETRY_REASONS:
            self.retries.labels(reason)

    def answered(self, code: str, seconds: float) -> None:
        """An ACK with this code came back ``seconds`` after the send."""
        self.acks.labels(code).inc()
        self.latency.observe(seconds)

    def settled(self, outcome: str) -> None:
        """A delivery was acked or parked."""
        self.outcomes.labels(outcome).inc()

    def retry(self, reason: str) -> None:
        """A send will be repeated."""
        self.retries.labels(reason).inc()


def readiness(metrics: Metrics, limits: HealthLimits) -> tuple[bool, dict[str, Check]]:
    """``/readyz`` of ``ivpush forward``: the loop is alive and consuming (it keeps no store).

    A receiver that does not answer is not a readiness failure: messages wait in the queue and
    ``ivpush_forward_retries_total`` says why.
    """
    alive, checks = liveness(metrics, limits)
    checks["broker"] = {"ok": metrics.broker_connected}
    if not metrics.broker_connected:
        checks["broker"]["detail"] = "not consuming: connecting or reconnecting to the broker"
    return alive and metrics.broker_connected, checks
