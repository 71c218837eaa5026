"""The MLLP and HTTP listeners in process, over a stub broker: answers, durability rule, limits, metrics."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import orjson
import pytest
from broker import RAS
from click.testing import CliRunner
from ingress_support import Running, ack_code, ack_control, exchange, read_ack

from connector.bus.inputs import FORMAT_HEADER
from connector.bus.stub import StubBroker
from connector.bus.topology import Topology
from connector.cli.main import cli
from connector.config import load as load_settings
from connector.ingress.metrics import IngressMetrics, readiness
from connector.ingress.mllp import wrap
from connector.ingress.publisher import SOURCE_HEADER, Publisher, input_message
from connector.ingress.settings import server_tls
from connector.observability.server import HealthLimits

TOPOLOGY = Topology(prefix="t")
QUEUE = TOPOLOGY.input_queue()


def ras(control: str, enc: int = 1) -> bytes:
    return RAS.format(stamp="20260302084000", control=control, enc=enc, n=0, drug="7052^Morphine^RXNORM").encode()


@pytest.fixture
def broker() -> StubBroker:
    return StubBroker()


def connect(running: Running) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", running.mllp_port), timeout=30)
    return sock


def post(
    running: Running, path: str, body: bytes, content_type: str, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", running.ingress.addresses["http"].port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type, **headers})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


# --- MLLP ---------------------------------------------------------------------------------------


def test_each_message_is_published_as_ivpush_publish_would_and_answered_aa_in_order(broker: StubBroker) -> None:
    with Running(broker.connect, TOPOLOGY) as running, connect(running) as sock:
        acks = [exchange(sock, ras(f"C{n}")) for n in range(5)]
    assert [ack_code(a) for a in acks] == ["AA"] * 5
    assert [ack_control(a) for a in acks] == [f"C{n}" for n in range(5)]
    stored = broker.messages(QUEUE)
    assert [m.body for m in stored] == [ras(f"C{n}") for n in range(5)]
    first = stored[0]
    assert first.message_id == hashlib.sha256(ras("C0")).hexdigest()[:32]
    assert first.content_type == "application/hl7-v2"
    assert dict(first.headers) == {FORMAT_HEADER: "hl7", SOURCE_HEADER: "mllp"}
    assert running.metrics.base.value("ivpush_ingress_acks_total", listener="mllp", code="AA") == 5
    assert running.metrics.base.value("ivpush_ingress_connections_total", listener="mllp") == 1
    assert running.metrics.base.value("ivpush_ingress_confirm_seconds_count") == 5


def test_a_message_that_cannot_be_accepted_is_answered_ar_and_the_connection_goes_on(broker: StubBroker) -> None:
    with Running(broker.connect, TOPOLOGY, max_bytes=2000) as running, connect(running) as sock:
        not_hl7 = exchange(sock, b"hello")
        no_control = exchange(sock, ras("X").replace(b"|X|", b"||"))
        sock.sendall(wrap(ras("BIG") + b"\rNTE|1||" + b"y" * 5000))
        oversize = read_ack(sock)
        sock.sendall(ras("RAW") + b"\x1c\r")
        unframed = read_ack(sock)
        after = exchange(sock, ras("OK"))
    assert [ack_code(a) for a in (not_hl7, no_control, oversize, unframed, after)] == ["AR"] * 4 + ["AA"]
    assert b"|not_hl7^^99IVPUSH|" in not_hl7
    assert b"ERR|MSH^1^10^101&" in no_control
    assert ack_control(oversize) == "BIG"  # read from the head kept of the oversize frame
    assert b"oversize_input" in oversize and b"larger than 2000 bytes" in oversize
    assert ack_control(unframed) == "RAW" and b"mllp_framing" in unframed
    assert [m.body for m in broker.messages(QUEUE)] == [ras("OK")]
    assert running.metrics.base.value("ivpush_ingress_rejects_total", listener="mllp", reason="not_hl7") == 1


def test_while_the_broker_is_down_nothing_is_answered_aa_and_after_it_is_back_it_is(broker: StubBroker) -> None:
    with Running(broker.connect, TOPOLOGY) as running, connect(running) as sock:
        assert ack_code(exchange(sock, ras("BEFORE"))) == "AA"
        broker.fail()
        down = [exchange(sock, ras(f"DOWN{n}")) for n in range(3)]
        broker.restore()
        after = ""
        deadline = time.monotonic() + 30
        while after != "AA" and time.monotonic() < deadline:  # the sender's queue: send again until stored
            after = ack_code(exchange(sock, ras("DOWN0")))
            time.sleep(0.05)
    assert {ack_code(a) for a in down} == {"AE"}
    assert all(b"207^Application internal error^HL70357" in a and b"send this message again later" in a for a in down)
    assert after == "AA"
    assert [m.body for m in broker.messages(QUEUE)] == [ras("BEFORE"), ras("DOWN0")]


def test_an_unroutable_or_nacked_message_is_answered_ae(broker: StubBroker) -> None:
    with Running(broker.connect, TOPOLOGY) as running, connect(running) as sock:
        assert ack_code(exchange(sock, ras("A"))) == "AA"
        broker.nack_next = 1
        nacked = exchange(sock, ras("B"))
        broker.delete_queue(QUEUE)
        returned = exchange(sock, ras("C"))
    assert (ack_code(nacked), ack_code(returned)) == ("AE", "AE")
    assert b"|nacked^^99IVPUSH|" in nacked and b"|unroutable^^99IVPUSH|" in returned
    assert running.metrics.base.value("ivpush_ingress_acks_total", listener="mllp", code="AE") == 2


def test_a_silent_connection_is_closed_after_the_idle_timeout(broker: StubBroker) -> None:
    with Running(broker.connect, TOPOLOGY, idle_timeout=0.2) as running, connect(running) as sock:
        assert sock.recv(10) == b""  # closed by the listener, not answered: no message was sent


def test_connections_above_the_limit_are_closed_at_once_and_counted(broker: StubBroker) -> None:
    with Running(broker.connect, TOPOLOGY, max_connections=1) as running, connect(running) as first:
        assert ack_code(exchange(first, ras("1"))) == "AA"
        with connect(running) as second:
            assert second.recv(10) == b""
        assert running.metrics.base.value("ivpush_ingress_connections_refused_total", listener="mllp") == 1


def test_stopping_answers_the_messages_in_hand_and_closes_idle_connections(broker: StubBroker) -> None:
    running = Running(broker.connect, TOPOLOGY).__enter__()
    with connect(running) as sock:
        assert ack_code(exchange(sock, ras("1"))) == "AA"
        running.stop()
        assert sock.recv(10) == b""


# --- the publisher --------------------------------------------------------------------------------


def test_a_job_given_up_before_it_is_taken_is_never_published(broker: StubBroker) -> None:
    publisher = Publisher(broker.connect, IngressMetrics(), TOPOLOGY)
    future = publisher.submit([input_message(ras("GONE"), "hl7", TOPOLOGY, "k", "mllp")])
    assert future.cancel()
    publisher.start()
    kept = publisher.submit([input_message(ras("KEPT"), "hl7", TOPOLOGY, "k", "mllp")]).result(30)
    publisher.stop()
    assert kept.ok
    assert [m.body for m in broker.messages(QUEUE)] == [ras("KEPT")]


def test_a_job_that_waited_past_its_deadline_expires_unpublished_and_after_stop_jobs_are_refused(
    broker: StubBroker,
) -> None:
    publisher = Publisher(broker.connect, IngressMetrics(), TOPOLOGY, confirm_timeout=0.0)
    future = publisher.submit([input_message(ras("LATE"), "hl7", TOPOLOGY, "k", "mllp")])
    publisher.start()
    assert future.result(30).reason == "expired"
    publisher.stop()
    after = publisher.submit([input_message(ras("AFTER"), "hl7", TOPOLOGY, "k", "mllp")]).result(1)
    assert (after.ok, after.reason) == (False, "stopping")
    assert broker.messages(QUEUE) == []


def test_ready_only_while_connected_to_the_broker() -> None:
    metrics = IngressMetrics()
    metrics.base.heartbeat()
    assert readiness(metrics.base, HealthLimits())[0] is False
    metrics.base.set_connected(True)
    ok, checks = readiness(metrics.base, HealthLimits())
    assert ok and set(checks) == {"loop", "broker"}


# --- HTTP -----------------------------------------------------------------------------------------


def test_post_hl7v2_answers_the_ack_after_the_confirm(broker: StubBroker) -> None:
    with Running(broker.connect, TOPOLOGY) as running:
        status, headers, body = post(running, "/hl7v2", ras("H1"), "application/hl7-v2")
        bad_status, _, bad = post(running, "/hl7v2", b"nonsense", "x-application/hl7-v2+er7")
        media_status, _, media = post(running, "/hl7v2", ras("H2"), "application/json")
    assert (status, headers["Content-Type"], ack_code(body), ack_control(body)) == (
        200,
        "x-application/hl7-v2+er7",
        "AA",
        "H1",
    )
    assert (bad_status, ack_code(bad)) == (400, "AR")
    assert (media_status, ack_code(media), ack_control(media)) == (415, "AR", "H2")
    stored = broker.messages(QUEUE)
    assert [m.body for m in stored] == [ras("H1")]
    assert stored[0].headers[SOURCE_HEADER] == "http"


def test_post_fhir_takes_a_resource_a_bundle_or_ndjson_and_answers_202_with_an_outcome(broker: StubBroker) -> None:
    resource = b'{"resourceType": "MedicationAdministration", "id": "m1"}'
    bundle = b'{"resourceType": "Bundle", "type": "transaction", "entry": []}'
    ndjson = b'{"resourceType": "Encounter", "id": "e1"}\n{"resourceType": "Encounter", "id": "e2"}\n'
    with Running(broker.connect, TOPOLOGY) as running:
        answers = [
            post(running, "/fhir", resource, "application/fhir+json"),
            post(running, "/fhir", bundle, "application/json; charset=utf-8"),
            post(running, "/fhir", ndjson, "application/fhir+ndjson"),
        ]
        invalid = post(running, "/fhir", b'{"no": "type"}', "application/fhir+json")
        media = post(running, "/fhir", resource, "text/plain")
    assert [a[0] for a in answers] == [202, 202, 202]
    outcomes = [orjson.loads(a[2]) for a in answers]
    assert [o["issue"][0]["diagnostics"] for o in outcomes] == [
        "stored 1 input(s) for coding",
        "stored 1 input(s) for coding",
        "stored 2 input(s) for coding",
    ]
    assert answers[0][1]["Content-Type"] == "application/fhir+json"
    assert (invalid[0], orjson.loads(invalid[2])["issue"][0]["code"]) == (400, "invalid")
    assert orjson.loads(invalid[2])["issue"][0]["diagnostics"] == "the body has no resourceType"
    assert media[0] == 415
    stored = broker.messages(QUEUE)
    assert [m.body for m in stored] == [resource, bundle, b'{"resourceType": "Encounter", "id": "e1"}',
                                        b'{"resourceType": "Encounter", "id": "e2"}']  # fmt: skip
    assert {m.content_type for m in stored} == {"application/fhir+json"}


def test_while_the_broker_is_down_http_answers_503_with_retry_after_and_stores_nothing(broker: StubBroker) -> None:
    with Running(broker.connect, TOPOLOGY) as running:
        broker.fail()
        hl7 = post(running, "/hl7v2", ras("D1"), "application/hl7-v2")
        fhir = post(running, "/fhir", b'{"resourceType": "Encounter"}', "application/fhir+json")
    assert (hl7[0], hl7[1]["Retry-After"], ack_code(hl7[2]), ack_control(hl7[2])) == (503, "5", "AE", "D1")
    assert (fhir[0], orjson.loads(fhir[2])["issue"][0]["code"]) == (503, "transient")
    assert broker.messages(QUEUE) == []


def test_http_checks_the_token_the_length_and_the_route(broker: StubBroker) -> None:
    with Running(broker.connect, TOPOLOGY, token="s3cret", max_bytes=500) as running:
        port = running.ingress.addresses["http"].port
        no_token = post(running, "/hl7v2", ras("T1"), "application/hl7-v2")
        wrong = post(running, "/fhir", b"{}", "application/fhir+json", Authorization="Bearer nope")
        right = post(running, "/hl7v2", ras("T2"), "application/hl7-v2", Authorization="Bearer s3cret")
        big = post(running, "/fhir", b" " * 501, "application/fhir+json", Authorization="Bearer s3cret")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.putrequest("POST", "/hl7v2")
        conn.putheader("Authorization", "Bearer s3cret")
        conn.putheader("Content-Type", "application/hl7-v2")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        conn.send(b"5\r\nMSH|^\r\n0\r\n\r\n")
        chunked = conn.getresponse()
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/hl7v2", headers={"Authorization": "Bearer s3cret"})
        get = conn.getresponse()
        conn.close()
        unknown = post(running, "/other", b"x", "text/plain", Authorization="Bearer s3cret")
    assert (no_token[0], no_token[1]["WWW-Authenticate"], ack_code(no_token[2])) == (401, 'Bearer realm="ivpush"', "AR")
    assert (wrong[0], orjson.loads(wrong[2])["issue"][0]["code"]) == (401, "login")
    assert (right[0], ack_code(right[2])) == (200, "AA")
    assert (big[0], orjson.loads(big[2])["issue"][0]["code"]) == (413, "too-costly")
    assert chunked.status == 411
    assert (get.status, get.getheader("Allow")) == (405, "POST")
    assert unknown[0] == 404
    assert [m.body for m in broker.messages(QUEUE)] == [ras("T2")]


# --- TLS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    return folder


def test_both_listeners_speak_tls_when_given_a_certificate(broker: StubBroker, certificate: Path) -> None:
    tls = server_tls(certificate / "cert.pem", certificate / "key.pem")
    client = ssl.create_default_context(cafile=str(certificate / "cert.pem"))
    with Running(broker.connect, TOPOLOGY, tls=tls) as running:
        with client.wrap_socket(connect(running), server_hostname="127.0.0.1") as sock:
            mllp = exchange(sock, ras("S1"))
        conn = http.client.HTTPSConnection("127.0.0.1", running.ingress.addresses["http"].port, context=client)
        conn.request("POST", "/hl7v2", body=ras("S2"), headers={"Content-Type": "application/hl7-v2"})
        https = conn.getresponse().read()
        conn.close()
        with connect(running) as plain:  # no TLS: the handshake fails, no ACK, nothing stored
            plain.sendall(wrap(ras("PLAIN")))
            with contextlib.suppress(ConnectionError):
                assert not plain.recv(100).startswith(b"\x0bMSH")
    assert (ack_code(mllp), ack_code(https)) == ("AA", "AA")
    assert [m.body for m in broker.messages(QUEUE)] == [ras("S1"), ras("S2")]


# --- the command ------------------------------------------------------------------------------------


def test_listen_needs_an_address_and_an_unsharded_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVPUSH_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2F")
    nothing = CliRunner().invoke(cli, ["listen"])
    assert nothing.exit_code == 2
    assert "nothing to listen on" in nothing.output
    monkeypatch.setenv("IVPUSH_AMQP__SHARDS", "2")
    monkeypatch.setenv("IVPUSH_AMQP__SHARD", "0")
    sharded = CliRunner().invoke(cli, ["listen", "--mllp", ":0"])
    assert sharded.exit_code == 2
    assert "amqp.shards = 0" in sharded.output


def test_listen_refuses_a_bad_address_and_a_key_without_a_certificate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVPUSH_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2F")
    bad = CliRunner().invoke(cli, ["listen", "--mllp", "host:99999"])
    assert bad.exit_code == 2
    assert "listen.mllp" in bad.output and "port from 0 to 65535" in bad.output
    monkeypatch.setenv("IVPUSH_LISTEN__KEY_FILE", "/nonexistent/key.pem")
    keyless = CliRunner().invoke(cli, ["listen", "--http", ":0"])
    assert keyless.exit_code == 2
    assert "needs listen.cert_file" in keyless.output


def test_the_listen_section_reads_a_toml_table_and_the_token_from_a_secret_file(tmp_path: Path) -> None:
    config = tmp_path / "ivpush.toml"
    config.write_text('[listen]\nmllp = "0.0.0.0:2575"\nhttp = ":8080"\nmax_connections = 8\n')
    secret = tmp_path / "token"
    secret.write_text("t0ken\n")
    settings = load_settings(config, environ={"IVPUSH_LISTEN__TOKEN_FILE": str(secret)})
    listen = settings.listen
    assert (listen.mllp, listen.http, listen.max_connections) == ("0.0.0.0:2575", ":8080", 8)
    assert listen.token is not None and listen.token.get_secret_value() == "t0ken"
    assert "t0ken" not in str(settings.redacted())
    assert "IVPUSH_LISTEN__TOKEN_FILE" in settings.source_of("listen.token")


def test_listen_exits_2_when_its_address_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVPUSH_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2F")
    monkeypatch.setenv("IVPUSH_METRICS_PORT", "0")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["listen", "--http", f"127.0.0.1:{port}"])
    assert result.exit_code == 2
    assert "cannot listen" in result.output
