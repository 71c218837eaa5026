"""The console's credentials, sessions and CSRF checks (issue #17, item 6), through Flask's test client.

An action used here is a tiny view marked with ``security.action`` on the real application: the
guard is what is under test, not the action.
"""

import base64
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from pydantic import ValidationError
from werkzeug.security import generate_password_hash

from connector.cli.main import cli
from connector.config.console import ConsoleSection
from connector.console.app import HEADERS, create_app
from connector.console.reader import StateSource
from connector.console.security import Credentials, action, actor, safe_next
from connector.policy.model import Policy

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "a-token-of-enough-length-42"
CSRF = re.compile(rb'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StateSource]:
    path = tmp_path_factory.mktemp("console-security") / "state.db"
    out = path.parent / "out.ndjson"
    feeds = str(ROOT / "examples" / "feeds")
    result = CliRunner().invoke(cli, ["replay", feeds, "--state", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    opened = StateSource(str(path))
    yield opened
    opened.close()


def app_with(source: StateSource, policy: Policy, credentials: Credentials) -> Flask:
    app = create_app(source, policy, credentials=credentials)

    @action
    def poke() -> str:
        return f"done by {actor()}"

    app.add_url_rule("/poke", "poke", poke, methods=["POST"])
    return app


@pytest.fixture
def guarded(source: StateSource, policy: Policy) -> FlaskClient:
    hashed = generate_password_hash("s3cret-words", method="pbkdf2:sha256:1000")
    return app_with(source, policy, Credentials(user="analyst", password=hashed, token=TOKEN)).test_client()


def csrf_of(client: FlaskClient, path: str = "/sign-in") -> str:
    page = client.get(path)
    assert page.status_code == 200
    found = CSRF.search(page.data)
    assert found is not None, "no CSRF field on the page"
    return found.group(1).decode()


def signed_in(client: FlaskClient) -> str:
    """Sign in as the user; the CSRF token of the new session."""
    token = csrf_of(client)
    response = client.post("/sign-in", data={"csrf_token": token, "user": "analyst", "password": "s3cret-words"})
    assert response.status_code == 303, response.data
    return csrf_of(client, "/")


def test_without_a_credential_the_console_is_read_only(source: StateSource, policy: Policy) -> None:
    client = app_with(source, policy, Credentials()).test_client()
    assert client.post("/poke").status_code == 403
    assert client.get("/sign-in").status_code == 404
    assert b"Read-only" in client.get("/").data
    assert client.post("/").status_code == 405  # a page that is no action takes no POST


def test_an_action_needs_an_actor_then_the_sessions_csrf_token(guarded: FlaskClient) -> None:
    assert guarded.post("/poke").status_code == 401
    token = signed_in(guarded)
    assert b"Signed in as analyst" in guarded.get("/").data
    assert guarded.post("/poke").status_code == 400  # no token
    assert guarded.post("/poke", data={"csrf_token": token + "x"}).status_code == 400
    done = guarded.post("/poke", data={"csrf_token": token})
    assert done.status_code == 200 and done.data == b"done by analyst"
    assert done.headers["Content-Security-Policy"] == HEADERS["Content-Security-Policy"]


def test_a_request_from_another_site_is_refused_even_with_the_token(guarded: FlaskClient) -> None:
    token = signed_in(guarded)
    response = guarded.post("/poke", data={"csrf_token": token}, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403


def test_a_wrong_password_is_refused_and_not_logged(guarded: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    token = csrf_of(guarded)
    with caplog.at_level(logging.INFO):
        response = guarded.post("/sign-in", data={"csrf_token": token, "user": "MRN-77123", "password": "nope"})
    assert response.status_code == 401 and b"did not match" in response.data
    assert "MRN-77123" not in caplog.text and "nope" not in caplog.text and "sign-in refused" in caplog.text
    assert guarded.post("/poke", data={"csrf_token": token}).status_code == 401


def test_sign_in_itself_needs_the_forms_csrf_token(guarded: FlaskClient) -> None:
    guarded.get("/sign-in")
    response = guarded.post("/sign-in", data={"user": "analyst", "password": "s3cret-words"})
    assert response.status_code == 400


def test_a_bearer_token_acts_without_a_form_token_and_a_wrong_one_does_not(guarded: FlaskClient) -> None:
    done = guarded.post("/poke", headers={"Authorization": f"Bearer {TOKEN}"})
    assert done.status_code == 200 and done.data == b"done by token"
    assert guarded.post("/poke", headers={"Authorization": "Bearer wrong-token-of-length"}).status_code == 401


def test_basic_auth_identifies_the_user_but_still_needs_the_csrf_token(guarded: FlaskClient) -> None:
    basic = {"Authorization": "Basic " + base64.b64encode(b"analyst:s3cret-words").decode()}
    assert guarded.post("/poke", headers=basic).status_code == 400  # a browser replays basic auth by itself
    token = csrf_of(guarded)  # the session's token, as any console page with a form carries it
    assert guarded.post("/poke", headers=basic, data={"csrf_token": token}).data == b"done by analyst"
    bad = {"Authorization": "Basic " + base64.b64encode(b"analyst:wrong").decode()}
    assert guarded.post("/poke", headers=bad, data={"csrf_token": token}).status_code == 401
    assert guarded.post("/poke", headers={"Authorization": "Basic !!!"}, data={"csrf_token": token}).status_code == 401


def test_the_session_cookie_is_http_only_same_site_strict_and_secure_when_asked(
    source: StateSource, policy: Policy
) -> None:
    client = app_with(source, policy, Credentials(token=TOKEN, secure_cookie=True)).test_client()
    page = client.get("/sign-in")
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie


def test_sign_in_with_the_token_and_sign_out(guarded: FlaskClient) -> None:
    token = csrf_of(guarded)
    response = guarded.post("/sign-in", data={"csrf_token": token, "token": TOKEN, "next": "/?patient=1"})
    assert response.status_code == 303 and response.headers["Location"].endswith("/?patient=1")
    after = csrf_of(guarded, "/")
    assert guarded.post("/poke", data={"csrf_token": after}).data == b"done by token"
    assert guarded.post("/sign-out", data={"csrf_token": after}).status_code == 303
    assert guarded.post("/poke", data={"csrf_token": after}).status_code == 401


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil", "", None, "relative"])
def test_sign_in_never_redirects_off_site(target: str | None) -> None:
    assert safe_next(target, "/") == "/"


def test_a_password_or_token_configured_alone_is_checked_at_load() -> None:
    with pytest.raises(ValidationError, match=r"needs console\.password"):
        ConsoleSection(user="analyst")
    with pytest.raises(ValidationError, match="at least 16"):
        ConsoleSection(token="short")
    assert Credentials.from_section(ConsoleSection(user="a", password="p")).actions


def test_the_sign_in_link_comes_back_under_the_base_path(source: StateSource, policy: Policy) -> None:
    client = app_with(source, policy, Credentials(token=TOKEN)).test_client()
    page = client.get("/?code=96374", base_url="http://localhost/console/")
    link = re.search(rb'href="([^"]*sign-in[^"]*)"', page.data)
    assert link is not None and b"next=/console/?code%3D96374" in link.group(1).replace(b"%2F", b"/")


@pytest.mark.parametrize("target", ["/\t/evil.example", "/\n/evil.example", "/\r\n//evil", "/x\x7f", "/https://ok"])
def test_control_characters_never_make_a_redirect_off_site(target: str) -> None:
    expected = "/https://ok" if target == "/https://ok" else "/"
    assert safe_next(target, "/") == expected


def test_a_session_copied_before_sign_out_no_longer_signs_in(guarded: FlaskClient) -> None:
    token = signed_in(guarded)
    cookie = guarded.get_cookie("ivpush_console")
    assert cookie is not None
    copied = cookie.value
    assert guarded.post("/sign-out", data={"csrf_token": token}).status_code == 303
    guarded.set_cookie("ivpush_console", copied)
    assert b"Signed in as" not in guarded.get("/").data
    assert guarded.post("/poke", data={"csrf_token": token}).status_code == 401


def test_a_sign_in_lasts_session_minutes_however_busy(
    source: StateSource, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = app_with(source, policy, Credentials(token=TOKEN, session_minutes=1))
    client = app.test_client()
    token = csrf_of(client)
    assert client.post("/sign-in", data={"csrf_token": token, "token": TOKEN}).status_code == 303
    page = client.get("/")
    assert b"Signed in as token" in page.data and "Set-Cookie" not in page.headers  # not refreshed by use
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    assert b"Signed in as" not in client.get("/").data


def test_a_refusal_says_why_on_the_page(source: StateSource, policy: Policy) -> None:
    client = app_with(source, policy, Credentials()).test_client()
    refused = client.post("/poke")
    assert refused.status_code == 403 and b"no credential is configured" in refused.data


def test_repeated_failed_sign_ins_pause_credential_checks(guarded: FlaskClient) -> None:
    token = csrf_of(guarded)
    for _ in range(10):
        wrong = guarded.post("/sign-in", data={"csrf_token": token, "user": "analyst", "password": "guess"})
        assert wrong.status_code == 401
    right = guarded.post("/sign-in", data={"csrf_token": token, "user": "analyst", "password": "s3cret-words"})
    assert right.status_code == 429 and b"try again in a minute" in right.data
    assert guarded.post("/poke", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 429
