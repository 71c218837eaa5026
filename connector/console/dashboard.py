"""``/dashboard``: the consumer's figures, from the same metrics its Prometheus endpoint exposes.

The console is another process than ``ivpush consume``: it scrapes the consumer's ``/metrics``
(``[console] metrics_url``) when the page is asked for (at most every few seconds), reads it
with prometheus_client's text parser and keeps the scrapes of the last minutes in memory. One
request scrapes at a time, outside the lock: the others meanwhile show the last result, and a
failed scrape is kept as long as a good one, so an endpoint that hangs holds one server thread
for at most ``TIMEOUT`` seconds, not all of them. Rates
per minute and "recent" counts are the increase between the newest scrape and the oldest one
kept (a counter that went down means the consumer restarted: its new value is the increase).
Nothing is invented: every figure is a metric listed in ``docs/operations.md``. An endpoint that
cannot be reached or read is said on the page, never a 500.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import Flask, render_template, request
from flask.typing import ResponseReturnValue

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]
TIMEOUT = 3.0
MAX_BYTES = 8 * 1024 * 1024
WINDOW = 600.0  # seconds of scrapes kept for rates and recent errors
FRESH = 5.0  # a scrape younger than this is reused
REFRESH = 15  # seconds between reloads when auto-refresh is on
INPUT_OUTCOMES = ("accepted", "duplicate", "parked")
ERROR_SERIES = (  # (metric, label): the counters the "recent errors" table reads
    ("ivpush_errors_total", "kind"),
    ("ivpush_encounters_failed_total", "code"),
    ("ivpush_outbox_publish_failures_total", "reason"),
    ("ivpush_reconnects_total", ""),
)


class ScrapeError(Exception):
    """The endpoint did not answer with metrics (the message names the error's class only)."""


@dataclass(frozen=True)
class Scrape:
    """One reading of the endpoint.

    Attributes:
        at: Wall-clock seconds when it was read.
        samples: (sample name, sorted labels) → value.
    """

    at: float
    samples: Samples

    def value(self, name: str, **labels: str) -> float | None:
        """One sample's value (None: not exposed)."""
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def by(self, name: str, label: str) -> dict[str, float]:
        """A metric's samples by the value of one label (``""``: the unlabelled sample)."""
        found = self.samples.items()
        return {dict(labels).get(label, ""): value for (sample, labels), value in found if sample == name}


@dataclass(frozen=True)
class Figures:
    """What the dashboard shows.

    Attributes:
        url: The endpoint scraped.
        problem: Why there are no figures (unreachable, not metrics), else empty.
        at: When the newest scrape was read (wall clock).
        span: Seconds between the oldest and newest scrape kept (0: one scrape, no rates yet).
        inputs: Input records per minute by outcome (accepted, duplicate, parked).
        charges: Charge messages queued per minute.
        rejects: (code, total, in the span) for every reject code seen.
        outbox_pending: Unconfirmed outbox rows.
        outbox_age: Seconds the oldest of them has waited.
        open_encounters: Encounters not closed.
        connected: The consumer's broker connection is consuming.
        errors: (what, total, in the span) for every error counter.
        last_error: Wall-clock time of the consumer's last logged error (None: none).
    """

    url: str
    problem: str = ""
    at: float = 0.0
    span: float = 0.0
    inputs: dict[str, float | None] = field(default_factory=dict)
    charges: float | None = None
    rejects: tuple[tuple[str, float, float | None], ...] = ()
    outbox_pending: float | None = None
    outbox_age: float | None = None
    open_encounters: float | None = None
    connected: bool | None = None
    errors: tuple[tuple[str, float, float | None], ...] = ()
    last_error: float | None = None


class Scraper:
    """Scrapes one endpoint on demand and keeps the last ``WINDOW`` seconds of scrapes (thread-safe).

    Args:
        url: The endpoint (empty: the dashboard says none is configured).
        clock: Wall-clock seconds.
        fetch: Reads the URL's text (default: an HTTP GET with a short timeout).
    """

    def __init__(self, url: str, clock: Callable[[], float] = time.time, fetch: Callable[[str], str] | None = None):
        self.url = url
        self.clock = clock
        self.fetch = fetch or _get
        self._lock = threading.Lock()
        self._kept: deque[Scrape] = deque()
        self._tried: float | None = None  # when the last scrape began (None: never)
        self._failure = ""  # why the last scrape failed (empty: it did not)
        self._busy = False  # a request is scraping

    def figures(self) -> Figures:
        """Scrape (unless the last attempt is fresh or another request is scraping) and compute the figures."""
        if not self.url:
            return Figures("", "No metrics endpoint is configured: set [console] metrics_url.")
        with self._lock:
            now = self.clock()
            if self._busy or (self._tried is not None and now - self._tried < FRESH):
                return self._figures(now)
            self._busy, self._tried = True, now
        scrape, failure = None, ""
        try:
            scrape = Scrape(now, parse(self.fetch(self.url)))
        except ScrapeError as error:
            failure = f"The consumer's metrics endpoint cannot be read just now ({error})."
        finally:
            with self._lock:
                self._busy, self._failure = False, failure
                if scrape is not None:
                    self._kept.append(scrape)
        with self._lock:
            return self._figures(now)

    def _figures(self, now: float) -> Figures:
        """The figures of the scrapes kept, or why there are none (the lock held)."""
        if self._failure:
            return Figures(self.url, self._failure)
        if not self._kept:
            return Figures(self.url, "The consumer's metrics endpoint is being read: reload in a few seconds.")
        while len(self._kept) > 1 and now - self._kept[0].at > WINDOW:
            self._kept.popleft()
        return compute(self.url, self._kept[0], self._kept[-1])


def parse(text: str) -> Samples:
    """The samples of a Prometheus text exposition.

    Raises:
        ScrapeError: It is not one.
    """
    from prometheus_client.parser import text_string_to_metric_families

    samples: Samples = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    except (ValueError, TypeError, IndexError) as error:
        raise ScrapeError(f"not Prometheus metrics: {type(error).__name__}") from None
    if not any(name.startswith("ivpush_") for name, _ in samples):
        raise ScrapeError("no ivpush metrics there")
    return samples


def compute(url: str, first: Scrape, last: Scrape) -> Figures:
    """The figures of the newest scrape, rates and recent counts against the oldest kept."""
    span = last.at - first.at

    def per_minute(increase: float) -> float | None:
        return increase * 60.0 / span if span > 0 else None

    def increase(name: str, label: str, key: str) -> float:
        now, before = last.by(name, label).get(key, 0.0), first.by(name, label).get(key, 0.0)
        return now - before if now >= before else now

    inputs = {outcome: per_minute(_delta(first, last, outcome)) for outcome in INPUT_OUTCOMES}
    rejects = tuple(
        (code, total, increase("ivpush_rejects_total", "code", code) if span > 0 else None)
        for code, total in sorted(last.by("ivpush_rejects_total", "code").items())
    )
    errors = tuple(
        (f"{name.removeprefix('ivpush_').removesuffix('_total')}{f' {key}' if key else ''}", total,
         increase(name, label, key) if span > 0 else None)
        for name, label in ERROR_SERIES
        for key, total in sorted(last.by(name, label).items())
    )  # fmt: skip
    connected, last_error = last.value("ivpush_broker_connected"), last.value("ivpush_last_error_timestamp_seconds")
    return Figures(
        url,
        at=last.at,
        span=span,
        inputs=inputs,
        charges=per_minute(increase("ivpush_charge_messages_total", "", "")),
        rejects=rejects,
        outbox_pending=last.value("ivpush_outbox_pending_messages"),
        outbox_age=last.value("ivpush_outbox_oldest_pending_age_seconds"),
        open_encounters=last.value("ivpush_encounters_open"),
        connected=None if connected is None else connected >= 1,
        errors=errors,
        last_error=last_error if last_error else None,
    )


def _delta(first: Scrape, last: Scrape, outcome: str) -> float:
    """Input records with this outcome between the two scrapes, all types together."""
    total = 0.0
    for (name, labels), value in last.samples.items():
        if name == "ivpush_inputs_total" and dict(labels).get("outcome") == outcome:
            before = first.samples.get((name, labels), 0.0)
            total += value - before if value >= before else value
    return total


def _get(url: str) -> str:
    """The endpoint's text (an HTTP GET, ``TIMEOUT`` seconds)."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:  # noqa: S310 - an http(s) URL from the settings
            return str(response.read(MAX_BYTES).decode("utf-8", "replace"))
    except (OSError, ValueError, http.client.HTTPException) as error:  # URLError and timeouts are OSErrors
        raise ScrapeError(type(error).__name__) from None


def register(app: Flask, scraper: Scraper) -> None:
    """Add ``/dashboard`` (``?refresh=1``: the page reloads itself every ``REFRESH`` seconds, no script)."""
    app.jinja_env.filters["utc"] = _utc

    @app.get("/dashboard")
    def dashboard() -> ResponseReturnValue:
        figures = scraper.figures()
        refresh = REFRESH if request.args.get("refresh") == "1" else 0
        status = 503 if figures.problem else 200
        return render_template("dashboard.html", f=figures, refresh=refresh, window=WINDOW), status


def _utc(seconds: float) -> str:
    """Wall-clock seconds as ``2026-03-02 10:04:05`` (UTC)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")
