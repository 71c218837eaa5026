"""``/metrics``, ``/healthz`` and ``/readyz`` over HTTP, on a background thread.

The server only reads what the consumer thread records in ``Metrics``: it never touches the
broker connection or the store itself (neither pika connections nor SQLite connections may be
used from a second thread), so the consumer probes the store on its own thread and the server
judges how recent and how good that probe was.

- ``/metrics``: the Prometheus text exposition of the consumer's registry.
- ``/healthz``: 200 while the consumer loop's heartbeat is fresh (the process is alive and not
  wedged), else 503. Reconnect back-off keeps the heartbeat fresh: a broker outage is not a
  reason to restart the process.
- ``/readyz``: 200 only when the loop is alive, the broker connection is consuming, the last
  store probe succeeded recently and the oldest pending outbox row is younger than
  ``outbox_stuck``; else 503. Both health bodies are JSON naming every check and its result.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connector.observability.metrics import Metrics

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9464  # the port registered for OpenTelemetry/Prometheus exporters


class ObservabilityError(Exception):
    """The HTTP endpoint cannot be served (address in use, bad host)."""


@dataclass(frozen=True)
class HealthLimits:
    """When a check fails.

    Attributes:
        heartbeat_stale: Seconds without a loop heartbeat before ``/healthz`` fails (the
            loop beats at every poll, outbox drain round, connect attempt and every 5 s of
            a reconnect back-off; the longest silent step is a connect or confirm timeout,
            30 s by default).
        store_stale: Seconds since the last successful store probe before the store counts
            as unreachable (the consumer probes every few seconds when idle).
        outbox_stuck: Seconds the oldest pending outbox row may wait before the outbox
            counts as stuck (unroutable or unconfirmed charges).
    """

    heartbeat_stale: float = 120.0
    store_stale: float = 120.0
    outbox_stuck: float = 300.0


Check = dict[str, Any]
Readiness = Callable[["Metrics", HealthLimits], tuple[bool, dict[str, Check]]]


def liveness(metrics: Metrics, limits: HealthLimits) -> tuple[bool, dict[str, Check]]:
    """Whether the process loop is alive, with the heartbeat check."""
    age = metrics.seconds_since_heartbeat()
    ok = age < limits.heartbeat_stale
    check: Check = {"ok": ok, "heartbeat_age_seconds": round(age, 3)}
    if not ok:
        check["detail"] = f"no heartbeat from the consumer loop for {age:.0f}s (limit {limits.heartbeat_stale:.0f}s)"
    return ok, {"loop": check}


def readiness(metrics: Metrics, limits: HealthLimits) -> tuple[bool, dict[str, Check]]:
    """Whether the consumer is ready, with every check (loop, broker, store, outbox)."""
    _, checks = liveness(metrics, limits)
    checks["broker"] = {"ok": metrics.broker_connected}
    if not metrics.broker_connected:
        checks["broker"]["detail"] = "not connected to the broker (connecting or reconnecting)"
    checks["store"] = _store_check(metrics, limits)
    age = metrics.outbox_oldest_age()
    outbox: Check = {"ok": age < limits.outbox_stuck, "oldest_pending_age_seconds": round(age, 3)}
    if not outbox["ok"]:
        outbox["detail"] = f"a charge message has waited {age:.0f}s for its confirm (limit {limits.outbox_stuck:.0f}s)"
    checks["outbox"] = outbox
    return all(check["ok"] for check in checks.values()), checks


def _store_check(metrics: Metrics, limits: HealthLimits) -> Check:
    if metrics.store_ok is None or metrics.store_checked_at is None:
        return {"ok": False, "detail": "the store has not been probed yet"}
    age = metrics.clock() - metrics.store_checked_at
    if not metrics.store_ok:
        return {"ok": False, "detail": "the last store probe failed", "checked_seconds_ago": round(age, 3)}
    if age >= limits.store_stale:
        return {"ok": False, "detail": f"no store probe for {age:.0f}s", "checked_seconds_ago": round(age, 3)}
    return {"ok": True, "checked_seconds_ago": round(age, 3)}


class ObservabilityServer:
    """Serves the endpoints from a daemon thread (``ThreadingHTTPServer``).

    Args:
        metrics: What to expose and judge.
        host: Address to bind (default loopback; ``0.0.0.0`` in a container).
        port: TCP port; 0 binds an ephemeral port (see ``port`` after ``start``).
        limits: Health thresholds.
        ready: The ``/readyz`` checks (default: the consumer's; ``ivpush listen`` has its own).
    """

    def __init__(
        self,
        metrics: Metrics,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        limits: HealthLimits | None = None,
        ready: Readiness | None = None,
    ) -> None:
        self.metrics = metrics
        self.ready = ready or readiness
        self.host = host
        self.requested_port = port
        self.limits = limits or HealthLimits()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (after ``start``)."""
        if self._server is None:
            raise ObservabilityError("the observability server is not started")
        return int(self._server.server_address[1])

    def start(self) -> ObservabilityServer:
        """Bind and serve in the background.

        Raises:
            ObservabilityError: The address cannot be bound (in use, unknown host, no permission).
        """
        handler = type(
            "Handler", (_Handler,), {"metrics": self.metrics, "limits": self.limits, "ready": staticmethod(self.ready)}
        )
        try:
            self._server = ThreadingHTTPServer((self.host, self.requested_port), handler)
        except OSError as error:
            reason = error.strerror or error.__class__.__name__
            raise ObservabilityError(
                f"cannot serve metrics on {self.host}:{self.requested_port}: {reason} "
                "(choose another --metrics-port, or 0 to turn the endpoint off)"
            ) from error
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="ivpush-metrics", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server, self._thread = None, None

    def __enter__(self) -> ObservabilityServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    metrics: Metrics
    limits: HealthLimits
    ready: Readiness
    server_version = "ivpush"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            # prometheus_client is imported by Metrics, once a command records any: not by `--help` (#15)
            from prometheus_client import CONTENT_TYPE_LATEST, generate_latest  # noqa: PLC0415

            self._send(HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry))
        elif path == "/healthz":
            self._health(*liveness(self.metrics, self.limits))
        elif path == "/readyz":
            self._health(*self.ready(self.metrics, self.limits))
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found: /metrics, /healthz, /readyz\n")

    def _health(self, ok: bool, checks: dict[str, Check]) -> None:
        body = json.dumps({"status": "ok" if ok else "fail", "checks": checks}, sort_keys=True).encode() + b"\n"
        self._send(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, "application/json", body)

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: scrapes every few seconds would drown the consumer's own log lines."""
