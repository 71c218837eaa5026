"""Issue #17, done when: a parked input is requeued in the console, in a real browser, and then appears as a charge.

A real RabbitMQ, a real consumer (``ThreadedConsumer``, with its metrics endpoint) and `ivpush
serve` in a subprocess on the consumer's state, driven by Debian's headless chromium. The
scenario is the transient reason the identity chain parks for: an HL7 RAS without a visit
number (PV1-19, PID-18 and PV1-50 empty) arrives before its patient's ADT registration, so no
order link or visit window names its encounter and it is parked ``missing_encounter_key``. The
A04 that registers the visit arrives; the analyst signs in (by the keyboard), opens the parked
input, requeues it, and once the A03 discharge closes the visit, the charge is on the JSON
output queue and on the encounter page. Screenshots of the encounter page and the dashboard go
to the artifacts directory (``tests/browser.py``); with IVPUSH_UPDATE_SCREENSHOTS=1 the
dashboard's also replaces docs/console-dashboard.png.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from broker import LocalBroker, ThreadedConsumer, declare, delete_topology, depth, drain, fresh_topology, publish_inputs
from browser import (
    KEYS,
    ROOT,
    By,
    artifacts_dir,
    chromium,
    console,
    csp_refusals,
    focus_is_visible,
    labelled,
    selenium,
    tab_until,
    update_docs,
    wait_for_url,
)

from connector.bus.consumer import ConsumerSettings
from connector.console.dashboard import FRESH
from connector.observability.server import ObservabilityServer
from connector.policy.model import Policy

pytestmark = pytest.mark.e2e
PATIENT, VISIT = "MRN00777", "V00777"
KEY = f"GENHOSP|{VISIT}"
USER, PASSWORD = "analyst", "parked-and-back-42"
MSH = "MSH|^~\\&|{app}|GENHOSP|BILLING|GENHOSP|{stamp}||{kind}|{control}|P|2.5.1"
PID = f"PID|1||{PATIENT}^^^GENHOSP^MR||DEMO^PARKED||19700101|F"


def pv1(visit: str = "", admitted: str = "", discharged: str = "") -> str:
    fields = ["PV1", "1", "E", "ED^BAY4^1^GENHOSP", *[""] * 42]
    fields[19], fields[44], fields[45] = visit and f"{visit}^^^GENHOSP^VN", admitted, discharged
    return "|".join(fields).rstrip("|")


RAS = "\r".join((
    MSH.format(app="PYXIS", stamp="20260302081000", kind="RAS^O17^RAS_O17", control="PK-RAS-1"), PID, pv1(),
    "ORC|RE|ORD77701|ORD77701F", "RXA|0|1|20260302081000||26225^Ondansetron 4 mg/2 mL injection^RXNORM|4|mg"
    "|||||||||||||CP|A", "RXR|IV^Intravenous^HL70162||IVP^IV Push^HL70165",
)).encode()  # fmt: skip
A04 = "\r".join((
    MSH.format(app="ADT", stamp="20260302080000", kind="ADT^A04^ADT_A01", control="PK-A04"), "EVN|A04|20260302080000",
    PID, pv1(VISIT, admitted="20260302080000"),
)).encode()  # fmt: skip
A03 = "\r".join((
    MSH.format(app="ADT", stamp="20260302120000", kind="ADT^A03^ADT_A03", control="PK-A03"), "EVN|A03|20260302120000",
    PID, pv1(VISIT, admitted="20260302080000", discharged="20260302120000"),
)).encode()  # fmt: skip


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


def sign_in_by_the_keyboard(browser: Any) -> None:
    """From a page's "Sign in" link: Tab to it, Enter, the labelled fields, Enter; back where it started."""
    by, keys = selenium(By), selenium(KEYS)
    before = browser.current_url
    tab_until(browser, "header .mode a")
    browser.switch_to.active_element.send_keys(keys.ENTER)
    wait_for_url(browser, "/sign-in")
    assert labelled(browser, "form.signin input") == []
    tab_until(browser, "#user")
    assert focus_is_visible(browser)
    browser.switch_to.active_element.send_keys(USER, keys.TAB, PASSWORD, keys.ENTER)
    wait_for_url(browser, before.split("?")[0])
    assert f"Signed in as {USER}" in browser.find_element(by.CSS_SELECTOR, "header.top").text


def requeue_in_the_browser(browser: Any, url: str) -> None:
    """Anonymous list (no id, no payload), sign in by the keyboard, open the input, requeue it."""
    by, keys = selenium(By), selenium(KEYS)
    browser.get(f"{url}parked")
    assert labelled(browser, "form.search input") == []
    table = browser.find_element(by.CSS_SELECTOR, "table.parked").text
    assert "missing_encounter_key" in table and PATIENT not in table and "PK-RAS-1" not in table
    sign_in_by_the_keyboard(browser)
    assert "PK-RAS-1" in browser.find_element(by.CSS_SELECTOR, "table.parked").text  # its id, signed in
    tab_until(browser, "a.parked-link")
    assert focus_is_visible(browser)
    browser.switch_to.active_element.send_keys(keys.ENTER)
    wait_for_url(browser, "/parked/")
    assert "x-ivpush-error missing_encounter_key" in browser.find_element(by.CSS_SELECTOR, "table.headers").text
    tab_until(browser, "form.act button")
    assert focus_is_visible(browser)
    browser.switch_to.active_element.send_keys(keys.ENTER)
    wait_for_url(browser, "/parked")
    notice = browser.find_element(by.CSS_SELECTOR, ".notice").text
    assert notice == "Requeued 1 of 1 parked input to the input exchange."


def pictures(browser: Any, url: str, artifacts: Path, first_scrape: float) -> None:
    """The encounter page with its charge, and the dashboard with the reject and rates: checked, then shot."""
    by = selenium(By)
    browser.get(f"{url}encounter/GENHOSP%7C{VISIT}")
    assert KEY in browser.find_element(by.TAG_NAME, "h1").text
    assert "96374" in browser.find_element(by.CSS_SELECTOR, "table.lines").text
    browser.set_window_size(1280, 1000)
    browser.save_screenshot(str(artifacts / "console-redrive-encounter.png"))
    time.sleep(max(0.0, first_scrape + FRESH + 0.5 - time.monotonic()))  # the scrape before is not reused
    browser.get(f"{url}dashboard")
    assert "missing_encounter_key 1" in browser.find_element(by.CSS_SELECTOR, "table.rejects").text
    assert browser.find_element(by.ID, "open-encounters").text == "0"
    assert browser.find_element(by.ID, "inputs-rate").text != "–"  # two scrapes: a rate
    browser.save_screenshot(str(artifacts / "console-dashboard.png"))
    if update_docs():
        shutil.copyfile(artifacts / "console-dashboard.png", ROOT / "docs" / "console-dashboard.png")
    assert not csp_refusals(browser)


def test_a_parked_input_requeued_in_the_browser_is_then_charged(
    rabbit: LocalBroker, policy: Policy, browser: Any, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    topology = fresh_topology("console-redrive")
    declare(rabbit, topology)
    state = tmp_path / "state.db"
    settings = ConsumerSettings(queue=topology.input_queue(), prefetch=10, batch_size=10)
    run = ThreadedConsumer(rabbit, policy, topology, state, settings)
    stats = run.consumer.stats
    endpoint = ObservabilityServer(run.consumer.metrics, "127.0.0.1", 0).start()
    env = rabbit.env(
        IVPUSH_AMQP__PREFIX=topology.prefix,
        IVPUSH_CONSOLE__USER=USER,
        IVPUSH_CONSOLE__PASSWORD=PASSWORD,
        IVPUSH_CONSOLE__METRICS_URL=f"http://127.0.0.1:{endpoint.port}/metrics",
    )
    log = tmp_path / "serve.log"
    try:
        publish_inputs(rabbit, topology, [RAS])  # before the ADT: nothing names its encounter yet
        run.until(lambda: depth(rabbit, topology.parking_queue) == 1, "the RAS parked")
        publish_inputs(rabbit, topology, [A04])
        run.until(lambda: stats.deliveries == 2, "the A04 applied")
        assert depth(rabbit, topology.parking_queue) == 1
        with console(["--state", str(state)], log, env) as url:
            browser.get(f"{url}dashboard")  # a first scrape: the later visit has rates
            first_scrape = time.monotonic()
            requeue_in_the_browser(browser, url)
            run.until(lambda: stats.deliveries == 3, "the requeued RAS applied")
            assert depth(rabbit, topology.parking_queue) == 0 and stats.parked == 1
            publish_inputs(rabbit, topology, [A03])
            run.until(lambda: depth(rabbit, topology.output_queue("json")) >= 1, "the visit charged")
            (charge,) = drain(rabbit, topology.output_queue("json"))
            body = json.loads(charge.body)
            assert body["encounter"]["id"] == VISIT
            assert [(line["code"], line["action"]) for line in body["lines"]] == [("96374", "charge")]
            pictures(browser, url, artifacts_dir(tmp_path_factory), first_scrape)
    finally:
        endpoint.stop()
        run.finish()
    served = log.read_text(errors="replace")
    assert PATIENT not in served and "PK-RAS-1" not in served and "ORD77701" not in served
    assert '"event": "parked_requeue", "by": "user", "matched": 1, "done": 1' in served
    delete_topology(rabbit, topology)
