"""``ivpush listen`` on a real broker, driven by clients that are not ours (python-hl7's MLLP client, http.client).

The durability rule is checked from the sender's side: every ``AA`` (HTTP 200/202) names a
message that is in a durable queue, also after a broker restart; nothing is ``AA`` while the
broker is away; the senders' own retries (an engine's queue) lose nothing.
"""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import hl7.client
import orjson
import pytest
from broker import (
    REPO,
    ConsumerProcess,
    LocalBroker,
    Received,
    declare,
    delete_topology,
    depth,
    drain,
    expected_charges,
    fresh_topology,
    hl7_feed,
    record_figures,
    register_log,
    tally,
    wait_until,
)

from connector.bus.inputs import FORMAT_HEADER
from connector.bus.topology import Topology
from connector.ingress.publisher import SOURCE_HEADER

pytestmark = pytest.mark.e2e
ENCOUNTERS = ("encounter-r4-in-progress-amb.json", "encounter-r4-in-progress-imp.json")  # NDJSON lines
LISTENING = re.compile(r"listening for (MLLP|HTTP) on 127\.0\.0\.1:(\d+)")


@dataclass
class ListenerProcess:
    """``python -m connector.cli.listen`` on ephemeral ports against a test topology, its log in a file."""

    broker: LocalBroker
    topology: Topology
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return self.workdir / "listener.log"

    def start(self) -> ListenerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        register_log(self.log_path)  # the PHI log scan reads it too
        command = [sys.executable, "-m", "connector.cli.listen", "--mllp", "127.0.0.1:0", "--http", "127.0.0.1:0",
                   "--prefix", self.topology.prefix, "--reconnect-max", "1", "--log-format", "text"]  # fmt: skip
        env = self.broker.env(IVPUSH_CODING__FORMATS=",".join(self.topology.formats))
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        wait_until(lambda: len(self._listening()) == 2 or not self.alive(), 60, "the listeners")
        assert self.alive(), self.log()[-3000:]
        self.ports = self._listening()
        wait_until(lambda: "publisher connected" in self.log(), 60, "the publisher's connection")
        return self

    def _listening(self) -> dict[str, int]:
        return {kind.lower(): int(port) for kind, port in LISTENING.findall(self.log())}

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> int:
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(60)

    def kill(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def control_id(message: bytes) -> str:
    return message.split(b"\r", 1)[0].split(b"|")[9].decode()


def msa(ack: bytes) -> tuple[str, str]:
    """(MSA-1, MSA-2) of an ACK (framing, if any, around it)."""
    line = next((x for x in ack.strip(b"\x0b\x1c\r").split(b"\r") if x.startswith(b"MSA")), b"MSA||")
    fields = line.split(b"|")
    return fields[1].decode(), fields[2].decode()


@dataclass
class Sender:
    """An engine's outbound queue: each message is sent until it is answered ``AA``, in order."""

    send: Callable[[bytes], tuple[str, str]]  # message → (ack code, control id echoed); raises OSError
    reconnect: Callable[[], None]
    answers: Counter[str] = field(default_factory=Counter)
    acked: list[bytes] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pause: float = 0.0
    gate: tuple[int, threading.Event] | None = None  # (index, event): wait for the event before that message

    def run(self, messages: list[bytes], deadline: float) -> None:
        for index, message in enumerate(messages):
            if self.gate is not None and index == self.gate[0]:
                self.gate[1].wait(max(deadline - time.monotonic(), 0))
            while time.monotonic() < deadline:
                try:
                    code, echoed = self.send(message)
                except (OSError, http.client.HTTPException) as error:
                    self.answers[error.__class__.__name__] += 1
                    time.sleep(0.2)
                    self._reconnect()
                    continue
                self.answers[code] += 1
                if code == "AA":
                    if echoed != control_id(message):
                        self.errors.append(f"AA for {echoed}, sent {control_id(message)}")
                    self.acked.append(message)
                    break
                time.sleep(0.2)  # AE: the broker is away; send it again later
            else:
                self.errors.append(f"never acknowledged: {control_id(message)}")
                return
            if self.pause:
                time.sleep(self.pause)

    def _reconnect(self) -> None:
        try:
            self.reconnect()
        except OSError as error:
            self.answers[f"reconnect {error.__class__.__name__}"] += 1


def mllp_sender(port: int) -> Sender:
    """python-hl7's blocking MLLP client, reconnected after a connection loss."""
    holder: list[hl7.client.MLLPClient] = [hl7.client.MLLPClient("127.0.0.1", port)]

    def send(message: bytes) -> tuple[str, str]:
        ack = holder[0].send_message(message)
        if not ack:
            raise ConnectionResetError("closed without an answer")
        return msa(ack)

    def reconnect() -> None:
        holder[0].close()
        holder[0] = hl7.client.MLLPClient("127.0.0.1", port)

    return Sender(send, reconnect)


def http_sender(port: int) -> Sender:
    """http.client POSTing each message to /hl7v2 (keep-alive, reconnected when dropped)."""
    holder = [http.client.HTTPConnection("127.0.0.1", port, timeout=60)]

    def send(message: bytes) -> tuple[str, str]:
        holder[0].request("POST", "/hl7v2", body=message, headers={"Content-Type": "application/hl7-v2"})
        response = holder[0].getresponse()
        body = response.read()
        code, echoed = msa(body)
        assert (response.status == 200) == (code == "AA"), (response.status, code)
        return code, echoed

    def reconnect() -> None:
        holder[0].close()
        holder[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    return Sender(send, reconnect)


def run_senders(work: list[tuple[Sender, list[bytes]]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    threads = [threading.Thread(target=s.run, args=(msgs, deadline)) for s, msgs in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 30)


def by_encounter(feed: list[bytes], lanes: int, pushes: int = 4) -> list[list[bytes]]:
    """Each encounter's messages on one lane, in order (an engine keeps a patient on one connection)."""
    per = pushes + 1
    out: list[list[bytes]] = [[] for _ in range(lanes)]
    for index in range(0, len(feed), per):
        out[(index // per) % lanes].extend(feed[index : index + per])
    return out


def audit(rabbit: LocalBroker, topology: Topology) -> str:
    """A durable quorum queue bound to the input exchange: a copy of every input the broker confirmed."""
    name = f"{topology.prefix}.audit"
    connection = rabbit.blocking()
    channel = connection.channel()
    channel.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(name, topology.input_exchange, routing_key="#")
    connection.close()
    return name


def take_all(rabbit: LocalBroker, queue: str) -> list[Received]:
    """Every ready message of a queue, consumed in a prefetch window (``drain`` pays a round trip per message)."""
    connection = rabbit.blocking()
    channel = connection.channel()
    channel.basic_qos(prefetch_count=500)
    out: list[Received] = []
    for method, properties, body in channel.consume(queue, auto_ack=True, inactivity_timeout=0.5):
        if method is None:
            break
        out.append(Received(body, properties.message_id, properties.content_type, properties.delivery_mode,
                            dict(properties.headers or {})))  # fmt: skip
    channel.cancel()
    connection.close()
    return out


def drop_queue(rabbit: LocalBroker, name: str) -> None:
    connection = rabbit.blocking()
    connection.channel().queue_delete(name)
    connection.close()


def test_a_thousand_ras_over_four_mllp_connections_are_acked_only_once_durable_and_charged(
    rabbit: LocalBroker, tmp_path: Path
) -> None:
    feed = hl7_feed(250, tag="M")  # 1,000 RAS^O17 (4 per encounter) and 250 A03 discharges
    assert sum(b"RAS^O17" in m for m in feed) == 1000
    topology = fresh_topology("mllp")
    declare(rabbit, topology)
    copy = audit(rabbit, topology)
    listener = ListenerProcess(rabbit, topology, tmp_path / "listener").start()
    try:
        senders = [mllp_sender(listener.ports["mllp"]) for _ in range(4)]
        started = time.monotonic()
        run_senders(list(zip(senders, by_encounter(feed, 4), strict=True)), 180)
        seconds = time.monotonic() - started
        assert listener.terminate() == 0
    finally:
        listener.kill()
    assert [e for s in senders for e in s.errors] == []
    answers = sum((s.answers for s in senders), Counter())
    assert answers == Counter({"AA": len(feed)})  # one AA per message, nothing else, nothing twice
    consumer = ConsumerProcess(rabbit, topology, tmp_path / "consumer").start()
    try:
        inputs = take_all(rabbit, copy)
        assert Counter(m.body for m in inputs) == Counter(feed)  # every AA is a durable input, exactly once
        assert {(m.delivery_mode, m.content_type) for m in inputs} == {(2, "application/hl7-v2")}
        assert {(m.headers[FORMAT_HEADER], m.headers[SOURCE_HEADER]) for m in inputs} == {("hl7", "mllp")}
        expected = {mid: body for (mid, _fmt), body in expected_charges(feed).items()}
        wait_until(lambda: depth(rabbit, topology.output_queue("json")) >= len(expected), 120, "the charges")
        assert consumer.terminate() == 0
    finally:
        consumer.kill()
    result = tally(take_all(rabbit, topology.output_queue("json")), expected)
    record_figures(
        f"ivpush listen, MLLP: {len(feed)} messages (1,000 RAS) over 4 python-hl7 connections in {seconds:.1f} s "
        f"({len(feed) / seconds:.0f} msg/s, each AA after its confirm); charges {result.distinct}/{len(expected)}, "
        f"lost {result.lost}"
    )
    assert (result.lost, result.unexpected, result.duplicate_effects) == (0, 0, 0)
    drop_queue(rabbit, copy)
    delete_topology(rabbit, topology)


def test_a_broker_restart_mid_stream_gets_no_aa_for_anything_unstored_and_loses_nothing_over_mllp_and_http(
    rabbit: LocalBroker, tmp_path: Path
) -> None:
    feed = hl7_feed(60, tag="B")  # 300 messages: 40 encounters over MLLP, 20 over HTTP
    lanes = by_encounter(feed, 6)
    topology = fresh_topology("ingress-restart")
    declare(rabbit, topology)
    listener = ListenerProcess(rabbit, topology, tmp_path / "listener").start()
    senders = [mllp_sender(listener.ports["mllp"]) for _ in range(4)]
    senders += [http_sender(listener.ports["http"]) for _ in range(2)]
    stopped = threading.Event()
    for number, sender in enumerate(senders):
        sender.pause = 0.05  # two free-running senders are in flight when the broker goes down, and
        if number >= 2:  # four others send their 11th message only once it is down: they must meet the outage
            sender.gate = (10, stopped)
    runner = threading.Thread(target=run_senders, args=(list(zip(senders, lanes, strict=True)), 240))
    runner.start()
    try:
        wait_until(lambda: all(len(s.acked) >= 10 for s in senders[2:]), 60, "the first AAs")
        rabbit.stop()
        acked_before_restart = [m for s in senders for m in list(s.acked)]
        stopped.set()
        rabbit.start()
        runner.join(300)
        assert not runner.is_alive()
        assert listener.alive(), listener.log()[-3000:]  # recovered by itself
        assert listener.terminate() == 0
    finally:
        listener.kill()
        runner.join(5)
    assert [e for s in senders for e in s.errors] == []
    answers = sum((s.answers for s in senders), Counter())
    refused = answers.total() - answers["AA"]
    assert answers["AA"] == len(feed)  # each message AA exactly once, at last
    assert answers["AE"] >= 4  # the gated senders met the outage: answered AE, never AA
    stored = Counter(m.body for m in take_all(rabbit, topology.input_queue()))
    assert set(acked_before_restart) <= set(stored)  # confirmed before the stop: still there after it
    assert set(stored) == set(feed)  # 0 lost (a message resent after an unconfirmed publish may be twice)
    log = listener.log()
    assert "lost the broker connection" in log and log.count("publisher connected") >= 2
    record_figures(
        f"ivpush listen, broker restart mid-stream: {len(feed)} messages over 4 MLLP + 2 HTTP senders; "
        f"{len(acked_before_restart)} AA before the stop, all durable; answers other than AA {refused} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(answers.items()) if k != 'AA')}); lost 0, "
        f"stored twice {stored.total() - len(stored)}"
    )
    delete_topology(rabbit, topology)


def test_fhir_over_http_is_answered_202_after_the_confirm_and_charged(rabbit: LocalBroker, tmp_path: Path) -> None:
    bundle = (REPO / "examples" / "feeds" / "observation-stay-fhir.json").read_bytes()
    samples = REPO / "tests" / "samples" / "fhir"
    lines = [orjson.dumps(orjson.loads((samples / name).read_bytes())) for name in ENCOUNTERS]
    topology = fresh_topology("ingress-fhir")
    declare(rabbit, topology)
    listener = ListenerProcess(rabbit, topology, tmp_path / "listener").start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", listener.ports["http"], timeout=60)
        answers = []
        for body, media in ((bundle, "application/fhir+json"), (b"\n".join(lines), "application/fhir+ndjson")):
            connection.request("POST", "/fhir", body=body, headers={"Content-Type": media})
            response = connection.getresponse()
            answers.append((response.status, orjson.loads(response.read())["issue"][0]["diagnostics"]))
        connection.close()
        assert listener.terminate() == 0
    finally:
        listener.kill()
    assert answers == [(202, "stored 1 input(s) for coding"), (202, f"stored {len(lines)} input(s) for coding")]
    consumer = ConsumerProcess(rabbit, topology, tmp_path / "consumer").start()
    expected = {mid: body for (mid, _fmt), body in expected_charges([bundle, *lines]).items()}
    assert expected
    try:
        wait_until(lambda: depth(rabbit, topology.output_queue("json")) >= len(expected), 120, "the charges")
        wait_until(lambda: depth(rabbit, topology.input_queue()) == 0, 60, "every input read")
        assert consumer.terminate() == 0
    finally:
        consumer.kill()
    result = tally(drain(rabbit, topology.output_queue("json")), expected)
    assert (result.lost, result.unexpected, result.duplicate_effects) == (0, 0, 0)
    assert depth(rabbit, topology.parking_queue) == 0
    delete_topology(rabbit, topology)
