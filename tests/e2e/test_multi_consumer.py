"""Three consumers, one input queue, one PostgreSQL database, ``kill -9`` every few seconds: the same net charges.

A synthetic HL7 feed (``connector.synth.render``, deterministic by seed) with a fifth of its
records sent twice, shuffled, is published to ONE input queue; three ``ivpush consume``
processes (forked from the warm test process, ``broker.ForkedConsumer``) share it and one
PostgreSQL database (``--state postgresql://…``). Every 2–4 s one of them, drawn at random, is
killed with SIGKILL and restarted at once. When every distinct input is in the store's dedup
table, the outbox is relayed and the queue is empty, the consumers stop and the output queue
is compared with a single-process replay of the same feed (the Service on a MemoryStore):

- the **net charges** (per line id: charges minus credits, over distinct message ids) are equal:
  *lost* = expected net lines missing or different, *unexpected* = net lines not expected;
- **duplicate effects** = a message id seen with different bytes, or a line whose charges
  minus credits is not 0 or 1 (two consumers interleaving one encounter would charge twice).

Messages of one encounter may arrive out of order across relays (see connector.store.postgres),
so the netting counts instead of replaying in arrival order. ``IVPUSH_MULTI_RECORDS`` (default
50,000 deliveries) scales the run.
"""

import json
import multiprocessing
import os
import random
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path

import psycopg
import pytest
from broker import (
    ForkedConsumer,
    LocalBroker,
    Received,
    declare,
    delete_topology,
    depth,
    fresh_topology,
    publish_inputs,
    record_figures,
)
from postgres import LocalPostgres

from connector.adapters.errors import AdapterError
from connector.bootstrap import local_zone, renderers
from connector.bus.base import Delivery
from connector.bus.inputs import parse_delivery
from connector.model import ParsedRecord
from connector.policy.model import Policy
from connector.service import Service, ServiceSettings
from connector.store.memory import MemoryStore
from connector.synth.render import records as synth_records

pytestmark = pytest.mark.e2e
DELIVERIES = int(os.environ.get("IVPUSH_MULTI_RECORDS", "50000"))
CONSUMERS = 3
SEED = 2026
NetLines = dict[str, tuple[str, int, str]]


def synthetic_feed(total: int, seed: int) -> tuple[list[bytes], list[bytes]]:
    """(distinct records in sending order, ``total`` deliveries: a fifth of them repeats, shuffled)."""
    distinct = [body.rstrip(b"\n") for body in synth_records("hl7", seed, limit=total * 4 // 5)]
    rng = random.Random(seed)
    feed = distinct + [rng.choice(distinct) for _ in range(total - len(distinct))]
    rng.shuffle(feed)
    return distinct, feed


def parsed(feed: list[bytes], policy: Policy) -> list[ParsedRecord]:
    out: list[ParsedRecord] = []
    for index, body in enumerate(feed):
        try:
            out.extend(parse_delivery(Delivery(index + 1, body), policy, local_zone(None)))
        except AdapterError:
            continue  # parked by the consumers, skipped by the replay
    return out


def single_process_replay(records: list[ParsedRecord], policy: Policy) -> list[bytes]:
    """The charge messages one process emits for the records, in order (one batch: nets do not depend on it)."""
    store = MemoryStore()
    service = Service(store, policy, ServiceSettings(renderers(("json",))), clock=time.time)
    service.handle(records)
    return [row.body for row in store.pending(10_000_000)]


def _expect(distinct: list[bytes], policy: Policy, out: Connection) -> None:
    """A child process: (distinct dedup keys, expected net lines, effects) of one replay, sent to ``out``."""
    records = parsed(distinct, policy)
    net, effects = net_by_count(single_process_replay(records, policy))
    out.send((len({record.dedup_key for record in records}), net, effects))
    out.close()


def net_by_count(bodies: list[bytes]) -> tuple[NetLines, int]:
    """Net lines of distinct messages (charges minus credits per line id), and lines netting outside 0/1."""
    balance: Counter[str] = Counter()
    content: dict[str, tuple[str, int, str]] = {}
    for body in {json.loads(b)["message_id"]: b for b in bodies}.values():
        for line in json.loads(body)["lines"]:
            balance[line["line_id"]] += 1 if line["action"] == "charge" else -1
            content[line["line_id"]] = (line["code"], line["units"], line["service_date"])
    net = {line_id: content[line_id] for line_id, count in balance.items() if count == 1}
    return net, sum(1 for count in balance.values() if count not in (0, 1))


def changed_bodies(received: list[Received]) -> int:
    first: dict[str | None, bytes] = {}
    changed = 0
    for message in received:
        changed += message.message_id in first and first[message.message_id] != message.body
        first.setdefault(message.message_id, message.body)
    return changed


def take_all(rabbit: LocalBroker, queue: str) -> list[Received]:
    """Every ready message of a queue, consumed with a prefetch window (basic_get is one round trip each)."""
    connection = rabbit.blocking()
    channel = connection.channel()
    count = channel.queue_declare(queue, passive=True).method.message_count
    channel.basic_qos(prefetch_count=1000)
    out: list[Received] = []
    if not count:
        connection.close()
        return out
    for method, properties, body in channel.consume(queue, inactivity_timeout=30):
        assert method is not None, f"{queue}: {len(out)} of {count} messages arrived"
        channel.basic_ack(method.delivery_tag)
        out.append(Received(body, properties.message_id, properties.content_type, properties.delivery_mode, {}))
        if len(out) == count:
            break
    channel.cancel()
    connection.close()
    return out


def store_progress(url: str) -> tuple[int, int]:
    """(distinct inputs recorded, outbox rows not yet confirmed): a short-lived connection (we fork)."""
    with psycopg.connect(url, connect_timeout=10) as conn:
        try:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM seen), (SELECT count(*) FROM outbox WHERE NOT sent)"
            ).fetchone()
        except psycopg.errors.UndefinedTable:  # no consumer has migrated the schema yet
            return 0, 0
    assert row is not None
    return int(str(row[0])), int(str(row[1]))


def test_three_consumers_killed_at_random_net_the_same_charges_as_one_replay(
    rabbit: LocalBroker, cluster: LocalPostgres, policy: Policy, tmp_path: Path
) -> None:
    distinct, feed = synthetic_feed(DELIVERIES, SEED)
    # the single-process replay runs beside the consumers (a forked child: this process stays thread-free)
    receiver, sender = multiprocessing.get_context("fork").Pipe(duplex=False)
    replay = multiprocessing.get_context("fork").Process(target=_expect, args=(distinct, policy, sender))
    replay.start()
    topology = fresh_topology("multi")
    declare(rabbit, topology)
    rng = random.Random(SEED)
    kills = 0
    with cluster.fresh_database("multi") as url:
        args = ("--state", url, "--prefetch", "400", "--batch-size", "200")
        consumers = [
            ForkedConsumer(rabbit, topology, tmp_path / f"consumer-{n}", policy, args) for n in range(CONSUMERS)
        ]
        started = time.monotonic()
        try:
            for consumer in consumers:
                consumer.start()
            publish_inputs(rabbit, topology, feed)
            published = time.monotonic()
            deadline = published + 900
            distinct_inputs = len(distinct) + 1  # until the replay says
            while True:
                time.sleep(rng.uniform(2.0, 4.0))
                if receiver.poll():
                    distinct_inputs, expected, expected_effects = receiver.recv()
                seen, unsent = store_progress(url)
                if seen >= distinct_inputs and unsent == 0 and depth(rabbit, topology.input_queue()) == 0:
                    break
                assert time.monotonic() < deadline, f"stuck at {seen}/{distinct_inputs} inputs, {unsent} unsent:\n" + (
                    "\n".join(c.log()[-1500:] for c in consumers)
                )
                victim = rng.choice(consumers)
                victim.kill()
                kills += 1
                victim.start()
            done = time.monotonic()
            for consumer in consumers:
                assert consumer.terminate() == 0, consumer.log()[-3000:]
        finally:
            for consumer in consumers:
                consumer.kill()
        received = take_all(rabbit, topology.output_queue("json"))
    delete_topology(rabbit, topology)
    replay.join(60)
    assert expected and expected_effects == 0
    net, bad_lines = net_by_count([message.body for message in received])
    lost = sum(1 for line_id, line in expected.items() if net.get(line_id) != line)
    unexpected = len(net.keys() - expected.keys())
    effects = changed_bodies(received) + bad_lines
    by_id = Counter(message.message_id for message in received)
    record_figures(
        f"multi-consumer fault test: {len(feed)} deliveries ({distinct_inputs} distinct, "
        f"{len(feed) - distinct_inputs} duplicates, shuffled) on one queue, {CONSUMERS} consumers, one PostgreSQL "
        f"database; kill -9 + restart: {kills}\n"
        f"  charge messages received {len(received)} ({len(by_id)} distinct ids, "
        f"{len(received) - len(by_id)} re-publications); net lines {len(net)} (expected {len(expected)}); "
        f"lost {lost}; unexpected {unexpected}; duplicate effects {effects}\n"
        f"  wall time {done - started:.1f}s (publishing {published - started:.1f}s, until drained "
        f"{done - published:.1f}s: {len(feed) / (done - started):.0f} deliveries/s); load {_loadavg()}"
    )
    assert kills >= 1
    assert (lost, unexpected, effects) == (0, 0, 0)
    assert net == expected


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"
