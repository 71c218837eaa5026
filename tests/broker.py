"""Real-broker test helpers: the local RabbitMQ node, consumer processes, feeds and expected charges.

The node is the one ``make test`` started (``IVPUSH_AMQP_URL`` + ``IVPUSH_RABBITMQ_DIR`` in the
environment), else one started here with ``deploy/local/rabbitmq.sh`` in a temporary directory
(and stopped at exit). When no node can be had, tests **fail** under CI (``CI`` set) and skip
otherwise.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pika
import pytest

from connector.adapters.errors import AdapterError
from connector.bootstrap import local_zone, renderers
from connector.bus.base import Delivery, Outgoing
from connector.bus.config import AmqpSettings
from connector.bus.consumer import Consumer, ConsumerSettings, Stop
from connector.bus.errors import BusError
from connector.bus.inputs import CONTENT_TYPES, parse_delivery, read_delivery
from connector.bus.rabbitmq import RabbitBus
from connector.bus.topology import Topology
from connector.cli import options
from connector.cli.consume import consume
from connector.emitters import json_charge
from connector.model.messages import ChargeMessage
from connector.policy.loader import load_policy
from connector.service import Renderer, Service, ServiceSettings
from connector.store.memory import MemoryStore
from connector.store.sqlite import SqliteStore

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "deploy" / "local" / "rabbitmq.sh"
SAMPLES = REPO / "tests" / "samples"
IN_CI = bool(os.environ.get("CI"))
OWN_PORT = "46672"  # a node started by the tests themselves (make test's node uses 45672)


FIGURES: list[str] = []  # shown at the end of the run by tests/e2e/conftest.py
# Every consumer log file of the session (ConsumerProcess, ForkedConsumer): the PHI log scan
# (tests/e2e/test_metrics_and_logs.py, run last) reads them all.
CONSUMER_LOGS: list[Path] = []


def register_log(path: Path) -> None:
    """Add a consumer log to the session's PHI scan."""
    if path not in CONSUMER_LOGS:
        CONSUMER_LOGS.append(path)


def record_figures(text: str) -> None:
    """Keep measured figures for the end-of-run summary (and show them with ``-s``)."""
    FIGURES.append(text)
    sys.stdout.write(text + "\n")


def missing(reason: str) -> None:
    """No broker: a failure under CI, a skip on a developer's machine."""
    if IN_CI:
        pytest.fail(f"RabbitMQ required under CI: {reason}", pytrace=False)
    pytest.skip(f"no local RabbitMQ: {reason}")


@dataclass
class LocalBroker:
    """A local node driven by ``deploy/local/rabbitmq.sh``."""

    url: str
    script_env: dict[str, str]
    owned: bool

    def script(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *args],
            env={**os.environ, **self.script_env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stop(self) -> None:
        self.script("stop")

    def start(self) -> None:
        result = self.script("start")
        assert result.returncode == 0, result.stderr[-2000:]

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.script("ctl", *args, timeout=60)

    def written_env(self) -> dict[str, str]:
        """What ``rabbitmq.sh start`` wrote to DIR/env (amqps URL and CA when openssl is there)."""
        path = Path(self.script_env["IVPUSH_RABBITMQ_DIR"]) / "env"
        pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        return {key: value.strip('"') for key, value in pairs}

    @property
    def settings(self) -> AmqpSettings:
        return AmqpSettings(url=self.url, connection_name="ivpush tests")

    def bus(self) -> RabbitBus:
        return RabbitBus(self.settings)

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for an ivpush process against this node."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("IVPUSH_")}
        # metrics endpoint off unless a test asks for one: parallel consumers would share port 9464
        return {**env, "IVPUSH_AMQP_URL": self.url, "PYTHONUNBUFFERED": "1", "IVPUSH_METRICS_PORT": "0", **extra}

    def blocking(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.URLParameters(self.url))


_session: dict[str, LocalBroker | str] = {}  # "broker" → the node, or "failure" → why there is none


def _reachable(url: str) -> bool:
    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
    except pika.exceptions.AMQPError:
        return False
    return True


def local_broker() -> LocalBroker:
    """The session's node (started on first use); fails under CI / skips locally when impossible."""
    found = _session.get("broker")
    if isinstance(found, LocalBroker):
        return found
    if "failure" not in _session:
        _session.update(_start())
    found = _session.get("broker")
    if isinstance(found, LocalBroker):
        return found
    missing(str(_session.get("failure")))
    raise AssertionError("unreachable")


def _start() -> dict[str, LocalBroker | str]:
    url, folder = os.environ.get("IVPUSH_AMQP_URL"), os.environ.get("IVPUSH_RABBITMQ_DIR")
    if url and folder and _reachable(url):
        port = os.environ.get("IVPUSH_RABBITMQ_PORT", "45672")
        return {"broker": LocalBroker(url, {"IVPUSH_RABBITMQ_DIR": folder, "IVPUSH_RABBITMQ_PORT": port}, owned=False)}
    folder = tempfile.mkdtemp(prefix="ivpush-rabbitmq-")
    candidate = LocalBroker("", {"IVPUSH_RABBITMQ_DIR": folder, "IVPUSH_RABBITMQ_PORT": OWN_PORT}, owned=True)
    try:
        result = candidate.script("start")
    except (OSError, subprocess.TimeoutExpired) as error:
        return {"failure": f"deploy/local/rabbitmq.sh start: {error}"}
    if result.returncode != 0:
        return {"failure": f"deploy/local/rabbitmq.sh start failed: {result.stderr.strip()[-800:]}"}
    candidate.url = result.stdout.strip().splitlines()[-1]
    atexit.register(_stop_owned, candidate, folder)
    return {"broker": candidate}


def _stop_owned(broker: LocalBroker, folder: str) -> None:
    broker.stop()
    shutil.rmtree(folder, ignore_errors=True)


# --- topology and queues ----------------------------------------------------------------------


def fresh_topology(name: str, formats: tuple[str, ...] = ("json",)) -> Topology:
    """A topology of its own for one test (unique prefix)."""
    return Topology(prefix=f"t-{name}-{uuid.uuid4().hex[:8]}", formats=formats)


def declare(broker: LocalBroker, topology: Topology) -> None:
    bus = broker.bus()
    try:
        bus.declare(topology)
    finally:
        bus.close()


def delete_topology(broker: LocalBroker, topology: Topology) -> None:
    connection = broker.blocking()
    channel = connection.channel()
    for queue in topology.queues():
        channel.queue_delete(queue.name)
    for exchange in topology.exchanges():
        channel.exchange_delete(exchange.name)
    connection.close()


def depth(broker: LocalBroker, queue: str) -> int:
    """Ready messages in a queue."""
    connection = broker.blocking()
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


@dataclass(frozen=True)
class Received:
    body: bytes
    message_id: str | None
    content_type: str | None
    delivery_mode: int | None
    headers: dict[str, Any]


def drain(broker: LocalBroker, queue: str) -> list[Received]:
    """Take every ready message of a queue."""
    connection = broker.blocking()
    channel = connection.channel()
    out: list[Received] = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        out.append(
            Received(
                body,
                properties.message_id,
                properties.content_type,
                properties.delivery_mode,
                dict(properties.headers or {}),
            )
        )
    connection.close()
    return out


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --- publishing inputs ------------------------------------------------------------------------


def input_outgoing(topology: Topology, body: bytes, fmt: str | None = None, index: int = 0) -> Outgoing:
    return Outgoing(
        topology.input_exchange,
        "feed",
        body,
        message_id=f"in-{index}",
        content_type=CONTENT_TYPES.get(fmt or "", None),
    )


def publish_inputs(
    broker: LocalBroker, topology: Topology, bodies: Iterable[bytes], chunk: int = 500, pause: float = 0.0
) -> None:
    """Publish with confirms; survives a broker restart (reconnects and republishes the chunk)."""
    items = [input_outgoing(topology, body, index=i) for i, body in enumerate(bodies)]
    bus: RabbitBus | None = None
    position = 0
    deadline = time.monotonic() + 180
    while position < len(items):
        try:
            bus = bus or broker.bus()
            report = bus.publish(items[position : position + chunk], 30)
            if not report.complete:
                raise BusError("not all confirmed")
            position += chunk
            if pause:
                time.sleep(pause)
        except BusError:
            if time.monotonic() > deadline:
                raise
            if bus is not None:
                bus.close()
            bus = None
            time.sleep(0.5)
    if bus is not None:
        bus.close()


# --- consumer processes -----------------------------------------------------------------------


def consumer_argv(topology: Topology, workdir: Path, extra: Iterable[str]) -> list[str]:
    """``ivpush consume`` arguments shared by subprocess and forked consumers."""
    formats = [arg for fmt in topology.formats for arg in ("--format", fmt)]
    return [
        "--prefix", topology.prefix, "--state", str(workdir / "state.db"), "--idle-seconds", "0",
        "--reconnect-max", "2", "--retry-max", "1", *formats, *extra,
    ]  # fmt: skip


@dataclass
class ConsumerProcess:
    """``python -m connector.cli.consume`` against a test topology, its log in a file."""

    broker: LocalBroker
    topology: Topology
    workdir: Path
    args: tuple[str, ...] = ()
    env_extra: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    runs: int = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / "consumer.log"

    def start(self, **env: str) -> ConsumerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "connector.cli.consume",
            *consumer_argv(self.topology, self.workdir, self.args),
        ]
        self.runs += 1
        register_log(self.log_path)
        with self.log_path.open("ab") as log:
            log.write(f"--- run {self.runs} env {sorted(env)}\n".encode())  # names only: values may be secrets
            log.flush()
            self.process = subprocess.Popen(
                command, env=self.broker.env(**self.env_extra, **env), stdout=log, stderr=subprocess.STDOUT, cwd=REPO
            )
        return self

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"consumer did not exit in {timeout:.0f}s; log:\n{self.log()[-3000:]}") from None

    def terminate(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 60) -> None:
        wait_until(lambda: text in self.log() or not self.alive(), timeout, f"'{text}' in the consumer log")
        assert text in self.log(), self.log()[-3000:]


# --- feeds and expectations -------------------------------------------------------------------

RAS = (
    "MSH|^~\\&|PYXIS|GENHOSP|BILLING|GENHOSP|{stamp}||RAS^O17^RAS_O17|{control}|P|2.5.1\r"
    "PID|1||MRN{enc:05d}^^^GENHOSP^MR||DEMO^PATIENT||19700101|F\r"
    "PV1|1|E|ED^BAY4^1^GENHOSP||||||||||||||||V{enc:05d}^^^GENHOSP^VN\r"
    "ORC|RE|ORD{enc:05d}{n:02d}|ORD{enc:05d}{n:02d}F\r"
    "RXA|0|1|{stamp}||{drug}|4|mg|||||||||||||CP|A\r"
    "RXR|IV^Intravenous^HL70162||IVP^IV Push^HL70165"
)
A03 = (
    "MSH|^~\\&|ADT|GENHOSP|BILLING|GENHOSP|{stamp}||ADT^A03^ADT_A03|{control}|P|2.5.1\r"
    "EVN|A03|{stamp}\r"
    "PV1|1|E|ED^BAY4^1^GENHOSP||||||||||||||||V{enc:05d}^^^GENHOSP^VN"
)
DRUGS = ("26225^Ondansetron 4 mg/2 mL injection^RXNORM", "7052^Morphine 4 mg/mL injection^RXNORM")


def hl7_feed(encounters: int, pushes: int = 4, tag: str = "T") -> list[bytes]:
    """RAS^O17 IV pushes (two drugs, 40 minutes apart), then an A03 discharge, per encounter.

    Every encounter is charged once, at its discharge, whatever the batching: the expected
    charge messages do not depend on how a consumer splits or repeats its batches.
    """
    feed: list[bytes] = []
    for enc in range(encounters):
        for n in range(pushes):
            minute = 40 * n
            stamp = f"20260302{8 + minute // 60:02d}{minute % 60:02d}00"
            text = RAS.format(stamp=stamp, control=f"{tag}{enc}-{n}", enc=enc, n=n, drug=DRUGS[n % 2])
            feed.append(text.encode())
        feed.append(A03.format(stamp="20260302180000", control=f"{tag}{enc}-A03", enc=enc).encode())
    return feed


def poison_samples() -> list[bytes]:
    """Inputs the consumer must park whole (the corpus' reject-* files rejected as one delivery, plus garbage).

    A Bundle with some usable entries (``reject-unknown-status-bundle-one-bad.json``) is not one:
    the consumer charges its good entries (``read_delivery``) and parks a copy.
    """
    policy = load_policy()
    found = [path.read_bytes() for path in sorted(SAMPLES.glob("*/reject-*")) if path.stat().st_size < 200_000]
    found += [b"not a message at all", b"", b"\x00\x01\x02", b'{"resourceType": "Patient", "id": "x"}']
    poison = []
    for body in found:
        try:
            read_delivery(Delivery(1, body), policy, local_zone(None))
        except AdapterError:
            poison.append(body)
    return poison


def expected_charges(
    bodies: Iterable[bytes], formats: tuple[str, ...] = ("json",), zone: str | None = None
) -> dict[tuple[str, str], bytes]:
    """(message id, format) → bytes that a clean consumer run publishes for these inputs."""
    store = MemoryStore()
    service = Service(store, load_policy(), ServiceSettings(renderers(formats)), clock=time.time)
    parsed = []
    for index, body in enumerate(bodies):
        parsed.extend(parse_delivery(Delivery(index + 1, body), service.policy, local_zone(zone)))
    service.handle(parsed)
    return {(row.message_id, row.format): row.body for row in store.pending(1_000_000)}


class BrokenFor:
    """The JSON renderer, raising for one encounter key (counting the attempts).

    Registered for a test rather than reached through a value: the adapters now refuse the
    identifiers that made the ChargeItem renderer raise (issue #12, class 3), and what is under
    test is the consumer's handling of any failure to render one encounter.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self.attempts = 0

    def __call__(self, message: ChargeMessage) -> bytes:
        if message.encounter.key == self.key:
            self.attempts += 1
            raise ValueError(f"refused: {self.key}")
        return json_charge.render(message)


@dataclass
class Tally:
    """What arrived on an output queue against what was expected."""

    messages: int
    distinct: int
    lost: int
    unexpected: int
    duplicates: int
    duplicate_effects: int  # a repeated id with different bytes (a changed effect)


def tally(received: list[Received], expected: dict[str, bytes]) -> Tally:
    counts = Counter(r.message_id for r in received)
    first: dict[str | None, bytes] = {}
    effects = 0
    for r in received:
        if r.message_id in first and first[r.message_id] != r.body:
            effects += 1
        first.setdefault(r.message_id, r.body)
        if r.message_id in expected and expected[r.message_id] != r.body:
            effects += 1
    return Tally(
        messages=len(received),
        distinct=len(counts),
        lost=len(set(expected) - set(counts)),
        unexpected=len(set(counts) - set(expected)),
        duplicates=len(received) - len(counts),
        duplicate_effects=effects,
    )


class ThreadedConsumer:
    """A ``Consumer`` on the real broker, run on a thread of the test process (its counters are read directly).

    The SQLite store at ``path`` is made on the consumer's thread (a connection stays on its
    thread). ``render`` defaults to the renderers of the topology's formats, ``clock`` to the wall
    clock; ``read`` (``read_delivery`` or ``parse_delivery``) is given the policy and the local zone.
    """

    def __init__(
        self,
        broker: LocalBroker,
        policy: Any,
        topology: Topology,
        path: Path,
        settings: ConsumerSettings,
        *,
        render: Mapping[str, Renderer] | None = None,
        clock: Callable[[], float] = time.time,
        read: Callable[..., Any] = read_delivery,
    ) -> None:
        self.stop = Stop()
        self.failures: list[BaseException] = []
        self.made: list[Consumer] = []

        def run() -> None:
            store = SqliteStore(str(path))
            chosen = render if render is not None else renderers(topology.formats)
            service = Service(store, policy, ServiceSettings(chosen), clock=clock)
            parse = partial(read, policy=policy, local_zone=local_zone(None))
            self.made.append(
                Consumer(lambda: RabbitBus(broker.settings), service, parse, topology, settings, self.stop)
            )
            try:
                self.made[0].run()
            except BaseException as error:  # noqa: BLE001 - reported by the test thread
                self.failures.append(error)
            finally:
                store.close()

        self.thread = threading.Thread(target=run, name="consumer")
        self.thread.start()
        self.until(lambda: bool(self.made), "the consumer")
        self.consumer = self.made[0]

    def until(self, condition: Callable[[], bool], what: str) -> None:
        wait_until(lambda: condition() or not self.thread.is_alive(), 60, what)
        assert self.thread.is_alive(), f"the consumer died: {self.failures}"

    def finish(self) -> None:
        self.stop.request()
        self.thread.join(60)
        assert not self.thread.is_alive() and self.failures == [], self.failures


class ForkedConsumer:
    """``ivpush consume`` in a child forked from the (warm) test process: a real process, started in ms.

    The child has its own broker connection, SQLite connection and signal handlers, and dies by
    ``os._exit`` like any consumer process; it only skips re-importing the code and re-loading
    the shipped mappings (it reuses the parent's ``policy``), which costs ~3.5 s of CPU per
    ``python -m`` start on these two cores. Fork only from a process without other threads.
    """

    def __init__(self, broker: LocalBroker, topology: Topology, workdir: Path, policy: Any, args: tuple[str, ...] = ()):
        self.broker = broker
        self.topology = topology
        self.workdir = workdir
        self.policy = policy
        self.args = args
        self.pid: int | None = None
        self.returncode: int | None = None
        self.runs = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / "consumer.log"

    def start(self, **env: str) -> ForkedConsumer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.runs += 1
        register_log(self.log_path)
        with self.log_path.open("a") as log:
            log.write(f"--- run {self.runs} {env}\n")
        argv = consumer_argv(self.topology, self.workdir, self.args)
        environment = self.broker.env(**env)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child never returns from here
            _run_forked(self.log_path, environment, argv, self.policy)
        self.pid, self.returncode = pid, None
        return self

    def _reap(self, block: bool) -> int | None:
        if self.returncode is None and self.pid is not None:
            done, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def alive(self) -> bool:
        return self.pid is not None and self._reap(block=False) is None

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self._reap(block=False) is None:
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"consumer did not exit in {timeout:.0f}s; log:\n{self.log()[-3000:]}")
            time.sleep(0.02)
        assert self.returncode is not None
        return self.returncode

    def terminate(self, timeout: float = 60) -> int:
        assert self.pid is not None
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.alive():
            assert self.pid is not None
            os.kill(self.pid, signal.SIGKILL)
            self._reap(block=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _run_forked(log_path: Path, environment: dict[str, str], argv: list[str], policy: Any) -> None:
    code = 1
    try:
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - the child's own stdout
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        os.environ.clear()
        os.environ.update(environment)
        logging.root.handlers.clear()  # pytest's capture handlers are not the child's
        options.policy_from_settings = lambda _mappings=None: policy  # type: ignore[assignment]
        consume.main(args=argv, prog_name="ivpush consume", standalone_mode=False)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # noqa: BLE001 - report anything, then die like a process
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
