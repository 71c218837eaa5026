"""Topology for real sites without a broker: explicit names, a site's exchange, the input limits as queue arguments."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from connector.bus.base import Outgoing
from connector.bus.errors import ConfigError, TopologyError
from connector.bus.stub import StubBroker
from connector.bus.topology import Topology, definitions
from connector.cli import topology as topology_cli
from connector.cli.check import check
from connector.config import Settings, SettingsError, load
from connector.config.topology import build_topology

REPO = Path(__file__).resolve().parents[2]
NAMES = {
    "topology.input_exchange": "hosp.billing.iv.in",
    "topology.input_queue": "hosp.billing.iv.inputs",
    "topology.output_exchange": "hosp.billing.charges",
    "topology.json_queue": "hosp.billing.charges.json",
    "topology.dft_queue": "hosp.billing.charges.dft",
    "topology.chargeitem_queue": "hosp.billing.charges.fhir",
    "topology.parking_exchange": "hosp.billing.iv.dead",
    "topology.parking_queue": "hosp.billing.iv.parked",
}


def settings(**values: object) -> Settings:
    return load(None, {key.replace("__", "."): value for key, value in values.items()}, environ={})


def test_the_defaults_are_the_prefix_names_of_earlier_versions() -> None:
    built = build_topology(settings())
    assert built == Topology()
    assert [e.name for e in built.exchanges()] == ["ivpush.in", "ivpush.out", "ivpush.dlx"]
    assert [q.name for q in built.queues()] == [
        "ivpush.in",
        "ivpush.out.json",
        "ivpush.out.dft",
        "ivpush.out.chargeitem",
        "ivpush.parking",
    ]


def test_every_exchange_and_queue_takes_its_explicit_name() -> None:
    built = build_topology(load(None, NAMES, environ={}))
    assert {e.name for e in built.exchanges()} == {
        NAMES["topology.input_exchange"],
        NAMES["topology.output_exchange"],
        NAMES["topology.parking_exchange"],
    }
    assert {q.name for q in built.queues()} == {NAMES[k] for k in NAMES if k.endswith("_queue")}
    bindings = {(b.exchange, b.routing_key, b.queue) for b in built.bindings()}
    assert ("hosp.billing.iv.in", "#", "hosp.billing.iv.inputs") in bindings
    assert ("hosp.billing.charges", "charge.chargeitem", "hosp.billing.charges.fhir") in bindings
    assert ("hosp.billing.iv.dead", "", "hosp.billing.iv.parked") in bindings
    (inputs,) = [q for q in built.queues() if q.name == "hosp.billing.iv.inputs"]
    assert inputs.arguments["x-dead-letter-exchange"] == "hosp.billing.iv.dead"
    assert built.policy_pattern == r"^hosp\.billing\.iv\.inputs(\.[0-9]+)?$"


def test_a_shard_queue_is_named_after_the_explicit_input_queue() -> None:
    built = build_topology(load(None, {**NAMES, "amqp.shards": 2, "amqp.shard": 1}, environ={}))
    assert built.input_queues() == ["hosp.billing.iv.inputs.0", "hosp.billing.iv.inputs.1"]
    assert all(q.arguments["x-single-active-consumer"] for q in built.queues()[:2])


def test_the_input_limits_are_queue_arguments_unless_left_to_a_policy() -> None:
    (inputs, *_) = build_topology(settings(topology__delivery_limit=7)).queues()
    assert inputs.arguments == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 7,
        "x-dead-letter-exchange": "ivpush.dlx",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    policy_only = build_topology(settings(topology__queue_arguments=False))
    assert policy_only.queues()[0].arguments == {"x-queue-type": "quorum"}
    assert definitions(policy_only)["policies"][0]["definition"]["delivery-limit"] == 20


@pytest.mark.parametrize("to", ["exchange", "queue"])
def test_a_site_exchange_is_bound_with_its_pattern_and_never_declared(to: str) -> None:
    built = build_topology(
        settings(topology__bind_exchange="site.hl7", topology__bind_routing_key="ras.#", topology__bind_to=to)
    )
    assert "site.hl7" not in {e.name for e in built.exchanges()}
    site = built.bindings()[-1]
    assert (site.exchange, site.routing_key, site.destination_type) == ("site.hl7", "ras.#", to)
    assert site.queue == ("ivpush.in" if to == "exchange" else built.input_queue())
    listed = definitions(built)["bindings"][-1]
    assert (listed["source"], listed["destination"], listed["destination_type"]) == ("site.hl7", "ivpush.in", to)


@pytest.mark.parametrize("to", ["exchange", "queue"])
def test_the_stub_broker_routes_from_the_site_exchange_and_dead_letters_by_the_arguments(to: str) -> None:
    built = build_topology(
        settings(topology__bind_exchange="site.hl7", topology__bind_routing_key="ras.#", topology__bind_to=to)
    )
    broker = StubBroker()
    bus = broker.connect()
    with pytest.raises(TopologyError, match=re.escape("NOT_FOUND - no exchange 'site.hl7'")):
        bus.declare(built)  # the site's exchange must exist
    broker.exchanges["site.hl7"] = ("topic", {})
    bus.declare(built)
    report = bus.publish(
        [Outgoing("site.hl7", "ras.pump7", b"one", "m1"), Outgoing("site.hl7", "adt.a03", b"two", "m2")], 5
    )
    assert report.confirmed == ["m1"] and report.returned == ["m2"]
    assert [m.body for m in broker.messages("ivpush.in")] == [b"one"]
    bus.consume("ivpush.in", 10)
    (delivery,) = bus.poll(10, 0.1)
    bus.reject(delivery.delivery_tag, requeue=False)
    assert [m.body for m in broker.messages("ivpush.parking")] == [b"one"]  # no apply_policy: the arguments did it


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"topology.json_queue": "ivpush.in"}, "the queue name ivpush.in is given to two queues"),
        ({"topology.output_exchange": "shared.x", "topology.parking_exchange": "shared.x"}, "exchange name shared.x"),
        ({"topology.bind_exchange": "ivpush.out"}, "bind_exchange ivpush.out is one of ivpush's own exchanges"),
        (
            {"topology.bind_exchange": "site.hl7", "topology.bind_to": "queue", "amqp.shards": 2, "amqp.shard": 0},
            "cannot spread inputs over amqp.shards",
        ),
    ],
)
def test_names_that_cannot_work_together_are_configuration_errors(values: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        build_topology(load(None, values, environ={}))


@pytest.mark.parametrize(
    ("key", "value"),
    [("topology.input_queue", "amq.mine"), ("topology.parking_queue", "has space"), ("topology.bind_exchange", "")],
)
def test_a_name_rabbitmq_would_refuse_is_reported_with_its_key(key: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load(None, {key: value}, environ={})
    assert [p.key for p in raised.value.problems] == [key]


def test_ivpush_check_reports_colliding_names(tmp_path: Path) -> None:
    config = tmp_path / "ivpush.toml"
    config.write_text('[topology]\ndft_queue = "ivpush.parking"\n', encoding="utf-8")
    result = CliRunner().invoke(check, ["--config", str(config)], env={"IVPUSH_STATE": str(tmp_path / "s.db")})
    assert result.exit_code == 2
    assert "settings: topology: the queue name ivpush.parking is given to two queues" in result.output


def test_topology_print_writes_the_configured_names(tmp_path: Path) -> None:
    config = tmp_path / "ivpush.toml"
    config.write_text(
        '[topology]\ninput_exchange = "hosp.iv.in"\nbind_exchange = "hosp.hl7"\nbind_routing_key = "ras.#"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(topology_cli.topology, ["--print", "--config", str(config)], env={})
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["exchanges"][0]["name"] == "hosp.iv.in"
    assert document["bindings"][-1] == {
        "source": "hosp.hl7",
        "vhost": "/",
        "destination": "hosp.iv.in",
        "destination_type": "exchange",
        "routing_key": "ras.#",
        "arguments": {},
    }


def test_topology_apply_declares_over_amqp_only_and_runs_no_program(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = StubBroker()
    monkeypatch.setattr("connector.bus.rabbitmq.RabbitBus", lambda _settings, _timeout: broker.connect())

    def no_programs(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("ivpush topology --apply started a program")

    monkeypatch.setattr(subprocess, "Popen", no_programs)
    result = CliRunner().invoke(topology_cli.topology, ["--apply"], env={"IVPUSH_AMQP_URL": "amqp://u:p@h:5672/%2F"})
    assert result.exit_code == 0, result.output
    assert set(broker.queues) == {q.name for q in Topology().queues()}
    assert broker.dead_letter == {"ivpush.in": "ivpush.dlx"} and broker.delivery_limit == {"ivpush.in": 20}
    assert "declared on amqp://u:***@h:5672/%2F" in result.output and "p@h" not in result.output


def test_topology_apply_against_no_broker_exits_1_with_one_line() -> None:
    result = CliRunner().invoke(
        topology_cli.topology, ["--apply"], env={"IVPUSH_AMQP_URL": "amqp://u:p@127.0.0.1:9/%2F"}
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot connect") and "Traceback" not in result.output


def test_the_committed_definitions_carry_the_queue_arguments_and_the_policy() -> None:
    document = json.loads((REPO / "deploy" / "rabbitmq" / "definitions.json").read_text(encoding="utf-8"))
    (inputs,) = [q for q in document["queues"] if q["name"] == "ivpush.in"]
    assert inputs["arguments"]["x-dead-letter-strategy"] == "at-least-once"
    assert document["policies"][0]["pattern"] == r"^ivpush\.in(\.[0-9]+)?$"
