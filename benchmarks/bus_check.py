"""What the bus benchmark checks and how it times latency: reference run, net lines, drain, collector.

- ``Parsed``: every input parsed once in this process (dedup keys, administration ids and
  encounter of each input), the basis of the expected counts and of latency matching.
- ``expected_net_lines``: an in-memory ``Service`` (``MemoryStore``, ``--emit-on change``,
  json) over the same inputs; ``net_lines`` of its charge messages is what every encounter must
  be charged at the end, however the consumer batched (charges minus credits).
- ``drain``: take every charge message of the output queue.
- ``latency``: consume the output queue while the ``offer`` child publishes at a fixed rate;
  match each input to its charge message (see ``bus_bench``'s docstring) and take percentiles.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pika

from benchmarks.bus_children import message_id
from connector.adapters.errors import AdapterError
from connector.bootstrap import local_zone, renderers
from connector.bus.base import Delivery
from connector.bus.inputs import CONTENT_TYPES, FORMAT_HEADER, parse_delivery
from connector.model import ParsedRecord
from connector.policy.loader import load_policy
from connector.policy.model import Policy
from connector.service import EmitOn, Service, ServiceSettings
from connector.store.memory import MemoryStore

NetLines = dict[str, frozenset[tuple[str, str, str]]]


@dataclass(frozen=True)
class Received:
    """A charge message taken from the output queue, with its arrival time (``time_ns``)."""

    message_id: str | None
    encounter_key: str
    body: bytes
    arrived_ns: int


@cache
def _policy() -> Policy:
    return load_policy()


class Parsed:
    """The inputs of a phase, each parsed once (a poison input parses to nothing)."""

    def __init__(self, fmt: str, bodies: list[bytes], zone_name: str) -> None:
        self.fmt = fmt
        self.bodies = bodies
        self.policy = _policy()
        self.zone = local_zone(zone_name)
        self.ids = [message_id(body) for body in bodies]
        self.records: list[list[ParsedRecord]] = []
        self.poison = 0

    def upto(self, count: int) -> list[list[ParsedRecord]]:
        """The first ``count`` inputs parsed (parsing only what was not yet)."""
        for index in range(len(self.records), count):
            delivery = Delivery(index + 1, self.bodies[index], CONTENT_TYPES[self.fmt], {FORMAT_HEADER: self.fmt})
            try:
                self.records.append(parse_delivery(delivery, self.policy, self.zone))
            except AdapterError:
                self.records.append([])
                self.poison += 1
        return self.records[:count]

    def distinct_inputs(self, upto: int) -> int:
        """Distinct dedup keys among the first ``upto`` inputs: what the consumer's ``seen`` table reaches."""
        return len({record.dedup_key for records in self.upto(upto) for record in records})

    def expected_net_lines(self, upto: int) -> NetLines:
        """Net charged lines per encounter after the first ``upto`` inputs (in-memory reference run)."""
        store = MemoryStore()
        settings = ServiceSettings(renderers(("json",)), EmitOn.CHANGE)
        service = Service(store, self.policy, settings, clock=lambda: 0.0)  # no idle sweep here
        # One batch: the net lines do not depend on batching (the last emission is the last evaluation).
        service.handle(record for records in self.upto(upto) for record in records)
        return net_lines(row.body for row in store.pending(10_000_000))


def net_lines(bodies: Iterable[bytes]) -> NetLines:
    """Lines still charged per encounter (key = assigning authority | visit) after these messages, in order."""
    current: dict[str, dict[str, tuple[str, str, str]]] = {}
    for body in bodies:
        doc = json.loads(body)
        encounter = f"{doc['encounter']['assigning_authority']}|{doc['encounter']['id']}"
        lines = current.setdefault(encounter, {})
        for line in doc["lines"]:
            if line["action"] == "charge":
                lines[line["line_id"]] = (line["code"], str(line["units"]), ",".join(line["modifiers"]))
            else:
                lines.pop(line["line_id"], None)
    # An encounter whose lines were all credited again is charged nothing, as one never charged.
    return {key: frozenset(lines.values()) for key, lines in current.items() if lines}


def _received(properties: Any, body: bytes) -> Received:
    headers = properties.headers or {}
    key = headers.get("encounter_key", "")
    key = key.decode() if isinstance(key, bytes) else str(key)
    return Received(properties.message_id, key, body, time.time_ns())


def drain(url: str, queue: str, expected: int, timeout: float = 120) -> list[Received]:
    """Take (and remove) the queue's messages until ``expected`` arrived or it stays empty for 2 s."""
    out: list[Received] = []
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1000)
        channel.basic_consume(queue, lambda _ch, _m, props, body: out.append(_received(props, body)), auto_ack=True)
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while len(out) < expected and time.monotonic() < deadline:
            before = len(out)
            connection.process_data_events(time_limit=0.05)
            if len(out) != before:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 2.0:
                break
    finally:
        connection.close()
    return out


def outbox_counts(state: Path) -> tuple[int, int, int]:
    """(inputs seen, outbox rows, unsent rows) of a consumer's state file; zeros before it exists."""
    try:
        db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=1.0)
        try:
            seen = db.execute("SELECT count(*) FROM seen").fetchone()[0]
            total, unsent = db.execute("SELECT count(*), coalesce(sum(sent = 0), 0) FROM outbox").fetchone()
            return int(seen), int(total), int(unsent)
        finally:
            db.close()
    except sqlite3.OperationalError:  # not there yet, or busy: ask again
        return 0, 0, 0


def latency(
    url: str,
    queue: str,
    command: list[str],
    env: dict[str, str],
    out: Path,
    parsed: Parsed,
    first: int,
    count: int,
    state: Path,
    consumer_cpu: Callable[[], float],
    timeout: float = 300,
) -> dict[str, Any]:
    """Run the ``offer`` child while collecting charge messages; publish → charge percentiles."""
    received: list[Received] = []
    cpu_before = consumer_cpu()
    _, before_total, _ = outbox_counts(state)
    target_seen = parsed.distinct_inputs(first + count)
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1000)
        channel.basic_consume(queue, lambda _c, _m, props, body: received.append(_received(props, body)), auto_ack=True)
        with out.open("wb") as sink:
            child = subprocess.Popen(command, stdout=sink, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.02)
            if child.poll() is None:
                continue
            if child.returncode != 0:
                raise RuntimeError(f"offer child exited {child.returncode}")
            seen, total, unsent = outbox_counts(state)
            if seen >= target_seen and unsent == 0 and len(received) >= total - before_total:
                break
        else:
            child.kill()
            raise RuntimeError(f"latency phase: {len(received)} charge messages after {timeout:.0f}s")
        cpu = consumer_cpu() - cpu_before
    finally:
        connection.close()
    sent = {ident: stamp for ident, stamp in json.loads(out.read_text())}
    matched = _match(parsed, first, count, sent, received)
    return {**matched, "consumer_cpu_per_input_ms": round(cpu / count * 1e3, 2), "received": received}


def _match(parsed: Parsed, first: int, count: int, sent: dict[str, int], received: list[Received]) -> dict[str, Any]:
    """Each offered input → the first later charge of its encounter naming one of its administrations."""
    by_encounter: dict[str, list[tuple[int, frozenset[str]]]] = {}
    for r in received:
        ids = frozenset(i for line in json.loads(r.body)["lines"] for i in line["administration_ids"])
        by_encounter.setdefault(r.encounter_key, []).append((r.arrived_ns, ids))
    for arrivals in by_encounter.values():
        arrivals.sort(key=lambda a: a[0])
    timed: list[tuple[int, float]] = []  # (sent, wait ms)
    without_admin = unmatched = 0
    stamps = sorted(sent.values())
    offered = parsed.upto(first + count)[first:]
    for records, body_id in zip(offered, parsed.ids[first : first + count], strict=True):
        admins = [a for record in records for a in record.administrations]
        if not admins:
            without_admin += 1
            continue
        at = sent[body_id]
        own = {a.id for a in admins}
        arrivals = by_encounter.get(admins[0].encounter_key, [])
        start = bisect_left(arrivals, at, key=lambda a: a[0])
        hit = next((t for t, names in arrivals[start:] if names & own), None)
        if hit is None:
            unmatched += 1
        else:
            timed.append((at, (hit - at) / 1e6))
    timed.sort()
    quarter = max(1, len(timed) // 4)
    trend = [
        sorted(w for _, w in part)[len(part) // 2] if part else 0.0 for part in (timed[:quarter], timed[-quarter:])
    ]
    waits = sorted(w for _, w in timed)

    def pct(q: float) -> float:
        return round(waits[min(len(waits) - 1, int(q * len(waits)))], 1) if waits else 0.0

    span_s = (stamps[-1] - stamps[0]) / 1e9 if len(stamps) > 1 else 0.0
    return {
        "inputs": count,
        "offered_per_s": round((len(stamps) - 1) / span_s, 1) if span_s else 0.0,
        "charge_messages": len(received),
        "matched": len(waits),
        "no_line_changed": unmatched,
        "without_administration": without_admin,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": round(waits[-1], 1) if waits else 0.0,
        "p50_ms_first_last_quarter": [round(x, 1) for x in trend],  # growing: the consumer fell behind
    }
