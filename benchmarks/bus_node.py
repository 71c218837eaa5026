"""The bus benchmark's plumbing: the broker node, child processes, topology, preloading, queue depth."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pika

from benchmarks.bus_children import message_id
from connector.bus.base import Outgoing
from connector.bus.config import AmqpSettings
from connector.bus.inputs import CONTENT_TYPES, FORMAT_HEADER
from connector.bus.rabbitmq import RabbitBus
from connector.bus.topology import Topology

ROOT = Path(__file__).resolve().parent.parent
OWN_PORT = "47672"  # a node started here (make test's uses 45672, the tests' own 46672)


_BOOTING: tuple[subprocess.Popen[str], str] | None = None  # (start script, its folder) from prestart()


def prestart() -> None:
    """Begin booting the throwaway node now (no IVPUSH_AMQP_URL), so its ~20 s boot overlaps
    the sections that run before the bus one; ``Node()`` then waits for it.

    The boot is mostly waiting (the Erlang VM starting, ~4 CPU-seconds), on the other core.
    """
    global _BOOTING  # noqa: PLW0603 - one background boot per benchmark process
    if os.environ.get("IVPUSH_AMQP_URL") or _BOOTING is not None:
        return
    folder = tempfile.mkdtemp(prefix="ivpush-bench-rabbitmq-")
    script = ROOT / "deploy" / "local" / "rabbitmq.sh"
    env = {**os.environ, "IVPUSH_RABBITMQ_DIR": folder, "IVPUSH_RABBITMQ_PORT": OWN_PORT}
    process = subprocess.Popen(
        [str(script), "start"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _BOOTING = (process, folder)
    atexit.register(_abandon)


def _abandon() -> None:
    """At exit, stop a node booted in the background that no section took (an earlier failure)."""
    if _BOOTING is not None:
        process, folder = _BOOTING
        process.communicate()
        script = ROOT / "deploy" / "local" / "rabbitmq.sh"
        env = {**os.environ, "IVPUSH_RABBITMQ_DIR": folder, "IVPUSH_RABBITMQ_PORT": OWN_PORT}
        subprocess.run([str(script), "stop"], env=env, capture_output=True, timeout=120, check=False)
        shutil.rmtree(folder, ignore_errors=True)


class Node:
    """The broker: the one in IVPUSH_AMQP_URL, or one started here (stopped by ``close``)."""

    def __init__(self) -> None:
        self.folder: str | None = None
        self.source = "IVPUSH_AMQP_URL"
        self.pid_file: Path | None = None
        url = os.environ.get("IVPUSH_AMQP_URL")
        if url:
            folder = os.environ.get("IVPUSH_RABBITMQ_DIR")
            self.pid_file = Path(folder) / "rabbitmq.pid" if folder else None
        else:
            url = self._start()
        self.url = url
        try:
            pika.BlockingConnection(pika.URLParameters(url)).close()
        except pika.exceptions.AMQPError as error:
            self.close()
            raise RuntimeError(f"broker at {self.source} unreachable: {error.__class__.__name__}") from error

    def _start(self) -> str:
        global _BOOTING  # noqa: PLW0603 - the background boot is consumed once
        script = ROOT / "deploy" / "local" / "rabbitmq.sh"
        if _BOOTING is None:
            prestart()
        assert _BOOTING is not None
        process, self.folder = _BOOTING
        _BOOTING = None
        self.source = f"deploy/local/rabbitmq.sh on port {OWN_PORT}"
        self.pid_file = Path(self.folder) / "rabbitmq.pid"
        try:
            stdout, stderr = process.communicate(timeout=240)
        except subprocess.TimeoutExpired as error:
            process.kill()
            self.close()
            raise RuntimeError(f"no IVPUSH_AMQP_URL and {script.name} start timed out") from error
        if process.returncode != 0:
            self.close()
            raise RuntimeError(f"no IVPUSH_AMQP_URL and {script.name} start failed: {stderr.strip()[-400:]}")
        return stdout.strip().splitlines()[-1]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "IVPUSH_RABBITMQ_DIR": str(self.folder), "IVPUSH_RABBITMQ_PORT": OWN_PORT}

    def cpu_seconds(self) -> float | None:
        """The broker process's CPU time so far, when its pid is known."""
        try:
            return cpu_seconds(int(self.pid_file.read_text().split()[0])) if self.pid_file else None
        except (OSError, ValueError, IndexError):
            return None

    def close(self) -> None:
        """Stop the node started here (never the shared one)."""
        if self.folder is not None:
            script = ROOT / "deploy" / "local" / "rabbitmq.sh"
            subprocess.run([str(script), "stop"], env=self._env(), capture_output=True, timeout=120, check=False)
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (``/proc/PID/stat``)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_env(url: str) -> dict[str, str]:
    """The environment of a child: no IVPUSH_* of ours but the broker URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVPUSH_")}
    return {**env, "IVPUSH_AMQP_URL": url, "PYTHONUNBUFFERED": "1"}


def wait_for_text(path: Path, text: str, process: subprocess.Popen[bytes], timeout: float = 120) -> float:
    """``perf_counter`` when ``text`` appears in a child's output file (polled every 5 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return time.perf_counter()
        if process.poll() is not None:
            break
        time.sleep(0.005)
    log = path.read_text(errors="replace")[-1500:] if path.exists() else ""
    raise RuntimeError(f"'{text}' never appeared (exit {process.poll()}): {log}")


def stop(process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """SIGTERM, wait; SIGKILL when it does not exit."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def inputs(topology: Topology, fmt: str, bodies: list[bytes]) -> list[Outgoing]:
    """Input messages as a producer sends them: one record each, format declared."""
    kind = CONTENT_TYPES[fmt]
    return [Outgoing(topology.input_exchange, "bench", b, message_id(b), kind, {FORMAT_HEADER: fmt}) for b in bodies]


def preload(node: Node, topology: Topology, fmt: str, bodies: list[bytes]) -> float:
    """Declare the topology and publish the inputs with confirms; seconds it took."""
    bus = RabbitBus(AmqpSettings(url=node.url, connection_name="ivpush bench preload"))
    try:
        bus.declare(topology)
        started = time.perf_counter()
        messages = inputs(topology, fmt, bodies)
        for start in range(0, len(messages), 2000):
            report = bus.publish(messages[start : start + 2000], 60.0)
            if not report.complete:
                raise RuntimeError(
                    f"preload: {len(report.confirmed)} of {len(messages[start : start + 2000])} confirmed"
                )
        return time.perf_counter() - started
    finally:
        bus.close()


def delete(node: Node, topology: Topology) -> None:
    """Remove a phase's queues and exchanges."""
    connection = pika.BlockingConnection(pika.URLParameters(node.url))
    try:
        channel = connection.channel()
        for queue in topology.queues():
            channel.queue_delete(queue.name)
        for exchange in topology.exchanges():
            channel.exchange_delete(exchange.name)
    finally:
        connection.close()


def depth(channel: Any, queue: str) -> int:
    """Ready messages in a queue (nobody consumes the output queue while rates are measured)."""
    return int(channel.queue_declare(queue, passive=True).method.message_count)


def topology_for(phase: str) -> Topology:
    """A fresh, unique topology (json output only)."""
    return Topology(prefix=f"bench-{phase}-{os.getpid()}-{time.time_ns() % 10**10:x}", formats=("json",))
