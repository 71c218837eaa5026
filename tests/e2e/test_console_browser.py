"""The console in a real headless Chromium (Debian's chromium and chromedriver; nothing downloaded).

`ivpush serve` runs as a subprocess on a state built by `ivpush replay examples/feeds --state …`;
selenium drives the pages with the keyboard: search → encounter → the timeline has one mark or
bar per administration and a shaded window per reported one → a line's reason and an
administration's outcome read what `ivpush explain --state … --encounter …` prints. Labels and
keyboard focus are checked, the browser reports no Content-Security-Policy violation, and the
server's log holds neither the patient id searched for nor any query string. Screenshots of the
search and encounter pages go to tests/artifacts/ (gitignored); with IVPUSH_UPDATE_SCREENSHOTS=1
the encounter page also replaces docs/console-encounter.png (the README's picture).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ci import import_or_skip, skip_unless_ci

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
VISIT = "ED20260302001"
KEY = f"GENHOSP|{VISIT}"
PATIENT = "MRN900001"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("console-e2e")
    path = folder / "state.db"
    subprocess.run(
        [str(BIN / "ivpush"), "replay", "examples/feeds", "--state", str(path), "--out", str(folder / "out.ndjson")],
        check=True, capture_output=True, timeout=120, cwd=ROOT,  # sources named as explain names them
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def server(state: Path) -> Iterator[tuple[str, Path]]:
    """`ivpush serve` on a free port; yields its URL and its log file."""
    log = state.parent / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(BIN / "ivpush"), "serve", "--state", str(state), "--port", "0", "--base-path", "/console"],
            stdout=subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline and process.poll() is None:
            found = re.search(r"ivpush console on (http://\S+)", log.read_text(errors="replace"))
            url = found.group(1) if found else None
            time.sleep(0.1)
        assert url is not None, log.read_text(errors="replace")[-2000:]
        yield url, log
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    webdriver = import_or_skip("selenium.webdriver")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        skip_unless_ci("no Debian chromium/chromium-driver (apt-get install chromium chromium-driver)")
    os.environ["SE_OFFLINE"] = "true"  # selenium never fetches a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1900", "--force-device-scale-factor=1", "--lang=en-US"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def selenium(name: str) -> Any:
    """A selenium name (``By``, ``Keys``) from its module."""
    module, _, attribute = name.rpartition(".")
    return getattr(import_or_skip(module), attribute)


@pytest.fixture(scope="module")
def printed(state: Path) -> tuple[str, list[tuple[str, str]], list[str]]:
    """What `ivpush explain` prints for the ED encounter: its text, (time, id) and outcome of each administration."""
    text = explain(state)
    admins = re.findall(r"^    (\d{4}-\d\d-\d\d \d\d:\d\d\S*)  (adm-\w+)", text, re.MULTILINE)
    outcomes = re.findall(r"^ {8}((?:coded → |no line \(|needs review \().*)$", text, re.MULTILINE)
    assert len(admins) == len(outcomes) == 7
    return text, admins, outcomes


def explain(state: Path) -> str:
    result = subprocess.run(
        [str(BIN / "ivpush"), "explain", "--state", str(state), "--encounter", VISIT],
        check=True, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    return result.stdout


def tab_until(driver: Any, wanted: str, limit: int = 40) -> list[str]:
    """Press Tab until the focused element matches the CSS selector ``wanted``; the focus path."""
    keys = selenium("selenium.webdriver.common.keys.Keys")
    chain = selenium("selenium.webdriver.common.action_chains.ActionChains")
    path = []
    for _ in range(limit):
        chain(driver).send_keys(keys.TAB).perform()
        active = driver.switch_to.active_element
        path.append(active.get_attribute("id") or active.get_attribute("class") or active.tag_name)
        if driver.execute_script("return document.activeElement.matches(arguments[0])", wanted):
            return path
    raise AssertionError(f"Tab never reached {wanted}: {path}")


By = "selenium.webdriver.common.by.By"
KEYS = "selenium.webdriver.common.keys.Keys"


def wait_for_url(browser: Any, part: str) -> None:
    """Wait until the page navigated to a URL containing ``part`` (after Enter on a form or a link)."""
    wait = selenium("selenium.webdriver.support.wait.WebDriverWait")
    wait(browser, 15).until(lambda driver: part in driver.current_url and driver.execute_script(
        "return document.readyState") == "complete")  # fmt: skip


def test_search_by_the_keyboard_with_labelled_fields_leads_to_the_encounter(
    browser: Any, server: tuple[str, Path]
) -> None:
    by, keys = selenium(By), selenium(KEYS)
    url, _ = server
    assert url.endswith("/console/")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.get(url)
    assert browser.title.startswith("Search")
    fields = browser.find_elements(by.CSS_SELECTOR, "form.search input, form.search select")
    assert len(fields) == 7
    for field in fields:  # every field has one label that names it
        labels = browser.find_elements(by.CSS_SELECTOR, f"label[for='{field.get_attribute('id')}']")
        assert len(labels) == 1 and labels[0].text.strip(), field.get_attribute("id")

    tab_until(browser, "#q")
    tab_until(browser, "#patient", limit=2)
    browser.switch_to.active_element.send_keys(PATIENT, keys.ENTER)
    wait_for_url(browser, "patient=")
    assert [e.text for e in browser.find_elements(by.CSS_SELECTOR, "a.encounter-link")] == [VISIT]

    browser.get(url)
    focus = tab_until(browser, "#q")
    assert focus[0] == "skip"  # the skip link comes first
    browser.switch_to.active_element.send_keys(VISIT, keys.ENTER)
    wait_for_url(browser, "q=ED20260302001")
    browser.save_screenshot(str(ARTIFACTS / "console-search.png"))
    tab_until(browser, "a.encounter-link")
    browser.switch_to.active_element.send_keys(keys.ENTER)
    wait_for_url(browser, "/console/encounter/GENHOSP%7CED20260302001")
    assert KEY in browser.find_element(by.TAG_NAME, "h1").text


def open_encounter(browser: Any, server: tuple[str, Path]) -> None:
    browser.get(f"{server[0]}encounter/GENHOSP%7C{VISIT}")


def test_the_timeline_has_a_mark_per_administration_and_a_shaded_window_per_reported_one(
    browser: Any, server: tuple[str, Path], printed: tuple[str, list[tuple[str, str]], list[str]]
) -> None:
    by = selenium(By)
    _, admins, outcomes = printed
    open_encounter(browser, server)
    marks = browser.find_elements(by.CSS_SELECTOR, "svg#timeline a.adm")
    assert [m.get_attribute("data-admin") for m in marks] == [admin_id for _, admin_id in admins]
    for mark, (at, _), outcome in zip(marks, admins, outcomes, strict=True):  # its outcome on hover and focus
        title = mark.find_element(by.TAG_NAME, "title").get_attribute("textContent")
        verdict, detail = outcome.split(": ", 1)
        assert title.startswith(at) and title.endswith(f"{verdict}: {detail}"), title
        assert mark.get_attribute("aria-label") == title
        assert mark.rect["width"] > 0 and mark.rect["height"] > 0
    assert len(browser.find_elements(by.CSS_SELECTOR, "svg#timeline a.adm rect.bar")) == 1  # the hydration
    assert len(browser.find_elements(by.CSS_SELECTOR, "svg#timeline a.adm circle.mark")) == 6

    windows = browser.find_elements(by.CSS_SELECTOR, "svg#timeline rect.window")
    reported = [admin_id for (_, admin_id), o in zip(admins, outcomes, strict=True) if o.startswith("coded")]
    assert [w.get_attribute("data-admin") for w in windows] == reported
    for window in windows:  # drawn, and see-through
        opacity, fill = browser.execute_script(
            "const s = getComputedStyle(arguments[0]); return [s.fillOpacity, s.fill]", window
        )
        assert 0 < float(opacity) < 1 and fill != "none"
    # The repeat ondansetron 25 minutes after the first falls inside the first one's window: no line.
    first, repeat = (browser.find_element(by.CSS_SELECTOR, f"svg#timeline a.adm[data-admin='{admins[i][1]}']")
                     for i in (1, 3))  # fmt: skip
    window = next(w for w in windows if w.get_attribute("data-admin") == admins[1][1])
    centre = repeat.rect["x"] + repeat.rect["width"] / 2
    assert window.rect["x"] < centre < window.rect["x"] + window.rect["width"]
    assert "outcome-no_line" in repeat.get_attribute("class") and "outcome-coded" in first.get_attribute("class")


def test_the_tables_say_what_explain_prints_and_a_mark_leads_to_its_row(
    browser: Any, server: tuple[str, Path], printed: tuple[str, list[tuple[str, str]], list[str]]
) -> None:
    by, keys = selenium(By), selenium(KEYS)
    text, _, outcomes = printed
    open_encounter(browser, server)
    rows = browser.find_elements(by.CSS_SELECTOR, "table.administrations tbody tr")
    for row, outcome in zip(rows, outcomes, strict=True):
        verdict, detail = outcome.split(": ", 1)
        assert row.find_element(by.CSS_SELECTOR, ".verdict").text == verdict
        assert row.find_element(by.CSS_SELECTOR, ".reason").text.startswith(detail)
    reason = re.search(r"^ {4}\S+  96376 x1 .*\n {8}(.*)$", text, re.MULTILINE)
    assert reason is not None
    line = browser.find_element(by.XPATH, "//table[@class='lines']//tr[th[@class='code' and text()='96376']]")
    assert line.find_element(by.CSS_SELECTOR, "td.reason").text == reason.group(1)

    # Screenshots: the top of the page (the README's picture) and the whole page.
    ARTIFACTS.mkdir(exist_ok=True)
    browser.set_window_size(1280, 1000)
    browser.save_screenshot(str(ARTIFACTS / "console-encounter.png"))
    page_height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, max(900, int(page_height) + 40))
    browser.save_screenshot(str(ARTIFACTS / "console-encounter-full.png"))
    if os.environ.get("IVPUSH_UPDATE_SCREENSHOTS"):
        shutil.copyfile(ARTIFACTS / "console-encounter.png", ROOT / "docs" / "console-encounter.png")

    tab_until(browser, "svg#timeline a.adm")  # the first mark takes the keyboard focus
    browser.switch_to.active_element.send_keys(keys.ENTER)
    assert browser.current_url.endswith("#adm-1")
    assert browser.execute_script("return document.querySelector(':target').id") == "adm-1"


def test_nothing_is_refused_by_the_csp_and_the_log_holds_no_query_string(
    browser: Any, server: tuple[str, Path]
) -> None:
    url, log = server
    browser.get(f"{url}?patient={PATIENT}")
    open_encounter(browser, server)
    messages = [entry["message"] for entry in browser.get_log("browser")]
    assert not [m for m in messages if "Content Security Policy" in m or "Refused" in m], messages
    served = log.read_text(errors="replace")
    assert "/console/encounter/GENHOSP|ED20260302001" in served
    assert PATIENT not in served and "patient=" not in served and "q=" not in served
