"""``ivpush live-demo``: the bundled feeds through a real RabbitMQ and ``ivpush consume``, end to end.

Declares a demo topology (prefix ``ivpush-demo``) and empties its queues, starts ``ivpush
consume`` in the background with a throwaway state file, publishes the sample feeds to the
input exchange, waits for every charge message on the JSON output queue, then stops the
consumer with SIGTERM (graceful: exit 0). It prints the facility claims received as a table:
per encounter the charges, then the administrations that got no line or need review, with
their reasons (the outcomes the consumer stored in its state), and reports what each queue
received. The claim type is one per run, so the professional claims of the same feeds follow
as a replay (``--claim-type professional``), exactly as ``ivpush demo`` prints them. The broker
URL comes from the environment or ``--config`` (``make demo`` starts a local node with
``deploy/local/rabbitmq.sh`` and exports its URL).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from connector.adapters.archive import read_records
from connector.bootstrap import StoreOpenError, local_zone, open_store
from connector.bus.errors import BusError
from connector.bus.topology import FORMATS, Topology
from connector.cli.consume import amqp_settings_or_exit, config_option
from connector.cli.demo import FEEDS, ZONE, console_line, facility_heading, new_state, professional_section
from connector.cli.demo_table import Notes, read_notes, stored_summary, table
from connector.cli.options import load_or_exit, mappings_option
from connector.cli.replay import ReplayOptions, run

if TYPE_CHECKING:  # pika and the publisher are imported when the demo runs (#15)
    from connector.bus.base import Bus
    from connector.policy.model import Policy


def _collect(bus: Bus, queue: str, wanted: set[str], timeout: float, consumer: subprocess.Popen[bytes]) -> list[bytes]:
    """JSON charge messages from ``queue`` until every wanted message id arrived (acked as read)."""
    bodies: dict[str, bytes] = {}
    bus.consume(queue, 100)
    deadline = time.monotonic() + timeout
    while not wanted <= bodies.keys() and time.monotonic() < deadline and consumer.poll() is None:
        deliveries = bus.poll(100, 0.5, 0.05)
        for delivery in deliveries:
            bodies.setdefault(delivery.message_id or "", delivery.body)
        if deliveries:
            bus.ack(deliveries[-1].delivery_tag, multiple=True)
    bus.cancel()
    return [bodies[key] for key in sorted(bodies)]


def _consume_command(prefix: str, state: Path, zone: str, mappings: Path | None, config: Path | None) -> list[str]:
    """``ivpush consume`` for the demo: its own state, quick idle close, no metrics endpoint."""
    return [
        sys.executable,
        "-m",
        "connector.cli.consume",
        "--prefix",
        prefix,
        "--state",
        str(state),
        "--zone",
        zone,
        "--idle-seconds",
        "5",
        "--sweep-seconds",
        "1",
        "--metrics-port",  # a demo needs no endpoint, nor to fail when port 9464 is taken
        "0",
        *(["--mappings", str(mappings)] if mappings else []),
        *(["--config", str(config)] if config else []),
    ]


def _start(bus: Bus, topology: Topology, command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Declare the demo topology, empty its queues and start the consumer, logging to ``log_path``."""
    bus.declare(topology)
    for queue in [*topology.input_queues(), topology.parking_queue, *map(topology.output_queue, FORMATS)]:
        bus.purge(queue)
    with log_path.open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))  # noqa: S603 - our own module


def _stored(state_path: Path, policy: Policy) -> tuple[dict[str, Notes], str]:
    """The consumer's stored outcomes: notes per encounter and their summary (none when unreadable)."""
    try:
        store = open_store(str(state_path))
    except StoreOpenError as error:
        return {}, f"state not readable: {error}"
    try:
        return read_notes(store, policy), stored_summary(store)
    finally:
        store.close()


@click.command("live-demo")
@click.argument("paths", nargs=-1)
@config_option
@click.option("--prefix", default="ivpush-demo", show_default=True, help="Prefix of the demo's exchanges and queues.")
@click.option("--zone", default=ZONE, show_default=True, help="Zone of the sample feeds' local times.")
@click.option("--timeout", type=float, default=90.0, show_default=True, help="Seconds to wait for the charges.")
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keep the consumer's state in this new SQLite file (for ivpush serve) [default: a temporary one].",
)
@mappings_option
def live_demo(
    paths: tuple[str, ...],
    config_path: Path | None,
    prefix: str,
    zone: str,
    timeout: float,
    state: Path | None,
    mappings: Path | None,
) -> None:
    """Publish the sample feeds (or PATHS) to RabbitMQ, consume them with ivpush consume, print the charges."""
    from connector.bus.publisher import input_message, publish_all
    from connector.bus.rabbitmq import RabbitBus

    policy = load_or_exit(mappings)
    sources = paths or (str(FEEDS),)
    site_zone = local_zone(zone)
    expected = io.BytesIO()
    run(ReplayOptions(paths=sources, zone=site_zone), policy, expected)  # what the consumer must publish
    wanted = {str(json.loads(line)["message_id"]) for line in expected.getvalue().splitlines()}
    settings = amqp_settings_or_exit(config_path, "ivpush live-demo")
    topology = Topology(prefix=prefix, formats=FORMATS)
    with tempfile.TemporaryDirectory(prefix="ivpush-live-demo-") as scratch:
        try:
            bus = RabbitBus(settings)
        except BusError as error:
            click.echo(f"error: cannot reach RabbitMQ at {settings.redacted()}: {error}", err=True)
            raise SystemExit(1) from error
        log_path = Path(scratch) / "consume.log"
        state_path = (kept := new_state(state) or Path(scratch) / "state.db").resolve()
        consumer: subprocess.Popen[bytes] | None = None
        try:
            command = _consume_command(prefix, state_path, zone, mappings, config_path)
            consumer = _start(bus, topology, command, log_path)
            messages = [input_message(record, topology) for record in read_records(sources)]
            report = publish_all(bus, messages)
            click.echo(
                f"published {len(report.confirmed)} inputs to {topology.input_exchange}; "
                f"consuming with ivpush consume (pid {consumer.pid})…"
            )
            bodies = _collect(bus, topology.output_queue("json"), wanted, timeout, consumer)
            consumer.send_signal(signal.SIGTERM)
            code = consumer.wait(60)
            notes, summary = _stored(state_path, policy)  # the consumer has stopped: its state is ours to read
            click.echo(facility_heading("received from RabbitMQ, coded by ivpush consume"))
            click.echo(table(b"".join(bodies), notes))
            click.echo(f"outcomes stored by ivpush consume: {summary}")
            others = ", ".join(f"{fmt} {bus.purge(topology.output_queue(fmt))}" for fmt in FORMATS if fmt != "json")
            parked = bus.purge(topology.parking_queue)
            click.echo(
                f"charge messages: json {len(bodies)} of {len(wanted)} expected, {others}; parked inputs: {parked}; "
                f"consumer exit code {code} (SIGTERM: graceful)"
            )
            if not wanted <= {str(json.loads(body)["message_id"]) for body in bodies} or code != 0:
                click.echo(f"live demo FAILED; consumer log:\n{log_path.read_text(errors='replace')[-4000:]}", err=True)
                raise SystemExit(1)
            kept_line = f"\n\n{console_line(kept)}" if state is not None else ""  # a kept state: how to see it
            click.echo(professional_section(sources, site_zone, policy) + kept_line)
        except BusError as error:
            click.echo(f"error: {error}", err=True)
            raise SystemExit(1) from error
        finally:
            if consumer is not None and consumer.poll() is None:
                consumer.kill()
                consumer.wait()
            bus.close()


if __name__ == "__main__":
    live_demo()
