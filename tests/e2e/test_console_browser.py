"""The console in a real headless Chromium (Debian's chromium and chromedriver; nothing downloaded).

`ivpush serve` runs as a subprocess on a state built by `ivpush replay examples/feeds --state …`;
selenium drives the pages with the keyboard: search → encounter → the timeline has one mark or
bar per administration and a shaded window per reported one → a line's reason and an
administration's outcome read what `ivpush explain --state … --encounter …` prints. Labels and
keyboard focus are checked, the browser reports no Content-Security-Policy violation, and the
server's log holds neither the patient id searched for nor any query string. Screenshots of the
search and encounter pages go to $IVPUSH_TEST_ARTIFACTS (``tests/browser.py``); with
IVPUSH_UPDATE_SCREENSHOTS=1 the encounter page also replaces docs/console-encounter.png (the
README's picture).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import (
    BIN,
    KEYS,
    ROOT,
    By,
    artifacts_dir,
    chromium,
    console,
    csp_refusals,
    selenium,
    tab_until,
    update_docs,
    wait_for_url,
)

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
    with console(["--state", str(state), "--base-path", "/console"], log) as url:
        yield url, log


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return artifacts_dir(tmp_path_factory)


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


def test_search_by_the_keyboard_with_labelled_fields_leads_to_the_encounter(
    browser: Any, server: tuple[str, Path], artifacts: Path
) -> None:
    by, keys = selenium(By), selenium(KEYS)
    url, _ = server
    assert url.endswith("/console/")
    browser.get(url)
    assert browser.title.startswith("Search")
    fields = browser.find_elements(by.CSS_SELECTOR, "form.search input, form.search select")
    assert len(fields) == 8  # encounter, patient, account, from, to, code, flag, payer
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
    browser.save_screenshot(str(artifacts / "console-search.png"))
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
    browser: Any, server: tuple[str, Path], printed: tuple[str, list[tuple[str, str]], list[str]], artifacts: Path
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
    browser.set_window_size(1280, 1000)
    browser.save_screenshot(str(artifacts / "console-encounter.png"))
    page_height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, max(900, int(page_height) + 40))
    browser.save_screenshot(str(artifacts / "console-encounter-full.png"))
    if update_docs():
        shutil.copyfile(artifacts / "console-encounter.png", ROOT / "docs" / "console-encounter.png")

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
    assert not csp_refusals(browser)
    served = log.read_text(errors="replace")
    assert "/console/encounter/GENHOSP|ED20260302001" in served
    assert PATIENT not in served and "patient=" not in served and "q=" not in served
