"""The consumer runs the retention purge between batches (issue #14, item 5), on the stub bus."""

from functools import partial

from broker import hl7_feed

from connector.bootstrap import local_zone, renderers
from connector.bus.consumer import Consumer, ConsumerSettings, Stop
from connector.bus.inputs import parse_delivery
from connector.bus.retention import Retention
from connector.bus.stub import StubBroker, StubMessage
from connector.bus.topology import Topology
from connector.observability.metrics import Metrics
from connector.policy.model import Policy
from connector.service import Service, ServiceSettings
from connector.store.memory import MemoryStore

DAY = 86400.0


def test_the_consumer_purges_old_dedup_keys_and_keeps_the_ones_it_just_wrote(policy: Policy) -> None:
    wall = [1_000_000.0]
    store = MemoryStore(clock=lambda: wall[0])
    with store.transaction() as tx:
        tx.mark_seen("PYXIS|GENHOSP|from-last-month")
    wall[0] += 40 * DAY
    broker, stop, metrics = StubBroker(), Stop(), Metrics()
    topology = Topology(prefix="stub-retention", formats=("json",))
    broker.idle_hook = stop.request
    broker.connect().declare(topology)
    feed = hl7_feed(1, pushes=1, tag="Z")
    for index, body in enumerate(feed):
        broker.route(topology.input_exchange, StubMessage(body, "feed", message_id=f"in-{index}"))
    service = Service(store, policy, ServiceSettings(renderers(("json",))), clock=lambda: wall[0])
    consumer = Consumer(
        broker.connect,
        service,
        partial(parse_delivery, policy=policy, local_zone=local_zone(None)),
        topology,
        ConsumerSettings(queue=topology.input_queue()),
        stop,
        metrics=metrics,
        retention=Retention(store, 30 * DAY, 3600.0, metrics, clock=lambda: wall[0]),
    )
    consumer.run()
    with store.transaction() as tx:
        assert not tx.is_seen("PYXIS|GENHOSP|from-last-month")
        assert tx.is_seen("PYXIS|GENHOSP|Z0-0") and tx.is_seen("ADT|GENHOSP|Z0-A03")
    assert metrics.value("ivpush_state_purged_rows_total", table="seen") == 1
    assert consumer.stats.inputs == len(feed) and broker.messages(topology.output_queue("json"))
