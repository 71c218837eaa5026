"""The whole stack on a real broker: sample feeds in, exact charge messages out, in every format."""

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from broker import (
    REPO,
    ConsumerProcess,
    LocalBroker,
    delete_topology,
    depth,
    drain,
    fresh_topology,
    wait_until,
)

from connector.bootstrap import local_zone
from connector.bus.topology import CONTENT_TYPES, FORMATS, SCHEMAS
from connector.cli.demo import PROFESSIONAL_HEADING
from connector.cli.replay import ReplayOptions, run
from connector.policy.model import Policy

pytestmark = pytest.mark.e2e
FEEDS = REPO / "examples" / "feeds"
ZONE = "America/New_York"
ENCOUNTERS = ("GENHOSP|ED20260302001", "GENHOSP|INF20260302007", "fhir|OBS20260302042")


def replayed(policy: Policy, fmt: str) -> list[bytes]:
    out = io.BytesIO()
    run(ReplayOptions(paths=(str(FEEDS),), fmt=fmt, zone=local_zone(ZONE)), policy, out)
    return [line + b"\n" for line in out.getvalue().split(b"\n") if line] if fmt == "json" else [out.getvalue()]


def test_sample_feeds_published_with_ivpush_publish_come_out_as_the_exact_replay_messages(
    rabbit: LocalBroker, policy: Policy, tmp_path: Path
) -> None:
    topology = fresh_topology("e2e", formats=FORMATS)
    consumer = ConsumerProcess(rabbit, topology, tmp_path, args=("--zone", ZONE)).start()
    try:
        consumer.wait_for_log("connected (connection 1)")
        published = subprocess.run(
            [sys.executable, "-m", "connector.cli.publish", str(FEEDS), "--prefix", topology.prefix],
            env=rabbit.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert published.returncode == 0, published.stderr
        assert "published 15 (returned 0, nacked 0, unconfirmed 0)" in published.stderr
        for fmt in FORMATS:
            wait_until(
                lambda fmt=fmt: depth(rabbit, topology.output_queue(fmt)) >= len(ENCOUNTERS), 60, f"{fmt} charges"
            )
        assert consumer.terminate() == 0
    finally:
        consumer.kill()
    json_out = drain(rabbit, topology.output_queue("json"))
    assert sorted(m.body for m in json_out) == sorted(replayed(policy, "json"))
    for fmt in FORMATS:
        out = json_out if fmt == "json" else drain(rabbit, topology.output_queue(fmt))
        assert len(out) == len(ENCOUNTERS), fmt
        for message in out:
            assert message.delivery_mode == 2
            assert message.content_type == CONTENT_TYPES[fmt]
            assert message.headers["format"] == fmt and message.headers["schema"] == SCHEMAS[fmt]
            assert message.headers["encounter_key"] in ENCOUNTERS
        if fmt != "json":  # replay writes the messages back to back, each ending with a newline
            expected = replayed(policy, fmt)[0]
            lines = [m.body if m.body.endswith(b"\n") else m.body + b"\n" for m in out]
            assert all(expected.count(line) == 1 for line in lines) and sum(map(len, lines)) == len(expected)
        assert {m.message_id for m in out} == {m.message_id for m in json_out}
    assert depth(rabbit, topology.parking_queue) == 0
    log = consumer.log()
    assert "MRN900001" not in log and "MRN900003" not in log and "DEMO^PATIENT" not in log  # no PHI in logs
    delete_topology(rabbit, topology)


def test_sigterm_drains_and_exits_zero_and_a_second_signal_exits_at_once(rabbit: LocalBroker, tmp_path: Path) -> None:
    topology = fresh_topology("signals")
    consumer = ConsumerProcess(rabbit, topology, tmp_path / "graceful").start()
    consumer.wait_for_log("connected (connection 1)")
    assert consumer.terminate(30) == 0
    assert "stopping: finishing the batch in hand and draining the outbox" in consumer.log()
    assert "stopped:" in consumer.log()
    impatient = ConsumerProcess(rabbit, topology, tmp_path / "impatient", args=("--shutdown-deadline", "30")).start()
    impatient.wait_for_log("connected (connection 1)")
    assert impatient.process is not None
    impatient.process.send_signal(signal.SIGTERM)
    impatient.process.send_signal(signal.SIGTERM)
    assert impatient.wait(30) in (0, 128 + signal.SIGTERM)
    delete_topology(rabbit, topology)


def test_the_live_demo_prints_the_charges_it_received_over_rabbitmq(rabbit: LocalBroker) -> None:
    env = rabbit.env()
    result = subprocess.run(
        [sys.executable, "-m", "connector.cli.live_demo", "--prefix", fresh_topology("demo").prefix],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=os.fspath(REPO),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    facility, professional = result.stdout.split(PROFESSIONAL_HEADING)
    assert (
        "== Facility claims (claim type facility, the default): received from RabbitMQ, coded by ivpush consume =="
        in facility
    )
    assert "Encounter ED20260302001 — emergency, facility claim, payer bcbs, place of service 23" in facility
    assert "Encounter INF20260302007 — outpatient, facility claim, payer medicare" in facility
    # the consumer's stored outcomes: the administrations without a line, with their reasons
    assert "ED006     no line: im_sq_injection — " in facility
    assert "INF002    needs review: unmapped_route — " in facility
    assert "outcomes stored by ivpush consume: administrations coded 8; no line: 1 im_sq_injection" in facility
    assert "json 3 of 3 expected, dft 3, chargeitem 3; parked inputs: 0; consumer exit code 0" in facility
    assert "Encounter ED20260302001 — emergency, professional claim, payer bcbs, place of service 23" in professional
    assert "write_off: the payer does not reimburse these codes" in professional
