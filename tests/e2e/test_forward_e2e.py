"""``ivpush forward`` on a real broker against a real MLLP receiver: ACKed, parked, retried, in order, across a kill."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from broker import (
    REPO,
    ConsumerProcess,
    LocalBroker,
    declare,
    delete_topology,
    depth,
    drain,
    expected_charges,
    fresh_topology,
    hl7_feed,
    publish_inputs,
    register_log,
    wait_until,
)
from mllp_receiver import ERR_CODE, PHI_TEXT, Receiver

from connector.bus.base import Outgoing
from connector.bus.topology import Topology

pytestmark = pytest.mark.e2e
FAST_RETRIES = {"IVPUSH_FORWARD__RETRY_BASE": "0.05", "IVPUSH_FORWARD__RETRY_MAX": "0.2"}


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


@dataclass
class ForwardProcess:
    """``python -m connector.cli.forward`` against a test topology, its log in a file."""

    broker: LocalBroker
    topology: Topology
    log_path: Path
    port: int
    args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    def start(self, **env: str) -> ForwardProcess:
        command = [
            sys.executable, "-m", "connector.cli.forward", "--prefix", self.topology.prefix,
            "--port", str(self.port), "--reconnect-max", "1", *self.args,
        ]  # fmt: skip
        register_log(self.log_path)  # the session's PHI log scan reads it too
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=self.broker.env(**FAST_RETRIES, **env), stdout=log, stderr=subprocess.STDOUT, cwd=REPO
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"forward did not stop; log:\n{self.log()[-3000:]}") from None


@pytest.fixture
def topology(rabbit: LocalBroker) -> Iterator[Topology]:
    found = fresh_topology("fwd", ("dft",))
    declare(rabbit, found)
    yield found
    delete_topology(rabbit, found)
    connection = rabbit.blocking()
    channel = connection.channel()
    channel.queue_delete(parking(found))
    channel.exchange_delete(parking(found))
    connection.close()


def parking(topology: Topology) -> str:
    return f"{topology.output_queue('dft')}.parking"


def dft_messages(count: int) -> list[tuple[str, bytes]]:
    """(message id, body) of real DFT^P03 charge messages, one per encounter of a synthetic feed."""
    charges = expected_charges(hl7_feed(count, pushes=2, tag="F"), ("dft",))
    return sorted((message_id, body) for (message_id, _fmt), body in charges.items())


def publish_dfts(rabbit: LocalBroker, topology: Topology, messages: list[tuple[str, bytes]]) -> None:
    """Publish as the relay does: output exchange, ``charge.dft``, message id, format headers."""
    bus = rabbit.bus()
    try:
        outgoing = [
            Outgoing(topology.output_exchange, topology.routing_key("dft"), body, mid, headers={"format": "dft"})
            for mid, body in messages
        ]
        assert bus.publish(outgoing, 30).complete
    finally:
        bus.close()


def script(actions: dict[str, list[str]]) -> object:
    def answer(cid: str, attempt: int) -> str:
        steps = actions.get(cid, ["AA"])
        return steps[min(attempt, len(steps)) - 1]

    return answer


def test_forward_acks_parks_retries_and_keeps_the_queue_order(
    rabbit: LocalBroker, topology: Topology, tmp_path: Path
) -> None:
    messages = dft_messages(7)
    ids = [mid for mid, _ in messages]
    answer = script({ids[2]: ["silent", "AA"], ids[4]: ["AE"], ids[5]: ["close", "AA"]})
    publish_dfts(rabbit, topology, messages)
    port, metrics_port = free_port(), free_port()
    forward = ForwardProcess(rabbit, topology, tmp_path / "forward.log", port, ("--ack-timeout", "1"))
    forward.start(IVPUSH_METRICS_PORT=str(metrics_port))
    receiver = Receiver(answer, port=port)  # type: ignore[arg-type]
    try:
        # the receiver is down at first: the first message is retried, nothing moves on
        wait_until(lambda: "no usable ACK (connect)" in forward.log(), 30, "a refused connect in the log")
        receiver.start()
        wait_until(lambda: len(receiver.accepted()) == 6 and depth(rabbit, parking(topology)) == 1, 30, "forwarding")
        wait_until(lambda: depth(rabbit, topology.output_queue("dft")) == 0, 10, "an empty DFT queue")
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        assert forward.stop() == 0
    finally:
        receiver.stop()
        if forward.process is not None and forward.process.poll() is None:
            forward.process.kill()
    assert receiver.accepted() == [mid for mid in ids if mid != ids[4]]  # queue order
    first_arrivals = list(dict.fromkeys(receiver.arrivals))
    assert first_arrivals == ids  # one message at a time: none before the one ahead was settled
    assert receiver.arrivals.count(ids[2]) == 2
    assert receiver.arrivals.count(ids[5]) == 2
    assert receiver.bodies == dict(messages)  # byte for byte
    (parked,) = drain(rabbit, parking(topology))
    assert (parked.message_id, parked.body) == (ids[4], dict(messages)[ids[4]])
    assert parked.headers["x-ivpush-error"] == "receiver_ae"
    assert parked.headers["x-ivpush-ack-code"] == "AE"
    assert parked.headers["x-ivpush-err-code"] == ERR_CODE
    assert parked.headers["x-ivpush-queue"] == topology.output_queue("dft")
    assert "DOE" not in str(parked.headers)
    for line in (
        'ivpush_forward_acks_total{code="AA"} 6.0',
        'ivpush_forward_acks_total{code="AE"} 1.0',
        'ivpush_forward_retries_total{reason="timeout"} 1.0',
        'ivpush_forward_retries_total{reason="closed"} 1.0',
        'ivpush_forward_messages_total{outcome="acked"} 6.0',
        'ivpush_forward_messages_total{outcome="parked"} 1.0',
        "ivpush_forward_sent_total 9.0",
    ):
        assert line in scraped, line
    log = forward.log()
    assert PHI_TEXT not in log and "DOE" not in log and "Traceback" not in log
    assert "MRN" not in log  # message bodies never reach the log


def test_a_killed_forwarder_resends_the_message_in_hand_first(
    rabbit: LocalBroker, topology: Topology, tmp_path: Path
) -> None:
    messages = dft_messages(4)
    ids = [mid for mid, _ in messages]
    publish_dfts(rabbit, topology, messages)
    silent_once = script({ids[1]: ["silent", "AA"]})
    with Receiver(silent_once, port=free_port()) as receiver:  # type: ignore[arg-type]
        forward = ForwardProcess(rabbit, topology, tmp_path / "forward.log", receiver.port, ("--ack-timeout", "60"))
        forward.start()
        wait_until(lambda: ids[1] in receiver.arrivals, 30, "the second message at the receiver")
        forward.stop(signal.SIGKILL)  # dies waiting for the ACK: the delivery was never acked
        forward.start()
        wait_until(lambda: len(receiver.accepted()) == 4, 30, "every message accepted after the restart")
        assert forward.stop() == 0
    assert receiver.accepted() == ids
    assert receiver.arrivals == [ids[0], ids[1], ids[1], ids[2], ids[3]]
    assert depth(rabbit, topology.output_queue("dft")) == 0


def test_consume_then_forward_with_the_sites_dft_settings(
    rabbit: LocalBroker, topology: Topology, tmp_path: Path
) -> None:
    feed = hl7_feed(3, pushes=2, tag="E")
    expected = {mid: body for (mid, _fmt), body in expected_charges(feed, ("dft",)).items()}
    site = {"IVPUSH_DFT__RECEIVING_APPLICATION": "BILLING", "IVPUSH_DFT__RECEIVING_FACILITY": "GENHOSP"}
    consumer = ConsumerProcess(rabbit, topology, tmp_path / "consumer", env_extra=site).start()
    with Receiver(port=free_port()) as receiver:
        forward = ForwardProcess(rabbit, topology, tmp_path / "forward.log", receiver.port).start()
        try:
            publish_inputs(rabbit, topology, feed)
            wait_until(lambda: len(receiver.accepted()) == 3, 60, "three DFT messages at the receiver")
            assert forward.stop() == 0
        finally:
            assert consumer.terminate() == 0
    assert set(receiver.bodies) == set(expected)
    for mid, body in receiver.bodies.items():
        msh = body.split(b"\r", 1)[0].split(b"|")
        assert msh[4:6] == [b"BILLING", b"GENHOSP"]  # MSH-5, MSH-6 from the consumer's [dft] settings
        pid = next(s for s in body.split(b"\r") if s.startswith(b"PID|"))
        assert pid.split(b"|")[5:] == []  # PID-5 empty, not the HL7 null
        assert body.replace(b"|BILLING|GENHOSP|", b"|||") == expected[mid]
