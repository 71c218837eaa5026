"""The metrics and health endpoints over real HTTP on an ephemeral port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from broker import REPO

from connector.observability.metrics import Metrics
from connector.observability.server import HealthLimits, ObservabilityError, ObservabilityServer

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def get(port: int, path: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, 4xx/5xx included."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_metrics_are_served_in_the_prometheus_text_format() -> None:
    metrics = Metrics()
    metrics.input_outcomes({("hl7v2", "accepted"): 5})
    metrics.charges_queued(1, {"charge:96376": 2})
    with ObservabilityServer(metrics, port=0) as server:
        status, kind, body = get(server.port, "/metrics")
        assert status == 200 and kind.startswith("text/plain")
        assert 'ivpush_inputs_total{outcome="accepted",type="hl7v2"} 5.0' in body
        assert 'ivpush_charge_lines_total{action="charge",code="96376"} 2.0' in body
        assert "# TYPE ivpush_publish_confirm_seconds histogram" in body
        metrics.input_outcomes({("hl7v2", "accepted"): 1})
        assert 'ivpush_inputs_total{outcome="accepted",type="hl7v2"} 6.0' in get(server.port, "/metrics")[2]
        assert get(server.port, "/nothing")[0] == 404


def test_healthz_follows_the_loop_heartbeat() -> None:
    clock = Clock()
    metrics = Metrics(clock=clock)
    with ObservabilityServer(metrics, port=0, limits=HealthLimits(heartbeat_stale=30)) as server:
        metrics.heartbeat()
        status, kind, body = get(server.port, "/healthz")
        assert (status, kind) == (200, "application/json") and json.loads(body)["status"] == "ok"
        clock.now += 31
        status, _, body = get(server.port, "/healthz")
        assert status == 503
        assert json.loads(body)["checks"]["loop"]["detail"].startswith("no heartbeat from the consumer loop for 31s")
        metrics.heartbeat()
        assert get(server.port, "/healthz")[0] == 200


def test_readyz_needs_the_broker_the_store_and_an_outbox_that_moves() -> None:
    clock = Clock()
    metrics = Metrics(clock=clock)
    limits = HealthLimits(heartbeat_stale=1000, store_stale=60, outbox_stuck=120)

    def ready() -> tuple[int, dict[str, bool]]:
        status, _, body = get(server.port, "/readyz")
        return status, {name: check["ok"] for name, check in json.loads(body)["checks"].items()}

    with ObservabilityServer(metrics, port=0, limits=limits) as server:
        assert ready() == (503, {"loop": True, "broker": False, "store": False, "outbox": True})
        metrics.set_connected(True)
        metrics.store_probed(ok=True)
        assert ready() == (200, {"loop": True, "broker": True, "store": True, "outbox": True})
        metrics.outbox(3, clock.now)  # a charge waits for its confirm
        clock.now += 121
        metrics.store_probed(ok=True)
        assert ready() == (503, {"loop": True, "broker": True, "store": True, "outbox": False})
        metrics.outbox(0, None)
        metrics.store_probed(ok=False)
        assert ready() == (503, {"loop": True, "broker": True, "store": False, "outbox": True})
        metrics.store_probed(ok=True)
        metrics.reconnecting()
        assert ready() == (503, {"loop": True, "broker": False, "store": True, "outbox": True})
        metrics.set_connected(True)
        assert ready()[0] == 200


def test_a_port_in_use_is_a_clear_error_and_the_consumer_exits_2_saying_so(tmp_path: Path) -> None:
    with ObservabilityServer(Metrics(), port=0) as server:
        port = server.port
        with pytest.raises(ObservabilityError, match=f"cannot serve metrics on 127.0.0.1:{port}: .*--metrics-port"):
            ObservabilityServer(Metrics(), port=port).start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("IVPUSH_")}
        env.update(IVPUSH_AMQP_URL="amqp://guest:guest@127.0.0.1:9/", IVPUSH_METRICS_PORT=str(port))
        result = subprocess.run(
            [sys.executable, "-m", "connector.cli.consume", "--state", str(tmp_path / "state.db")],
            env=env, capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr


def test_the_server_releases_its_port_when_stopped() -> None:
    server = ObservabilityServer(Metrics(), port=0).start()
    port = server.port
    server.stop()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
