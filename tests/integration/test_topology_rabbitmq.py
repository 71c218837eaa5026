"""``ivpush topology --apply`` and a site's own exchange against the local RabbitMQ node.

``--apply`` runs as its own process with only its settings (a TOML file, the URL in the
environment) and a decoy ``rabbitmqctl`` first on PATH. Every process it could leave behind
(``epmd``, an Erlang VM, the decoy) inherits a marker variable, so "nothing left running" is a
comparison of the process table before and after, restricted to processes carrying the marker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pika
import pytest
from broker import REPO, ConsumerProcess, LocalBroker, delete_topology, depth, drain, hl7_feed, wait_until
from click.testing import CliRunner, Result

from connector.bus.topology import Names, Topology
from connector.cli.topology import topology as topology_command

pytestmark = pytest.mark.integration

DECOY = """#!/bin/sh
# a rabbitmqctl that leaves a process behind, as the real one's epmd did
touch "$IVPUSH_DECOY_MARK"
setsid sleep 300 </dev/null >/dev/null 2>&1 &
exit 0
"""


def processes_with(marker: str) -> set[int]:
    """Pids of the processes whose environment carries ``marker``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.add(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


def process_names(pids: set[int]) -> list[str]:
    names = []
    for pid in pids:
        try:
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            continue
    return names


def named(tag: str) -> Topology:
    """A topology whose every name is explicit (and nothing like ``<prefix>.in``)."""
    base = f"t-site-{tag}-{uuid.uuid4().hex[:8]}"
    return Topology(
        prefix=f"{base}-unused",
        formats=("json",),
        names=Names(
            input_exchange=f"{base}.iv-inbound",
            input_queue=f"{base}.iv-inputs",
            output_exchange=f"{base}.charges",
            output_queues=(("json", f"{base}.charges.json"),),
            parking_exchange=f"{base}.iv-dead",
            parking_queue=f"{base}.iv-parked",
        ),
    )


def names_env(topology: Topology) -> dict[str, str]:
    return {
        "IVPUSH_TOPOLOGY__INPUT_EXCHANGE": topology.input_exchange,
        "IVPUSH_TOPOLOGY__INPUT_QUEUE": topology.input_queue(),
        "IVPUSH_TOPOLOGY__OUTPUT_EXCHANGE": topology.output_exchange,
        "IVPUSH_TOPOLOGY__JSON_QUEUE": topology.output_queue("json"),
        "IVPUSH_TOPOLOGY__PARKING_EXCHANGE": topology.parking_exchange,
        "IVPUSH_TOPOLOGY__PARKING_QUEUE": topology.parking_queue,
        "IVPUSH_CODING__FORMATS": "json",
    }


def write_config(tmp_path: Path, topology: Topology, extra: str = "") -> Path:
    """A TOML file naming every exchange and queue of ``topology`` (plus ``extra`` [topology] lines)."""
    config = tmp_path / "ivpush.toml"
    lines = [
        f'{key.split("__")[1].lower()} = "{value}"' for key, value in names_env(topology).items() if "TOPOLOGY" in key
    ]
    config.write_text('[coding]\nformats = ["json"]\n[topology]\n' + "\n".join(lines) + "\n" + extra, encoding="utf-8")
    return config


def apply(rabbit: LocalBroker, tmp_path: Path, topology: Topology, extra: str = "") -> subprocess.CompletedProcess[str]:
    """``ivpush topology --apply --config FILE`` as its own process, with a decoy rabbitmqctl first on PATH."""
    config = write_config(tmp_path, topology, extra)
    decoys = tmp_path / "bin"
    decoys.mkdir(exist_ok=True)
    (decoys / "rabbitmqctl").write_text(DECOY, encoding="utf-8")
    (decoys / "rabbitmqctl").chmod(0o755)
    env = {
        **{k: v for k, v in rabbit.env().items() if not k.startswith("IVPUSH_") or k == "IVPUSH_AMQP_URL"},
        "PATH": f"{decoys}{os.pathsep}{os.environ.get('PATH', '')}",
        "IVPUSH_DECOY_MARK": str(tmp_path / "decoy-ran"),
        "IVPUSH_TEST_MARKER": MARKER,
    }
    command = [sys.executable, "-c", "from connector.cli.main import main; main()", "topology", "--apply"]
    return subprocess.run(
        [*command, "--config", str(config)], env=env, capture_output=True, text=True, timeout=120, check=False, cwd=REPO
    )


def apply_here(rabbit: LocalBroker, tmp_path: Path, topology: Topology, extra: str = "") -> Result:
    """The same command in this process (quicker: no interpreter start-up)."""
    config = write_config(tmp_path, topology, extra)
    return CliRunner().invoke(
        topology_command, ["--apply", "--config", str(config)], env={"IVPUSH_AMQP_URL": rabbit.url}
    )


MARKER = f"ivpush-topology-test-{uuid.uuid4().hex}"


def test_the_process_check_sees_a_process_left_behind() -> None:
    left = subprocess.Popen(["sleep", "30"], env={**os.environ, "IVPUSH_TEST_MARKER": MARKER + "-selfcheck"})
    try:
        assert left.pid in processes_with(MARKER + "-selfcheck")
    finally:
        left.kill()
        left.wait()


def test_apply_declares_every_explicit_name_with_the_input_limits_and_leaves_nothing_running(
    rabbit: LocalBroker, tmp_path: Path
) -> None:
    topology = named("apply")
    before = processes_with(MARKER)
    result = apply(rabbit, tmp_path, topology)
    left = processes_with(MARKER) - before
    assert result.returncode == 0, result.stderr
    assert not left, f"left running: {process_names(left)}"
    assert not (tmp_path / "decoy-ran").exists()  # the rabbitmqctl on PATH was never run
    assert (
        f"queues {topology.input_queue()}, {topology.output_queue('json')}, {topology.parking_queue}" in result.stderr
    )
    try:
        for queue in topology.queues():
            assert depth(rabbit, queue.name) == 0  # exists (a passive declare of a missing one fails)
        connection = rabbit.blocking()
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(topology.input_exchange, "any.key", b"bad", mandatory=True)
        method, _properties, _body = channel.basic_get(topology.input_queue())
        assert method is not None
        channel.basic_reject(method.delivery_tag, requeue=False)  # dead-lettered by the queue's own arguments
        connection.close()
        wait_until(lambda: depth(rabbit, topology.parking_queue) == 1, 10, "the dead-lettered input")
        (parked,) = drain(rabbit, topology.parking_queue)
        assert parked.body == b"bad" and parked.headers["x-first-death-reason"] == "rejected"
    finally:
        delete_topology(rabbit, topology)


@pytest.mark.parametrize("to", ["exchange", "queue"])
def test_a_message_published_to_the_sites_existing_exchange_reaches_the_input_queue(
    rabbit: LocalBroker, tmp_path: Path, to: str
) -> None:
    topology = named(f"bind-{to}")
    site = f"{topology.input_exchange}.site-owned"
    connection = rabbit.blocking()
    connection.channel().exchange_declare(site, "topic", durable=True)
    connection.close()
    try:
        result = apply_here(
            rabbit, tmp_path, topology, f'bind_exchange = "{site}"\nbind_routing_key = "hl7.ras.#"\nbind_to = "{to}"\n'
        )
        assert result.exit_code == 0, result.output
        assert f"{site} → {to} binding 'hl7.ras.#'" in result.output
        connection = rabbit.blocking()
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(site, "hl7.ras.pump7", b"RAS", mandatory=True)
        with pytest.raises(pika.exceptions.UnroutableError):
            channel.basic_publish(site, "hl7.adt.a03", b"ADT", mandatory=True)  # outside the pattern
        channel.exchange_declare(site, passive=True)  # still the site's: not deleted or redeclared
        connection.close()
        assert [m.body for m in drain(rabbit, topology.input_queue())] == [b"RAS"]
    finally:
        delete_topology(rabbit, topology)
        connection = rabbit.blocking()
        connection.channel().exchange_delete(site)
        connection.close()


def test_apply_names_a_missing_site_exchange_and_exits_1(rabbit: LocalBroker, tmp_path: Path) -> None:
    topology = named("missing")
    try:
        result = apply_here(rabbit, tmp_path, topology, 'bind_exchange = "t-no-such-site-exchange"\n')
        assert result.exit_code == 1
        assert result.output.startswith("error: ") and result.output.count("\n") == 1
        assert "NOT_FOUND" in result.output and "t-no-such-site-exchange" in result.output
    finally:
        delete_topology(rabbit, topology)


def test_an_input_queue_from_an_earlier_version_is_explained_and_can_stay_under_a_policy(
    rabbit: LocalBroker, tmp_path: Path
) -> None:
    topology = named("legacy")
    connection = rabbit.blocking()
    connection.channel().queue_declare(topology.input_queue(), durable=True, arguments={"x-queue-type": "quorum"})
    connection.close()
    try:
        refused = apply_here(rabbit, tmp_path, topology)
        assert refused.exit_code == 1
        assert "inequivalent arg" in refused.output and "topology.queue_arguments = false" in refused.output
        kept = apply(rabbit, tmp_path, topology, "queue_arguments = false\n")
        assert kept.returncode == 0, kept.stderr
        assert "rabbitmqctl set_policy --vhost / --apply-to queues" in kept.stderr
        assert not (tmp_path / "decoy-ran").exists()  # printed for an administrator, not run
    finally:
        delete_topology(rabbit, topology)


def test_consume_with_explicit_names_charges_what_the_site_exchange_delivers(
    rabbit: LocalBroker, tmp_path: Path
) -> None:
    topology = named("consume")
    site = f"{topology.input_exchange}.site-owned"
    connection = rabbit.blocking()
    connection.channel().exchange_declare(site, "topic", durable=True)
    connection.close()
    env = {**names_env(topology), "IVPUSH_TOPOLOGY__BIND_EXCHANGE": site, "IVPUSH_TOPOLOGY__BIND_ROUTING_KEY": "hl7.#"}
    consumer = ConsumerProcess(rabbit, topology, tmp_path, env_extra=env).start()
    try:
        consumer.wait_for_log("connected (connection 1)")
        connection = rabbit.blocking()
        channel = connection.channel()
        channel.confirm_delivery()
        for body in hl7_feed(1, pushes=2, tag="SITE"):
            channel.basic_publish(site, "hl7.ras", body, pika.BasicProperties(delivery_mode=2), mandatory=True)
        connection.close()
        wait_until(lambda: depth(rabbit, topology.output_queue("json")) >= 1, 60, "the charge message")
        assert consumer.terminate() == 0
    finally:
        consumer.kill()
    try:
        (charge,) = drain(rabbit, topology.output_queue("json"))
        assert charge.headers["encounter_key"] == "GENHOSP|V00000"
        assert depth(rabbit, topology.input_queue()) == 0 and depth(rabbit, topology.parking_queue) == 0
    finally:
        delete_topology(rabbit, topology)
        connection = rabbit.blocking()
        connection.channel().exchange_delete(site)
        connection.close()
