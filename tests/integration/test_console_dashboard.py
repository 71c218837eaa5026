"""The console's dashboard (issue #17, item 5): figures from a consumer's real metrics registry, scraped as text.

The scraper reads what ``/metrics`` serves (``prometheus_client.generate_latest`` of a
``Metrics``), at times a test clock sets: rates per minute between scrapes, rejects by code,
outbox, open encounters and the error counters; an endpoint that cannot be read is said (and
kept as long as a good scrape), and one that hangs holds the one request scraping, not the others.
"""

import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from prometheus_client import generate_latest

from connector.console.app import create_app
from connector.console.dashboard import FRESH, ScrapeError, Scraper
from connector.console.reader import StateSource
from connector.observability.metrics import Metrics
from connector.observability.server import ObservabilityServer
from connector.policy.model import Policy
from connector.store.sqlite import SqliteStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def source(tmp_path: Path) -> Iterator[StateSource]:
    path = tmp_path / "state.db"
    SqliteStore(str(path)).close()
    opened = StateSource(str(path))
    yield opened
    opened.close()


def client_over(source: StateSource, policy: Policy, scraper: Scraper) -> FlaskClient:
    return create_app(source, policy, metrics=scraper).test_client()


def test_rates_and_recent_counts_come_from_successive_scrapes(source: StateSource, policy: Policy) -> None:
    metrics, clock = Metrics(wall=lambda: 1_800_000_030.0), Clock()
    scraper = Scraper(
        "http://consumer:9464/metrics", clock, fetch=lambda _url: generate_latest(metrics.registry).decode()
    )
    metrics.input_outcomes({("hl7v2", "accepted"): 5})
    first = scraper.figures()
    assert first.problem == "" and first.span == 0 and first.inputs["accepted"] is None
    metrics.input_outcomes({("hl7v2", "accepted"): 30, ("fhir", "accepted"): 30, ("hl7v2", "parked"): 2})
    metrics.rejected("missing_encounter_key")
    metrics.rejected("missing_encounter_key")
    metrics.charges_queued(4, {"charge:96374": 4})
    metrics.outbox(7, None)
    metrics.encounters(12)
    metrics.error("batch_failed")
    clock.now += FRESH / 2
    assert scraper.figures().span == 0  # a fresh scrape is reused
    clock.now += 120 - FRESH / 2
    figures = scraper.figures()
    assert figures.span == 120
    assert figures.inputs == {"accepted": 30.0, "duplicate": 0.0, "parked": 1.0}  # per minute
    assert figures.charges == 2.0
    assert figures.rejects == (("missing_encounter_key", 2.0, 2.0),)
    assert (figures.outbox_pending, figures.open_encounters, figures.connected) == (7.0, 12.0, False)
    assert ("errors batch_failed", 1.0, 1.0) in figures.errors and figures.last_error == 1_800_000_030.0

    page = client_over(source, policy, scraper).get("/dashboard?refresh=1")
    text = page.data.decode()
    assert page.status_code == 200 and '<meta http-equiv="refresh" content="15">' in text and "<script" not in text
    assert '<dd id="inputs-rate">30.0</dd>' in text and '<dd id="open-encounters">12</dd>' in text
    assert "missing_encounter_key" in text and "errors batch_failed" in text


def test_a_restarted_consumer_counts_from_zero_again() -> None:
    metrics, clock = Metrics(), Clock()
    scraper = Scraper("http://consumer/metrics", clock, fetch=lambda _url: generate_latest(metrics.registry).decode())
    metrics.input_outcomes({("fhir", "accepted"): 100})
    scraper.figures()
    metrics = Metrics()  # the consumer restarted: its counters begin again
    metrics.input_outcomes({("fhir", "accepted"): 6})
    clock.now += 60
    assert scraper.figures().inputs["accepted"] == 6.0


def test_the_consumers_real_endpoint_is_read_and_an_unreachable_one_is_said(
    source: StateSource, policy: Policy
) -> None:
    metrics = Metrics()
    metrics.encounters(3)
    server = ObservabilityServer(metrics, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{server.port}/metrics"
    try:
        figures = Scraper(url).figures()
    finally:
        server.stop()
    assert figures.problem == "" and figures.open_encounters == 3.0
    gone = client_over(source, policy, Scraper(url)).get("/dashboard")
    assert gone.status_code == 503 and b"metrics endpoint cannot be read just now (URLError)" in gone.data
    none = client_over(source, policy, Scraper("")).get("/dashboard")
    assert b"No metrics endpoint is configured" in none.data
    not_metrics = Scraper("http://x/", fetch=lambda _url: "<html>hello</html>").figures()
    assert not_metrics.problem.startswith("The consumer's metrics endpoint cannot be read just now (not Prometheus")


class Junk(socketserver.BaseRequestHandler):
    """Answers anything with bytes that are not HTTP."""

    def handle(self) -> None:
        self.request.recv(4096)
        self.request.sendall(b"SSH-2.0-not-http\r\n\r\n")


def test_an_endpoint_answering_other_than_http_is_said_not_a_500(source: StateSource, policy: Policy) -> None:
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Junk) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            page = client_over(source, policy, Scraper(f"http://127.0.0.1:{server.server_address[1]}/metrics")).get(
                "/dashboard"
            )
        finally:
            server.shutdown()
    assert page.status_code == 503 and b"metrics endpoint cannot be read just now (BadStatusLine)" in page.data


def test_a_failed_scrape_is_kept_as_long_as_a_good_one() -> None:
    clock, calls = Clock(), []

    def failing(url: str) -> str:
        calls.append(url)
        raise ScrapeError("URLError")

    scraper = Scraper("http://consumer/metrics", clock, fetch=failing)
    assert "(URLError)" in scraper.figures().problem
    clock.now += FRESH / 2
    assert "(URLError)" in scraper.figures().problem and len(calls) == 1
    clock.now += FRESH
    scraper.figures()
    assert len(calls) == 2


def test_while_one_request_waits_for_a_slow_endpoint_the_others_show_the_last_figures(
    source: StateSource, policy: Policy
) -> None:
    metrics, clock = Metrics(), Clock()
    metrics.encounters(4)
    entered, release, hits = threading.Event(), threading.Event(), []
    release.set()

    class Slow(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            hits.append(1)
            entered.set()
            release.wait(10)
            body = generate_latest(metrics.registry)
            self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Slow) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        app = create_app(source, policy, metrics=Scraper(f"http://127.0.0.1:{server.server_address[1]}/m", clock))
        try:
            assert app.test_client().get("/dashboard").status_code == 200
            entered.clear()
            release.clear()
            clock.now += FRESH
            slow: list[int] = []
            scraping = threading.Thread(target=lambda: slow.append(app.test_client().get("/dashboard").status_code))
            scraping.start()
            assert entered.wait(5)  # that request is scraping, and the endpoint holds it
            began = time.monotonic()
            pages = [app.test_client().get("/dashboard") for _ in range(5)]
            assert time.monotonic() - began < 1.0 and len(hits) == 2  # none of them waited, none scraped
            assert all(page.status_code == 200 and b'<dd id="open-encounters">4</dd>' in page.data for page in pages)
            release.set()
            scraping.join(10)
            assert slow == [200]
        finally:
            release.set()
            server.shutdown()
