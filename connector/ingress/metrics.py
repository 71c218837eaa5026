"""Prometheus metrics of ``ivpush listen``, in the registry of the process's ``Metrics``.

Labels are codes only: the listener (``mllp``, ``http``), the ACK code (``AA``, ``AE``,
``AR``), the HTTP status, and ivpush's reject reason codes. The loop heartbeat and the broker
connection state are the ``Metrics`` ones (``ivpush_loop_heartbeat_age_seconds``,
``ivpush_broker_connected``, ``ivpush_reconnects_total``), kept by the publisher thread, so
``/healthz`` works as for the consumer; ``readiness`` replaces the consumer's ``/readyz`` checks
(a listener has no store and no outbox).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from connector.observability.metrics import CONFIRM_BUCKETS, Metrics
from connector.observability.server import Check, HealthLimits, liveness

LISTENERS = ("mllp", "http")
ACK_CODES = ("AA", "AE", "AR")


class IngressMetrics:
    """Connections, messages, answers and confirm latency of the listeners.

    Args:
        base: The process's metrics (registry, heartbeat, broker state); a new one when None.
    """

    def __init__(self, base: Metrics | None = None) -> None:
        self.base = base if base is not None else Metrics()
        r = self.base.registry
        self.connections = Counter(
            "ivpush_ingress_connections_total", "Connections accepted, by listener.", ["listener"], registry=r
        )
        self.open_connections = Gauge(
            "ivpush_ingress_connections_open", "Connections open now, by listener.", ["listener"], registry=r
        )
        self.refused = Counter(
            "ivpush_ingress_connections_refused_total",
            "Connections closed at once because max_connections were open, by listener.",
            ["listener"],
            registry=r,
        )
        self.messages = Counter(
            "ivpush_ingress_messages_total",
            "Messages (MLLP frames, HTTP requests) received, by listener.",
            ["listener"],
            registry=r,
        )
        self.acks = Counter(
            "ivpush_ingress_acks_total",
            "Answers by listener and ACK code (AA stored; AE not stored, send again; AR rejected).",
            ["listener", "code"],
            registry=r,
        )
        self.rejects = Counter(
            "ivpush_ingress_rejects_total",
            "Messages answered AE/AR (HTTP 4xx/5xx), by listener and reason code.",
            ["listener", "reason"],
            registry=r,
        )
        self.confirm_latency = Histogram(
            "ivpush_ingress_confirm_seconds",
            "Seconds from a message being handed to the publisher to its broker confirm (queueing included).",
            buckets=CONFIRM_BUCKETS,
            registry=r,
        )
        for listener in LISTENERS:
            self.connections.labels(listener)
            self.open_connections.labels(listener)
            self.messages.labels(listener)
            for code in ACK_CODES:
                self.acks.labels(listener, code)

    def answered(self, listener: str, code: str, reason: str | None = None) -> None:
        """One message answered with this ACK code (and reject reason when not ``AA``)."""
        self.acks.labels(listener, code).inc()
        if reason is not None:
            self.rejects.labels(listener, reason).inc()


def readiness(metrics: Metrics, limits: HealthLimits) -> tuple[bool, dict[str, Check]]:
    """Ready when the publisher loop is alive and connected to the broker (``/readyz`` of ``ivpush listen``)."""
    alive, checks = liveness(metrics, limits)
    checks["broker"] = {"ok": metrics.broker_connected}
    if not metrics.broker_connected:
        checks["broker"]["detail"] = "not connected to the broker: messages are answered AE until it is back"
    return alive and metrics.broker_connected, checks
