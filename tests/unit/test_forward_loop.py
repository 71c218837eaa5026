"""``ivpush forward``'s loop on a stub bus against a real MLLP receiver: ack, park, retry, order."""

from __future__ import annotations

import socket

from forward_support import PARKING, QUEUE, TOPOLOGY, dft, settings
from mllp_receiver import ERR_CODE, Receiver, ack_for

from connector.bus.base import Outgoing
from connector.bus.control import Stop
from connector.bus.parking import DETAIL_HEADER, ERROR_HEADER, QUEUE_HEADER
from connector.bus.stub import StubBroker
from connector.forward.ack import control_id
from connector.forward.forwarder import Forwarder
from connector.forward.mllp import END, START, MllpClient
from connector.forward.parking import ACK_CODE_HEADER, ERR_CODE_HEADER
from connector.observability.metrics import Metrics

# --- the loop on a stub bus -----------------------------------------------------------------------


def run_forwarder(receiver_port: int, controls: list[str], **changes: object) -> tuple[StubBroker, Metrics, Forwarder]:
    """Queue DFTs, forward until the queue is empty, return the broker, metrics and forwarder."""
    broker = StubBroker()
    bus = broker.connect()
    bus.declare(TOPOLOGY)
    bus.publish(
        [Outgoing(TOPOLOGY.output_exchange, "charge.dft", dft(c), c, headers={"format": "dft"}) for c in controls], 1
    )
    stop = Stop()
    broker.idle_hook = stop.request  # nothing left to receive: stop
    metrics = Metrics()
    forwarder = Forwarder(
        broker.connect,
        MllpClient(settings(receiver_port, **changes)),
        settings(receiver_port, **changes),
        stop,
        metrics,
    )
    forwarder.run()
    return broker, metrics, forwarder


def script(actions: dict[str, list[str]]) -> object:
    """Receiver answers: per control id, one action per attempt (the last one repeats); default AA."""

    def answer(cid: str, attempt: int) -> str:
        steps = actions.get(cid, ["AA"])
        return steps[min(attempt, len(steps)) - 1]

    return answer


def test_aa_acks_ae_parks_silence_and_drops_are_retried_in_order() -> None:
    controls = [f"m{i}" for i in range(8)]
    answer = script({"m2": ["silent", "AA"], "m4": ["AE"], "m5": ["close", "close", "AA"], "m6": ["AR"]})
    with Receiver(answer) as receiver:  # type: ignore[arg-type]
        broker, metrics, forwarder = run_forwarder(receiver.port, controls)
    assert receiver.accepted() == ["m0", "m1", "m2", "m3", "m5", "m7"]
    assert receiver.arrivals == ["m0", "m1", "m2", "m2", "m3", "m4", "m5", "m5", "m5", "m6", "m7"]  # one at a time
    assert broker.messages(QUEUE) == []
    parked = broker.messages(PARKING)
    assert [m.message_id for m in parked] == ["m4", "m6"]
    assert [m.body for m in parked] == [dft("m4"), dft("m6")]
    first = parked[0].headers
    assert first[ERROR_HEADER] == "receiver_ae"
    assert first[ACK_CODE_HEADER] == "AE"
    assert first[ERR_CODE_HEADER] == ERR_CODE
    assert first[QUEUE_HEADER] == QUEUE
    assert first["format"] == "dft"  # the message's own headers stay
    assert first[DETAIL_HEADER] == "the receiver answered AE"
    assert parked[1].headers[ERROR_HEADER] == "receiver_ar"
    assert not any("DOE" in str(value) or "4711" in str(value) for m in parked for value in m.headers.values())
    stats = forwarder.stats
    assert (stats.sent, stats.acked, stats.parked, stats.retries) == (11, 6, 2, 3)
    assert metrics.value("ivpush_forward_sent_total") == 11
    assert metrics.value("ivpush_forward_acks_total", code="AA") == 6
    assert metrics.value("ivpush_forward_acks_total", code="AE") == 1
    assert metrics.value("ivpush_forward_acks_total", code="AR") == 1
    assert metrics.value("ivpush_forward_retries_total", reason="timeout") == 1
    assert metrics.value("ivpush_forward_retries_total", reason="closed") == 2
    assert metrics.value("ivpush_forward_messages_total", outcome="acked") == 6
    assert metrics.value("ivpush_forward_messages_total", outcome="parked") == 2
    assert metrics.value("ivpush_forward_ack_seconds_count") == 8


def test_max_attempts_parks_a_message_the_receiver_never_answers() -> None:
    with Receiver(script({"m1": ["silent"]})) as receiver:  # type: ignore[arg-type]
        broker, metrics, _ = run_forwarder(receiver.port, ["m0", "m1", "m2"], max_attempts=3, ack_timeout=0.1)
    assert receiver.arrivals == ["m0", "m1", "m1", "m1", "m2"]
    assert receiver.accepted() == ["m0", "m2"]
    (parked,) = broker.messages(PARKING)
    assert parked.headers[ERROR_HEADER] == "no_ack"
    assert parked.headers[DETAIL_HEADER] == "no usable ACK after 3 attempts (last: timeout)"
    assert ACK_CODE_HEADER not in parked.headers
    assert metrics.value("ivpush_forward_retries_total", reason="timeout") == 3


def test_an_ack_for_another_message_is_not_taken() -> None:
    """A receiver that echoes the wrong MSA-2 once: the message is sent again, never acked on it."""
    calls: list[str] = []

    def answer(cid: str, attempt: int) -> str:
        calls.append(cid)
        return "AA"

    class Confused(Receiver):
        def _respond(self, sock: socket.socket, message: bytes) -> bool:
            if control_id(message) == "m0" and calls.count("m0") == 0:
                calls.append("m0")
                sock.sendall(START + ack_for("zzz", "AA") + END)
                return True
            return super()._respond(sock, message)

    with Confused(answer) as receiver:
        broker, metrics, _ = run_forwarder(receiver.port, ["m0", "m1"])
    assert receiver.accepted() == ["m0", "m1"]
    assert metrics.value("ivpush_forward_retries_total", reason="bad_ack") == 1
    assert broker.messages(QUEUE) == []


def test_a_receiver_that_is_down_delays_messages_and_loses_none() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    receiver = Receiver(port=port)
    broker = StubBroker()
    bus = broker.connect()
    bus.declare(TOPOLOGY)
    bus.publish([Outgoing(TOPOLOGY.output_exchange, "charge.dft", dft(c), c) for c in ("m0", "m1")], 1)
    stop = Stop()
    broker.idle_hook = stop.request
    metrics = Metrics()
    attempts = {"n": 0}
    forwarder = Forwarder(broker.connect, MllpClient(settings(port)), settings(port), stop, metrics)
    real = forwarder._attempt

    def attempt(*args: object) -> object:
        attempts["n"] += 1
        if attempts["n"] == 3:
            receiver.start()  # the receiver comes up after two refused connects
        return real(*args)  # type: ignore[arg-type]

    forwarder._attempt = attempt  # type: ignore[method-assign]
    try:
        forwarder.run()
    finally:
        receiver.stop()
    assert receiver.accepted() == ["m0", "m1"]
    assert metrics.value("ivpush_forward_retries_total", reason="connect") == 2
    assert broker.messages(QUEUE) == []


def test_a_broker_that_is_down_at_start_is_retried() -> None:
    broker = StubBroker()
    broker.down = True
    stop = Stop()
    metrics = Metrics()
    connects = {"n": 0}

    def connect() -> object:
        connects["n"] += 1
        if connects["n"] == 3:
            stop.request()
        return broker.connect()

    Forwarder(connect, MllpClient(settings(1)), settings(1), stop, metrics).run()  # type: ignore[arg-type]
    assert connects["n"] == 3
    assert metrics.value("ivpush_reconnects_total") == 3
