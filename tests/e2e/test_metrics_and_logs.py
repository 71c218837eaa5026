"""Operations end to end: /metrics over HTTP while a real broker run charges, and the PHI log scan.

The scan reads the log of **every** consumer process the e2e suite started (``ConsumerProcess``
and ``ForkedConsumer`` register their log files in ``broker.CONSUMER_LOGS``), plus a consumer
run at DEBUG over every sample input (tests/samples/hl7, tests/samples/fhir, examples/feeds)
and the ``x-ivpush-detail`` reason headers of the inputs it parked, and fails on any PHI value
of those samples or of the synthetic feeds (``phi_scan``). The scan test carries the
``run_last`` marker: ``tests/e2e/conftest.py`` moves it to the end of the session, after every
other test that starts consumers (whatever the file names of later additions), and it fails
when the DEBUG run did not happen, so it cannot pass by having nothing to read.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from broker import (
    CONSUMER_LOGS,
    ConsumerProcess,
    LocalBroker,
    Received,
    declare,
    delete_topology,
    drain,
    expected_charges,
    fresh_topology,
    hl7_feed,
    publish_inputs,
    record_figures,
    register_log,
    wait_until,
)
from phi_scan import hostile_files, hostile_secrets, sample_files, sample_phi, scan
from prometheus_client.parser import text_string_to_metric_families

from connector.bus.parking import DETAIL_HEADER
from connector.synth.render import records as synth_records

pytestmark = pytest.mark.e2e
SYNTHETIC_ENCOUNTERS = 2000  # hl7_feed MRNs of every e2e test (MRN00000…): more than any test publishes
SYNTH_SEED = 2026  # the seed of the multi-consumer test's synthetic feed (names, MRNs)
DEBUG_RUNS: list[Path] = []  # the DEBUG consumer's log, for the scan


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""  # not listening yet


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Every sample of ``/metrics`` by (name, labels)."""
    status, text = get(port, "/metrics")
    assert status == 200, (status, text[:500])
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_fetched_over_http_move_while_a_real_broker_run_charges(rabbit: LocalBroker, tmp_path: Path) -> None:
    feed = hl7_feed(10, tag="M")
    expected = {mid for mid, _fmt in expected_charges(feed)}
    topology = fresh_topology("metrics")
    declare(rabbit, topology)
    port = free_port()
    consumer = ConsumerProcess(rabbit, topology, tmp_path, args=("--metrics-port", str(port))).start()
    try:
        wait_until(lambda: get(port, "/readyz")[0] == 200 or not consumer.alive(), 90, "/readyz 200")
        assert consumer.alive(), consumer.log()[-3000:]
        assert get(port, "/healthz")[0] == 200
        before = scrape(port)
        publish_inputs(rabbit, topology, feed + feed[:5])  # 5 duplicates
        wait_until(
            lambda: (
                value(scrape(port), "ivpush_outbox_published_total", format="json") >= len(expected)
                and value(scrape(port), "ivpush_deliveries_total") >= len(feed) + 5
            ),
            90,
            "the charges confirmed, as /metrics sees them",
        )
        after = scrape(port)
        status, body = get(port, "/readyz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        assert consumer.terminate() == 0
    finally:
        consumer.kill()

    def moved(name: str, **labels: str) -> tuple[float, float]:
        return value(before, name, **labels), value(after, name, **labels)

    accepted = moved("ivpush_inputs_total", type="hl7v2", outcome="accepted")
    duplicates = moved("ivpush_inputs_total", type="hl7v2", outcome="duplicate")
    lines = moved("ivpush_charge_lines_total", code="96376", action="charge")
    published = moved("ivpush_outbox_published_total", format="json")
    confirms = moved("ivpush_publish_confirm_seconds_count")
    batches = moved("ivpush_batch_processing_seconds_count")
    coded = moved("ivpush_administrations_total", outcome="coded", reason="coded")
    record_figures(
        f"/metrics over HTTP, before → after {len(feed)} inputs + 5 duplicates: inputs accepted {accepted}, "
        f"duplicate {duplicates}, 96376 charge lines {lines}, published {published}, confirms {confirms}, "
        f"batches {batches}, administrations coded {coded}"
    )
    assert coded[0] == 0 and coded[1] >= 20  # each encounter: an initial push and a repeat at least
    assert accepted == (0, len(feed)) and duplicates == (0, 5)
    assert lines[0] == 0 and lines[1] >= 10  # every encounter repeats a push of the same drug
    assert published == (0, len(expected)) and confirms[0] == 0 and confirms[1] >= len(expected)
    assert batches[0] == 0 and batches[1] >= 1
    assert value(after, "ivpush_outbox_pending_messages") == 0
    assert value(after, "ivpush_broker_connected") == 1 and value(after, "ivpush_reconnects_total") == 0
    log = consumer.log()
    assert "serving /metrics, /healthz and /readyz on http://127.0.0.1:" in log
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert events and all({"timestamp", "level", "logger", "event"} <= event.keys() for event in events)
    delete_topology(rabbit, topology)


def debug_run(
    rabbit: LocalBroker, tmp_path: Path, name: str, bodies: list[bytes]
) -> tuple[Samples, list[Received], str]:
    """Publish ``bodies``, run a DEBUG consumer over them until each is acked; its samples, parked copies, log.

    The log joins the PHI scan, and so does every header of every parked copy.
    """
    topology = fresh_topology(name)
    declare(rabbit, topology)
    publish_inputs(rabbit, topology, bodies)
    port = free_port()
    args = ("--log-level", "DEBUG", "--emit-on", "change", "--metrics-port", str(port), "--prefetch", "16")
    consumer = ConsumerProcess(rabbit, topology, tmp_path, args=args).start()
    DEBUG_RUNS.append(consumer.log_path)
    try:
        wait_until(
            lambda: (
                (get(port, "/healthz")[0] == 200 and value(scrape(port), "ivpush_deliveries_total") >= len(bodies))
                or not consumer.alive()
            ),
            180,
            f"every input of {name} acked",
        )
        assert consumer.alive(), consumer.log()[-3000:]
        samples = scrape(port)
        assert consumer.terminate() == 0
    finally:
        consumer.kill()
    parked = drain(rabbit, topology.parking_queue)
    headers_log = tmp_path / "parked-headers.log"  # the parked copies' headers must hold no PHI either
    headers_log.write_text(
        "".join(f"{m.message_id} {json.dumps(m.headers, default=str, sort_keys=True)}\n" for m in parked),
        encoding="utf-8",
    )
    register_log(headers_log)
    delete_topology(rabbit, topology)
    return samples, parked, consumer.log()


def test_a_debug_run_over_every_sample_input_is_logged_for_the_phi_scan(rabbit: LocalBroker, tmp_path: Path) -> None:
    bodies = [path.read_bytes() for path in sample_files()]
    samples, parked_copies, log = debug_run(rabbit, tmp_path, "phi-debug", bodies)
    parked = sum(v for (name, labels), v in samples.items() if name == "ivpush_rejects_total")
    record_figures(
        f"DEBUG run over {len(bodies)} sample inputs: parked {parked:.0f}, "
        f"charge messages {value(samples, 'ivpush_charge_messages_total'):.0f}, log {len(log):,} bytes"
    )
    assert len(parked_copies) == parked > 0 and all(m.headers.get(DETAIL_HEADER) for m in parked_copies)
    assert '"level": "debug"' in log


def test_a_debug_run_over_the_hostile_corpus_parks_its_inputs_with_phi_free_headers(
    rabbit: LocalBroker, tmp_path: Path
) -> None:
    bodies = [path.read_bytes() for path in hostile_files()]
    _, parked, _ = debug_run(rabbit, tmp_path, "phi-hostile", bodies)
    record_figures(f"DEBUG run over {len(bodies)} hostile inputs: parked {len(parked)}")
    assert len(parked) >= len(bodies) // 2 and all(m.headers.get(DETAIL_HEADER) for m in parked)


@pytest.mark.run_last
def test_no_consumer_log_of_the_e2e_suite_holds_a_phi_value_of_the_samples() -> None:
    assert DEBUG_RUNS, "the DEBUG run over every sample input did not run in this session: nothing to prove"
    paths = [path for path in CONSUMER_LOGS if path.exists()]
    assert set(DEBUG_RUNS) <= set(paths)
    logs = {str(path): path.read_text(encoding="utf-8", errors="replace") for path in paths}
    synthetic = [(body, "hl7_feed") for body in hl7_feed(SYNTHETIC_ENCOUNTERS, pushes=1)]
    synthetic += [
        (body, f"synth {fmt}") for fmt in ("hl7", "fhir") for body in synth_records(fmt, SYNTH_SEED, limit=3000)
    ]
    values = sample_phi([*sample_files(), *hostile_files()], synthetic)
    values.update({secret.text.lower(): secret for secret in hostile_secrets()})
    hits = scan(logs, values)
    record_figures(
        f"PHI log scan: {len(logs)} consumer logs ({sum(map(len, logs.values())) / 1e6:.1f} MB, "
        f"{sum(text.count(chr(10)) for text in logs.values()):,} lines) against {len(values)} PHI values "
        f"from {len(sample_files())} samples + synthetic feeds: {len(hits)} hits"
    )
    assert not hits, "PHI in consumer logs:\n" + "\n".join(map(str, hits[:50]))
