"""Bus end to end: input queue → ``ivpush consume`` → confirmed charge messages, on a real RabbitMQ node.

The node is ``IVPUSH_AMQP_URL`` when set (``. .local/rabbitmq/env``), else one started here with
``deploy/local/rabbitmq.sh`` on a private port and directory (stopped after). Without a node the
section is reported as skipped, with the reason, and the run goes on. Every phase uses a fresh
topology prefix (``bench-...``; quorum queues, the project's arguments), deleted after.

1. **Raw pika loop** (the ceiling, ``bus_children pika-loop``, its own process): consume at
   prefetch 100, republish each body with asynchronous publisher confirms, ack (multiple) once
   confirmed; persistent messages; no work.
2. **ivpush HL7 / FHIR**: N synthetic inputs (``connector.synth.render``, one record per message,
   content type and ``x-ivpush-format`` set) are preloaded into the input queue, then ``ivpush
   consume --format json --emit-on change`` starts as a child with a fresh SQLite state file
   (default prefetch 200, batch 200, ``synchronous=FULL``). Time runs from the consumer's
   "consuming" log line to the moment the output queue first holds every charge message the
   consumer committed to its outbox (read from the state file: all N inputs seen, no row
   unsent). With ``--emit-on change`` a batch emits one message per changed encounter, so
   the count depends on batching: the outbox is the expectation, and afterwards every charge
   message is drained and checked — ``lost`` = outbox ids never received (must be 0), and
   each encounter's net charged lines (charges minus credits, in arrival order) must equal
   those of an in-memory reference run of the same inputs.
3. **Latency** (HL7, same consumer, right after 2): the next records of the same feed are
   offered at 50 % of the rate measured in 2 (full run: then also at 10 %; ``bus_children
   offer``, stamped with their send time) while this process consumes the charge messages as
   they arrive. The charge message
   does not name the input it answers (headers: ``encounter_key``, ``format``, ``schema``), so an
   input is matched to the first charge message of its encounter, arriving after it was sent,
   whose lines list one of the input's administration ids. Inputs that change no line (not
   given, a repeat, the discharge) have no charge message of their own and are counted apart.

4. **MLLP in vs AMQP** (``ingress_bench``): the same first HL7 inputs through ``ivpush listen``
   over MLLP and through the input exchange, each path with its own consumer: their ratio.

Rates per CPU-second of the consumer (user + system, from ``/proc``) and the broker's CPU
(when its pid is known) are recorded: 2 cores hold the broker, the consumer and this process.
Plumbing (node, children, topology, preload) is in ``bus_node``; checks and latency matching
in ``bus_check``; the child programs in ``bus_children``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pika
from fhir.resources.R4B.medicationadministration import MedicationAdministration

from benchmarks import ingress_bench
from benchmarks.bus_check import Parsed, Received, drain, latency, net_lines, outbox_counts
from benchmarks.bus_node import (
    ROOT,
    Node,
    child_env,
    cpu_seconds,
    delete,
    depth,
    preload,
    stop,
    topology_for,
    wait_for_text,
)
from benchmarks.replay_bench import _ivpush
from connector.bus.errors import BusError
from connector.bus.topology import Topology
from connector.synth.render import records

ZONE_NAME = "America/New_York"
SEEDS = {"hl7": 401, "fhir": 402}
TARGET_RATIO = 0.70
PLANS: dict[bool, dict[str, float]] = {  # inputs per phase; latency: seconds offered, records generated per s
    True: {"pika": 1000, "hl7": 800, "fhir": 300, "max_offered_per_s": 1500},
    False: {"pika": 20_000, "hl7": 20_000, "fhir": 5_000, "max_offered_per_s": 2500},
}
LOADS = {  # (result key, fraction of the measured HL7 rate, seconds offered)
    True: (("latency", 0.5, 2.0),),
    False: (("latency", 0.5, 20.0), ("latency_at_10pct", 0.1, 10.0)),
}


def pika_phase(node: Node, bodies: list[bytes], scratch: Path) -> dict[str, Any]:
    """The raw pika loop on its own topology: messages/s from preloaded input to confirmed output."""
    topology = topology_for("pika")
    out = scratch / "pika.out"
    try:
        preload(node, topology, "hl7", bodies)
        command = [
            sys.executable, "-m", "benchmarks.bus_children", "pika-loop", "--queue", topology.input_queue(),
            "--exchange", topology.output_exchange, "--routing-key", topology.routing_key("json"), "--prefetch", "100",
        ]  # fmt: skip
        with out.open("wb") as sink:
            child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=child_env(node.url), cwd=ROOT)
        try:
            measured = _timed(node, child, out, "consuming", topology, lambda depth_now: depth_now >= len(bodies))
        finally:
            stop(child)
        counts = json.loads(out.read_text().strip().splitlines()[-1])
        return {"prefetch": 100, "inputs": len(bodies), **measured, "child_counts": counts}
    finally:
        delete(node, topology)


def _timed(
    node: Node, child: subprocess.Popen[bytes], out: Path, ready: str, topology: Topology, done: Any
) -> dict[str, Any]:
    """Time from ``ready`` in the child's output to the first poll where ``done(depth)`` holds."""
    connection = pika.BlockingConnection(pika.URLParameters(node.url))
    try:
        channel = connection.channel()
        started = wait_for_text(out, ready, child)
        cpu0, broker0 = cpu_seconds(child.pid), node.cpu_seconds()
        deadline = time.monotonic() + 600
        last, changed = -1, started
        while True:
            now_depth = depth(channel, topology.output_queue("json"))
            if now_depth != last:
                last, changed = now_depth, time.perf_counter()
            if done(now_depth):
                break
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"stalled at {now_depth} output messages (exit {child.poll()})")
            time.sleep(0.01)
        cpu1, broker1 = cpu_seconds(child.pid), node.cpu_seconds()
    finally:
        connection.close()
    seconds = max(changed - started, 1e-9)
    return {
        "seconds": round(seconds, 3),
        "output_messages": last,
        "cpu_seconds": round(cpu1 - cpu0, 2),
        "broker_cpu_seconds": round(broker1 - broker0, 2) if broker0 is not None and broker1 is not None else None,
    }


def ivpush_phase(
    node: Node, fmt: str, bodies: list[bytes], n: int, scratch: Path, loads: tuple[tuple[str, float, float], ...] = ()
) -> dict[str, Any]:
    """``ivpush consume`` on preloaded inputs; then latency at each (name, fraction of the measured rate, seconds)."""
    topology = topology_for(fmt)
    state, log = scratch / f"{fmt}-state.db", scratch / f"{fmt}-consume.log"
    parsed = Parsed(fmt, bodies, ZONE_NAME)
    target = parsed.distinct_inputs(n)
    result: dict[str, Any] = {"inputs": n, "mean_input_bytes": round(sum(map(len, bodies[:n])) / n)}
    received: list[Received] = []
    sent = n
    try:
        result["preload_seconds"] = round(preload(node, topology, fmt, bodies[:n]), 2)
        command = [
            *_ivpush(), "consume", "--prefix", topology.prefix, "--state", str(state), "--format", "json",
            "--emit-on", "change", "--zone", ZONE_NAME,
        ]  # fmt: skip
        with log.open("wb") as sink:
            child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=child_env(node.url), cwd=ROOT)
        try:

            def finished(output_depth: int) -> bool:
                seen, total, unsent = outbox_counts(state)
                return seen >= target and unsent == 0 and output_depth >= total

            result.update(_timed(node, child, log, "consuming", topology, finished))
            received = drain(node.url, topology.output_queue("json"), result["output_messages"])
            offset = n
            for name, fraction, seconds in loads:
                rate = fraction * n / result["seconds"]
                count = min(len(bodies) - offset, max(1, int(rate * seconds)))
                command = [
                    sys.executable, "-m", "benchmarks.bus_children", "offer", "--format", fmt,
                    "--seed", str(SEEDS[fmt]), "--limit", str(len(bodies) + 1), "--skip", str(offset),
                    "--count", str(count), "--rate", f"{rate:.1f}", "--exchange", topology.input_exchange,
                ]  # fmt: skip
                queue = topology.output_queue("json")
                offer_out = scratch / f"offer-{name}.json"
                measured = latency(
                    node.url, queue, command, child_env(node.url), offer_out, parsed, offset, count, state,
                    lambda: cpu_seconds(child.pid),
                )  # fmt: skip
                received += measured.pop("received")
                result[name] = {"fraction_of_max": fraction, "target_rate_per_s": round(rate, 1), **measured}
                offset += count
            sent = offset
        finally:
            result["consumer_exit"] = stop(child)
            result["consumer_log_tail"] = log.read_text(errors="replace").strip().splitlines()[-1:]
        result.update(_check(parsed, sent, received, state))
    finally:
        delete(node, topology)
    result["inputs_per_s"] = round(n / result["seconds"])
    result["inputs_per_cpu_s"] = round(n / max(result["cpu_seconds"], 1e-9))
    return result


def _check(parsed: Parsed, sent: int, received: list[Received], state: Path) -> dict[str, Any]:
    """Lost and duplicate charge messages; net lines per encounter against the in-memory reference."""
    db = sqlite3.connect(state)
    try:
        committed = {row[0] for row in db.execute("SELECT message_id FROM outbox")}
    finally:
        db.close()
    ids = [r.message_id for r in received]
    got = net_lines(r.body for r in received)
    expected = parsed.expected_net_lines(sent)
    return {
        "charge_messages_committed": len(committed),
        "charge_messages_received": len(ids),
        "lost": len(committed - set(ids)),
        "duplicates": len(ids) - len(set(ids)),
        "poison_inputs": parsed.poison,
        "encounters": len(expected),
        "net_lines_match_reference": got == expected,
        "encounters_differing": sum(1 for key in set(got) | set(expected) if got.get(key) != expected.get(key)),
    }


def fhir_validation_rate(bodies: list[bytes]) -> dict[str, Any]:
    """fhir.resources ``MedicationAdministration.model_validate`` alone on the same decoded documents."""
    docs = [json.loads(b) for b in bodies]
    docs = [d for d in docs if d.get("resourceType") == "MedicationAdministration"][:1000]
    validate = MedicationAdministration.model_validate
    for doc in docs[:50]:
        validate(doc)
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        for doc in docs:
            validate(doc)
        best = min(best, time.perf_counter() - started)
    return {"resources": len(docs), "per_s": round(len(docs) / best)}


def run(quick: bool = False) -> dict[str, Any]:
    """Measure the bus figures (skipped, with the reason, when no broker can be had)."""
    plan = PLANS[quick]
    results: dict[str, Any] = {"load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        node = Node()
    except RuntimeError as error:
        return {**results, "skipped": str(error)}
    results["broker"] = node.source
    scratch = Path(tempfile.mkdtemp(prefix="ivpush-bench-bus-"))
    try:
        sizes = {name: int(plan[name]) for name in ("pika", "hl7", "fhir")}
        extra = int(sum(f * secs for _, f, secs in LOADS[quick]) * 2 * plan["max_offered_per_s"])
        hl7 = list(islice(records("hl7", SEEDS["hl7"], limit=sizes["hl7"] + extra + 1), sizes["hl7"] + extra))
        fhir = list(islice(records("fhir", SEEDS["fhir"], limit=sizes["fhir"]), sizes["fhir"]))
        phase_started = time.perf_counter()
        results["pika_loop"] = pika_phase(node, hl7[: sizes["pika"]], scratch)
        results["phase_seconds"] = {"pika_loop": round(time.perf_counter() - phase_started, 1)}
        results["pika_loop"]["inputs_per_s"] = round(sizes["pika"] / results["pika_loop"]["seconds"])
        phase_started = time.perf_counter()
        results["hl7"] = ivpush_phase(node, "hl7", hl7, sizes["hl7"], scratch, LOADS[quick])
        results["phase_seconds"]["hl7_and_latency"] = round(time.perf_counter() - phase_started, 1)
        phase_started = time.perf_counter()
        results["fhir"] = ivpush_phase(node, "fhir", fhir, len(fhir), scratch)
        results["phase_seconds"]["fhir"] = round(time.perf_counter() - phase_started, 1)
        results["fhir_resources_validate"] = fhir_validation_rate(fhir)
        phase_started = time.perf_counter()
        results["mllp_vs_amqp"] = ingress_bench.run(node, hl7, scratch, quick)  # MLLP in vs AMQP, same inputs
        results["phase_seconds"]["mllp_vs_amqp"] = round(time.perf_counter() - phase_started, 1)
        results["ratio_hl7_to_pika_loop"] = round(
            results["hl7"]["inputs_per_s"] / results["pika_loop"]["inputs_per_s"], 3
        )
        results["meets_ratio_target"] = results["ratio_hl7_to_pika_loop"] >= TARGET_RATIO
        results["ratio_fhir_to_fhir_resources_validate"] = round(
            results["fhir"]["inputs_per_s"] / results["fhir_resources_validate"]["per_s"], 3
        )
    except (RuntimeError, BusError, OSError, pika.exceptions.AMQPError) as error:
        results["failed"] = f"{error.__class__.__name__}: {error}"
    finally:
        node.close()
        shutil.rmtree(scratch, ignore_errors=True)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def rows(results: dict[str, Any]) -> Iterator[tuple[str, str, int, str, int, float, str]]:
    """Table rows: (group, benchmark, messages/s, baseline, baseline/s, ratio, note)."""
    if "skipped" in results or "failed" in results:
        why = results.get("skipped") or results.get("failed")
        yield "bus", "skipped" if "skipped" in results else "FAILED", 0, "", 0, 0.0, str(why)
        if "pika_loop" not in results:
            return
    loop = results.get("pika_loop")
    if loop is None:
        return
    yield (
        "bus",
        "raw pika loop (prefetch 100, no work)",
        loop["inputs_per_s"],
        "",
        0,
        1.0,
        f"{loop['inputs']} msgs, {round(loop['inputs'] / max(loop['cpu_seconds'], 1e-9))}/cpu-s of its own; "
        f"broker {loop['broker_cpu_seconds']} cpu-s",
    )
    for fmt, baseline, base_rate, ratio_key in (
        ("hl7", "raw pika loop", loop["inputs_per_s"], "ratio_hl7_to_pika_loop"),
        (
            "fhir",
            "fhir.resources validate",
            results.get("fhir_resources_validate", {}).get("per_s", 0),
            "ratio_fhir_to_fhir_resources_validate",
        ),
    ):
        row = results.get(fmt)
        if row is None:
            continue
        target = (
            f" (target {TARGET_RATIO}: {'meets' if results['meets_ratio_target'] else 'below'})" if fmt == "hl7" else ""
        )
        yield (
            "bus",
            f"ivpush consume {fmt.upper()} (SQLite, json)",
            row["inputs_per_s"],
            baseline,
            base_rate,
            results.get(ratio_key, 0.0),
            f"{row['inputs_per_cpu_s']}/cpu-s, lost {row['lost']}, {row['charge_messages_received']} charges, "
            f"net lines {'ok' if row['net_lines_match_reference'] else 'DIFFER'}{target}",
        )
        for lat in (row.get(key) for key in ("latency", "latency_at_10pct")):
            if not lat:
                continue
            yield (
                "bus",
                f"HL7 latency at {lat.get('fraction_of_max', 0.5):.0%} load (offered/s)",
                round(lat["offered_per_s"]),
                "ivpush HL7 max",
                row["inputs_per_s"],
                round(lat["offered_per_s"] / row["inputs_per_s"], 2),
                f"p50 {lat['p50_ms']} / p95 {lat['p95_ms']} / p99 {lat['p99_ms']} ms "
                f"({lat['matched']} of {lat['inputs']} inputs matched; p50 first/last quarter "
                f"{lat['p50_ms_first_last_quarter'][0]:.0f}/{lat['p50_ms_first_last_quarter'][1]:.0f} ms)",
            )
    yield from ingress_bench.rows(results.get("mllp_vs_amqp"))


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
