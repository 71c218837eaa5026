"""Browser test helpers: Debian's headless chromium through selenium, `ivpush serve` in a subprocess, the keyboard.

Nothing is downloaded: selenium runs offline against /usr/bin/chromium and /usr/bin/chromedriver
(`.ci/run` installs both); without them the browser tests skip locally and fail under CI.
Screenshots go to ``$IVPUSH_TEST_ARTIFACTS`` (default: ``artifacts`` under pytest's base
temporary directory); with ``IVPUSH_UPDATE_SCREENSHOTS=1`` the tests also refresh the pictures
in docs/.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from ci import import_or_skip, skip_unless_ci

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
By = "selenium.webdriver.common.by.By"
KEYS = "selenium.webdriver.common.keys.Keys"


def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``$IVPUSH_TEST_ARTIFACTS``, else ``artifacts`` under pytest's base temporary directory."""
    folder = Path(os.environ.get("IVPUSH_TEST_ARTIFACTS") or tmp_path_factory.getbasetemp() / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def update_docs() -> bool:
    """Whether the tests should refresh the screenshots in docs/ (``IVPUSH_UPDATE_SCREENSHOTS=1``)."""
    return bool(os.environ.get("IVPUSH_UPDATE_SCREENSHOTS"))


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian chromium driven by selenium (skips locally, fails under CI, without one)."""
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


@contextmanager
def console(args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """`ivpush serve ARGS --port 0` in a subprocess, its standard error in ``log``; yields its URL."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(BIN / "ivpush"), "serve", *args, "--port", "0"], stdout=subprocess.DEVNULL, stderr=sink, env=env
        )
    try:
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline and process.poll() is None:
            found = re.search(r"ivpush console on (http://\S+)", log.read_text(errors="replace"))
            url = found.group(1) if found else None
            time.sleep(0.1)
        assert url is not None, log.read_text(errors="replace")[-2000:]
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def selenium(name: str) -> Any:
    """A selenium name (``By``, ``Keys``) from its module."""
    module, _, attribute = name.rpartition(".")
    return getattr(import_or_skip(module), attribute)


def tab_until(driver: Any, wanted: str, limit: int = 40) -> list[str]:
    """Press Tab until the focused element matches the CSS selector ``wanted``; the focus path."""
    keys = selenium(KEYS)
    chain = selenium("selenium.webdriver.common.action_chains.ActionChains")
    path = []
    for _ in range(limit):
        chain(driver).send_keys(keys.TAB).perform()
        active = driver.switch_to.active_element
        path.append(active.get_attribute("id") or active.get_attribute("class") or active.tag_name)
        if driver.execute_script("return document.activeElement.matches(arguments[0])", wanted):
            return path
    raise AssertionError(f"Tab never reached {wanted}: {path}")


def focus_is_visible(driver: Any) -> bool:
    """The focused element draws a focus ring (an outline of some width)."""
    style = driver.execute_script(
        "const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]"
    )
    return style[0] != "none" and style[1] not in ("0px", "")


def labelled(driver: Any, fields: str) -> list[str]:
    """The ids of the visible inputs matching ``fields`` that lack exactly one non-empty label."""
    by = selenium(By)
    bad = []
    for field in driver.find_elements(by.CSS_SELECTOR, fields):
        if field.get_attribute("type") == "hidden":
            continue
        labels = driver.find_elements(by.CSS_SELECTOR, f"label[for='{field.get_attribute('id')}']")
        if not (len(labels) == 1 and labels[0].text.strip()):
            bad.append(field.get_attribute("id") or field.get_attribute("name"))
    return bad


def wait_for_url(browser: Any, part: str) -> None:
    """Wait until the page navigated to a URL containing ``part`` (after Enter on a form or a link)."""
    wait = selenium("selenium.webdriver.support.wait.WebDriverWait")
    wait(browser, 15).until(lambda driver: part in driver.current_url and driver.execute_script(
        "return document.readyState") == "complete")  # fmt: skip


def csp_refusals(browser: Any) -> list[str]:
    """The browser's console messages about a Content-Security-Policy refusal."""
    messages = [entry["message"] for entry in browser.get_log("browser")]
    return [m for m in messages if "Content Security Policy" in m or "Refused" in m]
