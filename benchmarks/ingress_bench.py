"""MLLP in → charges out, as a ratio to the AMQP path, in the bus section's run (same node, same inputs).

Both paths get the same first N synthetic HL7 records of the bus section's feed, a fresh topology
(``bench-…``) and their own ``ivpush consume --format json --emit-on change`` (fresh SQLite
state, started and consuming before the first input is sent):

- **AMQP**: this process publishes the inputs to the input exchange as ``ivpush publish`` does
  (``RabbitBus``, persistent, ``mandatory``, windowed publisher confirms).
- **MLLP**: ``ivpush listen --mllp 127.0.0.1:0`` (its own process) and ``CONNECTIONS`` MLLP
  connections from this process, as engines send: every input of one encounter on the same
  connection in feed order, each message waiting for its ACK before the next (``AE`` is sent
  again, as an engine's queue would).

Time runs from the first send to the first poll (every 10 ms) at which the output queue holds
every charge message the consumer committed, with all N inputs seen and no outbox row unsent.
The send phase alone (last confirm / last ``AA``) is reported beside it. Afterwards every charge
message is drained: ``lost`` = committed message ids never received (must be 0).
"""

from __future__ import annotations

import re
import socket
import sqlite3
import subprocess
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika

from benchmarks.bus_check import Parsed, drain, outbox_counts
from benchmarks.bus_node import (
    ROOT,
    Node,
    child_env,
    cpu_seconds,
    delete,
    depth,
    inputs,
    stop,
    topology_for,
    wait_for_text,
)
from benchmarks.replay_bench import _ivpush
from connector.bus.config import AmqpSettings
from connector.bus.publisher import publish_all
from connector.bus.rabbitmq import RabbitBus
from connector.bus.topology import Topology

ZONE_NAME = "America/New_York"
CONNECTIONS = 4
SIZES = {True: 400, False: 5000}  # inputs per path (quick, full)
LISTENING = re.compile(r"listening for MLLP on 127\.0\.0\.1:(\d+)")


def run(node: Node, bodies: list[bytes], scratch: Path, quick: bool) -> dict[str, Any]:
    """Both paths on the same inputs; the MLLP figures as ratios to the AMQP ones."""
    n = min(SIZES[quick], len(bodies))
    feed = bodies[:n]
    target = Parsed("hl7", feed, ZONE_NAME).distinct_inputs(n)
    amqp = _path(node, "amqp", feed, target, scratch)
    mllp = _path(node, "mllp", feed, target, scratch)
    return {
        "inputs": n,
        "connections": CONNECTIONS,
        "amqp": amqp,
        "mllp": mllp,
        "ratio_end_to_end": round(mllp["inputs_per_s"] / amqp["inputs_per_s"], 3),
        "ratio_send": round(mllp["sent_per_s"] / amqp["sent_per_s"], 3),
    }


def _path(node: Node, kind: str, feed: list[bytes], target: int, scratch: Path) -> dict[str, Any]:
    topology = topology_for(f"ingress-{kind}")
    state, log = scratch / f"ingress-{kind}-state.db", scratch / f"ingress-{kind}-consume.log"
    env = {**child_env(node.url), "IVPUSH_METRICS_PORT": "0"}  # two ivpush processes at once: no shared port
    children: list[subprocess.Popen[bytes]] = []
    result: dict[str, Any] = {}
    try:
        bus = RabbitBus(AmqpSettings(url=node.url, connection_name="ivpush bench ingress"))
        try:
            bus.declare(topology)
        finally:
            bus.close()
        command = [
            *_ivpush(), "consume", "--prefix", topology.prefix, "--state", str(state), "--format", "json",
            "--emit-on", "change", "--zone", ZONE_NAME,
        ]  # fmt: skip
        children.append(_spawn(command, log, env))
        wait_for_text(log, "consuming", children[0])
        port = 0
        if kind == "mllp":
            listen_log = scratch / "ingress-listen.log"
            command = [
                *_ivpush(), "listen", "--mllp", "127.0.0.1:0", "--prefix", topology.prefix, "--no-declare",
                "--log-format", "text",
            ]  # fmt: skip
            children.append(_spawn(command, listen_log, env))
            wait_for_text(listen_log, "listening for MLLP", children[1])
            port = int(LISTENING.findall(listen_log.read_text(errors="replace"))[0])
        cpu0 = [cpu_seconds(child.pid) for child in children]
        started = time.perf_counter()
        sent: dict[str, Any] = _send_mllp(port, feed) if kind == "mllp" else _send_amqp(node, topology, feed)
        sent_at = time.perf_counter()
        done_at, messages = _wait_for_charges(node, topology, state, target, children)
        cpu1 = [cpu_seconds(child.pid) for child in children]
        seconds = max(done_at - started, 1e-9)
        result = {
            **sent,
            "seconds": round(seconds, 3),
            "inputs_per_s": round(len(feed) / seconds),
            "send_seconds": round(sent_at - started, 3),
            "sent_per_s": round(len(feed) / max(sent_at - started, 1e-9)),
            "consumer_cpu_seconds": round(cpu1[0] - cpu0[0], 2),
            "listener_cpu_seconds": round(cpu1[1] - cpu0[1], 2) if kind == "mllp" else None,
            "output_messages": messages,
        }
        result["lost"] = _lost(node, topology, state, messages)
    finally:
        for child in reversed(children):
            stop(child)
        delete(node, topology)
    return result


def _spawn(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def _send_amqp(node: Node, topology: Topology, feed: list[bytes]) -> dict[str, Any]:
    """Publish every input with confirms (as ``ivpush publish``); counts of the outcome."""
    bus = RabbitBus(AmqpSettings(url=node.url, connection_name="ivpush bench ingress publisher"))
    try:
        report = publish_all(bus, inputs(topology, "hl7", feed), timeout=60.0)
    finally:
        bus.close()
    if not report.complete:
        raise RuntimeError(f"AMQP path: {len(report.confirmed)} of {len(feed)} confirmed")
    return {"confirmed": len(report.confirmed)}


def _send_mllp(port: int, feed: list[bytes]) -> dict[str, Any]:
    """Send over ``CONNECTIONS`` MLLP connections, one encounter per connection, each message after the last ACK."""
    shares: list[list[bytes]] = [[] for _ in range(CONNECTIONS)]
    for body in feed:
        shares[zlib.crc32(_visit(body)) % CONNECTIONS].append(body)
    codes: Counter[str] = Counter()
    failures: list[str] = []
    lock = threading.Lock()

    def connection(share: list[bytes]) -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
                for body in share:
                    while True:
                        sock.sendall(b"\x0b" + body + b"\x1c\r")
                        code = _ack_code(_read_ack(sock))
                        with lock:
                            codes[code] += 1
                        if code == "AA":
                            break
                        if code == "AR":
                            raise RuntimeError("ivpush listen answered AR")
                        time.sleep(0.1)  # AE: not stored; send it again, as an engine's queue would
        except (OSError, RuntimeError) as error:
            failures.append(f"{error.__class__.__name__}: {error}")

    threads = [threading.Thread(target=connection, args=(share,)) for share in shares if share]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"MLLP path: {failures[0]}")
    return {"acks": dict(codes)}


def _visit(body: bytes) -> bytes:
    """PV1-19 (the visit number) of an HL7 message: the encounter its connection is chosen by."""
    for segment in body.split(b"\r"):
        if segment.startswith(b"PV1|"):
            fields = segment.split(b"|")
            return fields[19] if len(fields) > 19 else b""
    return b""


def _read_ack(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\x1c\r"):
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("the listener closed the connection")
        data += chunk
    return data


def _ack_code(ack: bytes) -> str:
    for segment in ack.strip(b"\x0b\x1c\r").split(b"\r"):
        if segment.startswith(b"MSA|"):
            return segment.split(b"|")[1].decode("ascii", "replace")
    return "none"


def _wait_for_charges(
    node: Node, topology: Topology, state: Path, target: int, children: list[subprocess.Popen[bytes]]
) -> tuple[float, int]:
    """``perf_counter`` when the output queue first held every committed charge message, and their count."""
    connection = pika.BlockingConnection(pika.URLParameters(node.url))
    try:
        channel = connection.channel()
        deadline = time.monotonic() + 600
        last, changed = -1, time.perf_counter()
        while True:
            now_depth = depth(channel, topology.output_queue("json"))
            if now_depth != last:
                last, changed = now_depth, time.perf_counter()
            seen, total, unsent = outbox_counts(state)
            if seen >= target and unsent == 0 and now_depth >= total:
                return changed, now_depth
            if any(child.poll() is not None for child in children) or time.monotonic() > deadline:
                raise RuntimeError(f"stalled at {now_depth} charge messages, {seen} of {target} inputs seen")
            time.sleep(0.01)
    finally:
        connection.close()


def _lost(node: Node, topology: Topology, state: Path, messages: int) -> int:
    """Committed charge message ids never received."""
    received = {r.message_id for r in drain(node.url, topology.output_queue("json"), messages)}
    db = sqlite3.connect(state)
    try:
        committed = {row[0] for row in db.execute("SELECT message_id FROM outbox")}
    finally:
        db.close()
    return len(committed - received)


def rows(result: dict[str, Any] | None) -> Iterator[tuple[str, str, int, str, int, float, str]]:
    """Table rows of the bus section: the MLLP path against the AMQP path."""
    if not result:
        return
    amqp, mllp = result["amqp"], result["mllp"]
    yield (
        "bus",
        "AMQP publish → charges (live consume)",
        amqp["inputs_per_s"],
        "",
        0,
        1.0,
        f"{result['inputs']} HL7 inputs; publish alone {amqp['sent_per_s']}/s; consumer "
        f"{amqp['consumer_cpu_seconds']} cpu-s; lost {amqp['lost']}",
    )
    acks = ", ".join(f"{code} {count}" for code, count in sorted(mllp["acks"].items()))
    yield (
        "bus",
        f"MLLP in → charges ({result['connections']} connections)",
        mllp["inputs_per_s"],
        "AMQP publish → charges",
        amqp["inputs_per_s"],
        result["ratio_end_to_end"],
        f"send alone {mllp['sent_per_s']}/s = {result['ratio_send']} of AMQP publish; ACKs {acks}; listener "
        f"{mllp['listener_cpu_seconds']} cpu-s, consumer {mllp['consumer_cpu_seconds']}; lost {mllp['lost']}",
    )
