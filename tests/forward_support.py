"""What the ``ivpush forward`` tests share: a DFT to send and forward settings tuned for quick tests."""

from __future__ import annotations

from connector.bus.topology import Topology
from connector.forward.settings import ForwardSettings

TOPOLOGY = Topology(prefix="fwd", formats=("dft",))
QUEUE = TOPOLOGY.output_queue("dft")
PARKING = f"{QUEUE}.parking"


def dft(control: str) -> bytes:
    return (
        f"MSH|^~\\&|IVPUSH|GENHOSP|||20260302120000||DFT^P03^DFT_P03|{control}|P|2.5.1\r"
        f"EVN|P03|20260302120000\rPID|1||MRN4711^^^GENHOSP\r"
    ).encode()


def settings(port: int, **changes: object) -> ForwardSettings:
    """Settings for a receiver on 127.0.0.1:``port`` with short timeouts and backoffs; ``changes`` override."""
    values: dict[str, object] = {
        "queue": QUEUE,
        "parking_queue": PARKING,
        "port": port,
        "connect_timeout": 2.0,
        "ack_timeout": 0.3,
        "retry_base": 0.01,
        "retry_max": 0.02,
        "poll_timeout": 0.01,
        "reconnect_max": 0.05,
    }
    values.update(changes)
    return ForwardSettings(**values)  # type: ignore[arg-type]
