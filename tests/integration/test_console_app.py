"""The console's pages over a state replayed from the demo feeds: search, encounter, headers, logs, read-only."""

import html
import logging
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from postgres import LocalPostgres

from connector.cli.main import cli
from connector.cli.serve import serve
from connector.console.app import HEADERS, create_app
from connector.console.reader import StateError, StateReader, StateSource
from connector.console.search import Query, search
from connector.policy.model import Policy

ROOT = Path(__file__).resolve().parents[2]
ED = "GENHOSP|ED20260302001"
INF = "GENHOSP|INF20260302007"
OBS = "fhir|OBS20260302042"


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("console") / "state.db"
    out = path.parent / "out.ndjson"
    feeds = str(ROOT / "examples" / "feeds")
    result = CliRunner().invoke(cli, ["replay", feeds, "--state", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def app(state: Path, policy: Policy) -> Iterator[Flask]:
    source = StateSource(str(state))
    yield create_app(source, policy)
    source.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def text(page: bytes) -> str:
    """The page's text, tags dropped and entities decoded (what a reader sees, roughly)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page.decode()))


def found(client: FlaskClient, **fields: str) -> list[str]:
    """The keys of the encounters a search lists."""
    response = client.get("/", query_string=fields)
    assert response.status_code == 200, response.data[-500:]
    return re.findall(r'<span class="key">([^<]+)</span>', response.data.decode())


def test_every_response_carries_the_security_headers(client: FlaskClient) -> None:
    for path, status in [("/", 200), (f"/encounter/{ED}", 200), ("/static/console.css", 200), ("/nowhere", 404),
                         ("/?from=yesterday", 400), ("/encounter/GENHOSP|NOPE", 404)]:  # fmt: skip
        response = client.get(path)
        assert response.status_code == status, path
        for name, value in HEADERS.items():
            assert response.headers[name] == value, (path, name)
    csp = HEADERS["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert client.post("/").status_code == 405
    assert client.delete(f"/encounter/{ED}").status_code == 405


def test_pages_load_nothing_from_other_sites_and_hold_no_inline_script_or_style(client: FlaskClient) -> None:
    for path in ("/", f"/encounter/{ED}"):
        page = client.get(path).data.decode()
        assert "<script" not in page and "<style" not in page and " style=" not in page
        assert not re.search(r'(src|href)="(https?:)?//', page), path  # xmlns is not a load


def test_search_by_encounter_patient_dates_code_flag_and_payer(client: FlaskClient) -> None:
    every = found(client)
    assert every == [ED, INF, OBS]  # the store's key order
    assert found(client, q="ed20260302001") == [ED]
    assert found(client, q=ED.lower()) == [ED]
    assert found(client, q="ED2026") == []  # the visit number or the key, not a part of it
    assert found(client, patient="MRN900001") == [ED]
    assert found(client, patient="mrn900001") == []  # patient ids exactly as sent
    # OBS starts at 22:40-05:00 on 03-02: with no zone set, the sent offset decides its date
    assert found(client, **{"from": "2026-03-02", "to": "2026-03-02"}) == [ED, INF, OBS]
    assert found(client, **{"from": "2026-03-03"}) == [OBS]
    assert found(client, **{"to": "2026-03-03", "from": "2026-03-03"}) == [OBS]
    assert found(client, **{"from": "2026-03-04"}) == found(client, **{"to": "2026-03-01"}) == []
    assert found(client, code="96376") == [ED, OBS]
    assert found(client, code="96365") == [INF, OBS]
    assert found(client, flag="needs_review") == [INF]  # an unmapped route
    assert found(client, payer="BCBS") == [ED]  # the payer policy
    assert found(client, payer="medicare part") == found(client, payer="Medicare") == [INF]  # a coverage identifier
    assert found(client, flag="write_off") == found(client, flag="mue_capped") == []
    assert found(client, code="96376", patient="MRN900003") == []  # every criterion must hold


def test_a_field_that_cannot_be_read_is_named_without_its_value(client: FlaskClient) -> None:
    for fields, field in [({"from": "MRN900001"}, "from"), ({"flag": "bogus"}, "flag"), ({"q": "x" * 201}, "q"),
                          ({"from": "2026-03-03", "to": "2026-03-02"}, "from")]:  # fmt: skip
        response = client.get("/", query_string=fields)
        assert response.status_code == 400
        alert = re.search(r'role="alert">([^<]*)<', response.data.decode())
        assert alert is not None and f"Cannot search: {field}:" in alert.group(1)
        assert "MRN900001" not in alert.group(1) and "bogus" not in alert.group(1)


def test_results_are_paged_in_key_order_and_a_long_scan_stops_with_a_link_to_go_on(
    app: Flask, state: Path, policy: Policy
) -> None:
    paged = create_app(StateSource(str(state)), policy, page_size=1).test_client()
    keys: list[str] = []
    path = "/"
    while path:
        page = paged.get(path).data.decode()
        keys += re.findall(r'<span class="key">([^<]+)</span>', page)
        link = re.search(r'<a rel="next" href="([^"]+)"', page)
        path = html.unescape(link.group(1)) if link else ""
        assert len(keys) <= 3
    assert keys == found(app.test_client())
    source = StateSource(str(state))
    first = search(source, Query(), page_size=10, max_scan=2)
    assert (len(first.rows), first.scanned, first.stopped, first.next_after) == (2, 2, True, keys[1])
    rest = search(source, Query(after=first.next_after), page_size=10, max_scan=2)
    assert ([r.key for r in rest.rows], rest.stopped, rest.next_after) == ([keys[2]], False, "")
    source.close()


def explain(state: Path, key: str) -> str:
    result = CliRunner().invoke(cli, ["explain", "--state", str(state), "--encounter", key])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("key", [ED, INF, OBS])
def test_the_encounter_page_says_what_explain_says(client: FlaskClient, state: Path, key: str) -> None:
    response = client.get(f"/encounter/{key}")
    assert response.status_code == 200
    page = " ".join(text(response.data).split())
    printed = explain(state, key)
    outcome_lines = re.findall(r"^ {8}((?:coded → |no line \(|needs review \().*)$", printed, re.MULTILINE)
    sources = re.findall(r"^ {8}source: (.*)$", printed, re.MULTILINE)
    mappings = re.findall(r"^ {8}mappings: (.*)$", printed, re.MULTILINE)
    reasons = re.findall(r"^ {8}(\S.*)$", printed.split("  Lines:")[1].split("  Messages emitted")[0], re.MULTILINE)
    ids = re.findall(r"^ {4}#\d+ +\S+ +\S+ +(msg-\w+)", printed, re.MULTILINE)
    assert outcome_lines and sources and ids
    for line in outcome_lines:
        verdict, detail = line.split(": ", 1)
        assert f"{verdict} {detail}" in page, line
    entries = [entry for line in mappings for entry in line.split(", ")]
    for item in [*sources, *entries, *reasons, *ids]:
        assert item in page, item
    body = response.data.decode()
    admins = len(re.findall(r"^    \d{4}-\d\d-\d\d \d\d:\d\d", printed, re.MULTILINE))
    assert body.count('<a class="adm ') == admins
    behind_a_line = [o for o in outcome_lines if "→" in o.split(":")[0]]
    assert body.count('<rect class="window"') == len(behind_a_line)


def test_the_console_never_writes_the_state(client: FlaskClient, state: Path) -> None:
    def dump() -> list[str]:
        with contextmanager(lambda: (yield sqlite3.connect(state)))() as conn:
            return list(conn.iterdump())

    before = dump()
    for path in ("/", "/?code=96376", f"/encounter/{ED}", "/encounter/nope", "/?after=zzz"):
        client.get(path)
    assert dump() == before


def test_the_access_log_has_paths_without_query_strings(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="ivpush.console.access"):
        client.get("/", query_string={"patient": "MRN900001", "payer": "BLUE CROSS"})
        client.get("/patients/MRN900001")
        client.get(f"/encounter/{ED}", query_string={"patient": "MRN900001"})
        client.get("/encounter/MRN900001")
        client.post("/", data={"patient": "MRN900001"})
    lines = [r.getMessage() for r in caplog.records if r.name == "ivpush.console.access"]
    assert lines[0].startswith("GET / 200 ") and lines[1].startswith("GET (no route) 404 ")
    assert lines[2].startswith(f"GET /encounter/{ED} 200 ")
    assert lines[3].startswith("GET /encounter/<path:key> 404 ")  # refused or not found: the route, not the path
    assert lines[4].startswith("POST (no route) 405 ")
    logged = " ".join(lines + [repr(r.__dict__) for r in caplog.records])
    assert "MRN900001" not in logged and "BLUE" not in logged and "patient" not in logged


def test_under_a_base_path_every_link_carries_it(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/", base_url="http://localhost/console/").data.decode()
    links = re.findall(r'(?:href|action)="(/[^"]*)"', page)
    assert links and all(link.startswith("/console/") for link in links), links


class Broken:
    """A state that fails on every read."""

    @contextmanager
    def read(self) -> Iterator[StateReader]:
        raise StateError("cannot read the state x.db: OperationalError")
        yield  # pragma: no cover


def test_a_state_that_cannot_be_read_is_a_503_without_details(policy: Policy) -> None:
    response = create_app(Broken(), policy).test_client().get("/", query_string={"patient": "MRN900001"})
    assert response.status_code == 503
    assert b"OperationalError" not in response.data and b"MRN900001" not in response.data


def test_serve_refuses_a_missing_state_and_a_bad_base_path(tmp_path: Path) -> None:
    missing = CliRunner().invoke(cli, ["serve", "--state", str(tmp_path / "none.db")])
    assert missing.exit_code == 2 and "no such state file" in missing.output
    assert not (tmp_path / "none.db").exists()
    bad = CliRunner().invoke(cli, ["serve", "--state", str(tmp_path / "none.db"), "--base-path", "console"])
    assert bad.exit_code == 2 and "--base-path" in bad.output


def test_on_postgresql_search_and_the_encounter_page_read_the_shared_state(
    cluster: LocalPostgres, state: Path, policy: Policy, tmp_path: Path
) -> None:
    with cluster.fresh_schema("console") as dsn:
        feeds = str(ROOT / "examples" / "feeds")
        replay = CliRunner().invoke(cli, ["replay", feeds, "--state", dsn, "--out", str(tmp_path / "out.ndjson")])
        assert replay.exit_code == 0, replay.output
        source = StateSource(dsn)
        try:
            client = create_app(source, policy).test_client()
            assert found(client) == sorted(found(client)) and set(found(client)) == {ED, INF, OBS}
            assert found(client, patient="MRN900001", code="96376") == [ED]
            page = client.get(f"/encounter/{ED}")
            assert page.status_code == 200
            sqlite_page = create_app(StateSource(str(state)), policy).test_client().get(f"/encounter/{ED}")
            # The same encounter from either store: the same page but for the history's times.
            times = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
            assert times.sub(b"T", page.data) == times.sub(b"T", sqlite_page.data)
        finally:
            source.close()


def test_serve_binds_to_loopback_on_8080_at_the_root_unless_told() -> None:
    defaults = {param.name: param.default for param in serve.params}
    assert (defaults["host"], defaults["port"], defaults["base_path"]) == ("127.0.0.1", 8080, "/")
