"""The console's search by account: the demo feeds with a PID-18 and an Encounter.account, replayed, then searched."""

import json
import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from connector.cli.main import cli
from connector.console.app import create_app
from connector.console.reader import StateSource
from connector.policy.model import Policy

ROOT = Path(__file__).resolve().parents[2]
ED = "GENHOSP|ED20260302001"
INF = "GENHOSP|INF20260302007"
OBS = "fhir|OBS20260302042"
ED_PID = "PID|1||MRN900001^^^GENHOSP^MR||DEMO^PATIENT||19700101|F"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, policy: Policy) -> Iterator[FlaskClient]:
    feeds = tmp_path_factory.mktemp("account-feeds")
    for path in (ROOT / "examples" / "feeds").iterdir():
        shutil.copy(path, feeds / path.name)
    ed = feeds / "ed-visit-2026-03-02.hl7"
    sent = ed.read_bytes()
    assert ED_PID.encode() in sent
    ed.write_bytes(sent.replace(ED_PID.encode(), f"{ED_PID}||||||||||ACCT-ED-1^^^GENHOSP^AN".encode()))
    fhir = feeds / "observation-stay-fhir.json"
    bundle = json.loads(fhir.read_text())
    (encounter,) = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter"]
    encounter["account"] = [{"reference": "Account/ACC-OBS-42"}]
    fhir.write_text(json.dumps(bundle))
    state = feeds.parent / "account-state.db"
    result = CliRunner().invoke(cli, ["replay", str(feeds), "--state", str(state), "--out", str(feeds.parent / "o")])
    assert result.exit_code == 0, result.output
    source = StateSource(str(state))
    yield create_app(source, policy).test_client()
    source.close()


def found(client: FlaskClient, **fields: str) -> list[str]:
    response = client.get("/", query_string=fields)
    assert response.status_code == 200, response.data[-500:]
    return re.findall(r'<span class="key">([^<]+)</span>', response.data.decode())


def test_search_by_account_matches_exactly(client: FlaskClient) -> None:
    assert found(client) == [ED, INF, OBS]
    assert found(client, account="ACCT-ED-1") == [ED]  # HL7 PID-18 CX.1
    assert found(client, account=" ACC-OBS-42 ") == [OBS]  # FHIR Encounter.account; the field is trimmed
    assert found(client, account="acct-ed-1") == found(client, account="ACCT-ED") == []  # exactly as sent
    assert found(client, account="ACCT-ED-1", patient="MRN900001") == [ED]
    assert found(client, account="ACCT-ED-1", patient="MRN900003") == []  # every criterion must hold


def test_the_result_rows_show_the_account(client: FlaskClient) -> None:
    page = client.get("/").data.decode()
    assert '<th scope="col">Account</th>' in page and '<label for="account">Account</label>' in page
    cells = re.findall(r'<span class="key">([^<]+)</span></th>\s*<td>([^<]*)</td>', page)
    assert cells == [(ED, "ACCT-ED-1"), (INF, ""), (OBS, "ACC-OBS-42")]


def test_an_account_field_that_cannot_be_read_is_named_without_its_value(client: FlaskClient) -> None:
    response = client.get("/", query_string={"account": "ACCT" + "9" * 200})
    assert response.status_code == 400
    alert = re.search(r'role="alert">([^<]*)<', response.data.decode())
    assert alert is not None and "Cannot search: account:" in alert.group(1) and "ACCT" not in alert.group(1)


def test_the_account_searched_for_is_never_logged(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        client.get("/", query_string={"account": "ACCT-ED-1"})
        client.get(f"/encounter/{ED}")
    logged = " ".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records
    assert "ACCT-ED-1" not in logged and "account" not in logged
