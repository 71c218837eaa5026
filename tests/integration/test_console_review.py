"""The review queue and "mark reviewed" (issue #17, item 3), through Flask's test client.

States are replayed from the demo feeds (where GENHOSP|INF20260302007 needs review: an unmapped
route) plus a small feed built here: an encounter of 2026-03-01 with the same unmapped route
(older, so first in the queue), and a late administration for the infusion encounter (a change
after a review, which brings it back).
"""

import logging
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from postgres import LocalPostgres

from connector.cli.main import cli
from connector.console.app import create_app
from connector.console.queue import QueueQuery, queue
from connector.console.reader import StateSource
from connector.console.security import Credentials
from connector.policy.model import Policy
from connector.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[2]
INF = "GENHOSP|INF20260302007"
EARLY = "GENHOSP|TQ20260301001"
ED = "GENHOSP|ED20260302001"
TOKEN = "a-token-of-enough-length-42"
CSRF = re.compile(rb'name="csrf_token" value="([^"]+)"')
BASIS = re.compile(rb'name="basis" value="([^"]+)"')
NOTE = 'Route <b>IVSLOW</b> & "slow" push: checked with pharmacy; map it to IV push.\nSecond line.'


def hl7(*segments: str) -> str:
    return "\r".join(segments) + "\r"


PID = "PID|1||MRN800001^^^GENHOSP^MR||TEST^PATIENT||19600101|F"
PV1 = "PV1|1|O|INFNORTH^CHAIR1^^GENHOSP||||||||||||||||TQ20260301001^^^GENHOSP^VN"
EARLY_FEED = "".join(
    [
        hl7("MSH|^~\\&|ADT|GENHOSP|BILLING|GENHOSP|20260301084500||ADT^A04^ADT_A01|TQ001|P|2.5.1",
            "EVN|A04|20260301084500", PID, PV1, "IN1|1|CIGNA-OAP|GHCI07^^^GENHOSP|CIGNA HEALTHCARE||||||||||||||||||1"),
        hl7("MSH|^~\\&|PYXIS|GENHOSP|BILLING|GENHOSP|20260301090000||RAS^O17^RAS_O17|TQ002|P|2.5.1", PID, PV1,
            "ORC|RE|ORD900|ORD900F",
            "RXA|0|1|20260301085500||^Diphenhydramine 25 mg/mL injection^|25|mg|||||||||||||CP|A",
            "RXR|IVSLOW^IV slow push^99GH"),
        hl7("MSH|^~\\&|ADT|GENHOSP|BILLING|GENHOSP|20260301101500||ADT^A03^ADT_A03|TQ003|P|2.5.1",
            "EVN|A03|20260301101500", PID, PV1),
    ]
)  # fmt: skip
LATE_FEED = hl7(
    "MSH|^~\\&|PYXIS|GENHOSP|BILLING|GENHOSP|20260302110000||RAS^O17^RAS_O17|INF009|P|2.5.1",
    "PID|1||MRN900003^^^GENHOSP^MR||DEMO^PATIENT||19580415|M",
    "PV1|1|O|INFNORTH^CHAIR2^^GENHOSP||||||||||||||||INF20260302007^^^GENHOSP^VN",
    "ORC|RE|ORD209|ORD209F",
    "RXA|0|1|20260302095500||^Ondansetron 4 mg/2 mL injection^|4|mg|||||||||||||CP|A",
    "RXR|IV^Intravenous^HL70162",
)


def replay(feeds: Path | str, state: Path | str, out: Path) -> None:
    result = CliRunner().invoke(cli, ["replay", str(feeds), "--state", str(state), "--out", str(out)])
    assert result.exit_code == 0, result.output


def feed(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text)
    return directory


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo feeds and the early encounter, replayed once (each test works on a copy)."""
    root = tmp_path_factory.mktemp("console-review")
    replay(ROOT / "examples" / "feeds", root / "state.db", root / "out.ndjson")
    replay(feed(root / "early", "early.hl7", EARLY_FEED), root / "state.db", root / "out2.ndjson")
    return root / "state.db"


@pytest.fixture
def state(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "state.db"
    shutil.copy(built, copy)
    return copy


@pytest.fixture
def source(state: Path) -> Iterator[StateSource]:
    opened = StateSource(str(state), writable=True)
    yield opened
    opened.close()


def console(source: StateSource, policy: Policy, credentials: Credentials | None = None, **options: int) -> Flask:
    creds = Credentials(user="analyst", password="s3cret-words", token=TOKEN) if credentials is None else credentials
    return create_app(source, policy, credentials=creds, **options)


@pytest.fixture
def client(source: StateSource, policy: Policy) -> FlaskClient:
    return console(source, policy).test_client()


def signed_in(client: FlaskClient) -> str:
    """Sign in as the user; the CSRF token of the new session."""
    token = CSRF.search(client.get("/sign-in").data)
    assert token is not None
    done = client.post(
        "/sign-in", data={"csrf_token": token.group(1).decode(), "user": "analyst", "password": "s3cret-words"}
    )
    assert done.status_code == 303
    again = CSRF.search(client.get("/").data)
    assert again is not None
    return again.group(1).decode()


def form_of(client: FlaskClient, key: str) -> dict[str, str]:
    """The hidden fields of the encounter page's "mark reviewed" form."""
    page = client.get(f"/encounter/{key}").data
    csrf, basis = CSRF.findall(page), BASIS.search(page)
    assert basis is not None, "no review form on the page"
    return {"csrf_token": csrf[-1].decode(), "basis": basis.group(1).decode()}


def listed(client: FlaskClient, **args: str) -> list[str]:
    response = client.get("/review", query_string=args)
    assert response.status_code == 200, response.data[-400:]
    return re.findall(r'<span class="key">([^<]+)</span>', response.data.decode())


def marks(state: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(state) as db:
        return list(db.execute("SELECT encounter_key, actor, note FROM reviews ORDER BY seq"))


def coding_dump(state: Path) -> list[str]:
    """Everything the state holds but the review marks (coding, lines, outcomes, history, outbox)."""
    db = sqlite3.connect(state)
    try:
        return [line for line in db.iterdump() if "reviews" not in line and "sqlite_sequence" not in line]
    finally:
        db.close()


def test_the_queue_lists_what_needs_review_oldest_first_with_why(client: FlaskClient) -> None:
    assert listed(client) == [EARLY, INF]  # 2026-03-01 08:55 before 2026-03-02 08:55; ED and OBS need none
    page = client.get("/review").data.decode()
    assert "unmapped_route" in page and "2026-03-01 08:55" in page and "not reviewed" in page
    assert 'href="/encounter/GENHOSP%7CINF20260302007#review"' in page
    assert 'href="/review">Review queue</a>' in client.get("/").data.decode()  # the nav link


def test_the_queue_is_paged_and_a_bad_page_is_named_without_its_value(source: StateSource, policy: Policy) -> None:
    paged = console(source, policy, page_size=1).test_client()
    assert listed(paged) == [EARLY] and listed(paged, page="2") == [INF]
    assert 'rel="next" href="/review?page=2"' in paged.get("/review").data.decode()
    bad = paged.get("/review", query_string={"page": "MRN900003"})
    alert = re.search(r'role="alert">([^<]*)<', bad.data.decode())
    assert bad.status_code == 400 and alert is not None
    assert "page: not a number" in alert.group(1) and "MRN900003" not in alert.group(1)
    window = queue(source, QueueQuery(), max_scan=2)  # a state too large for one request: the next window
    assert [r.key for r in window.rows] == [INF] and window.next_after == INF and window.scanned == 2  # ED, INF
    rest = queue(source, QueueQuery(after=window.next_after), max_scan=10)  # TQ…, fhir|OBS…
    assert [r.key for r in rest.rows] == [EARLY] and rest.next_after == "" and rest.scanned == 2


def test_mark_reviewed_records_an_audited_mark_and_changes_no_coding(
    client: FlaskClient, state: Path, caplog: pytest.LogCaptureFixture
) -> None:
    signed_in(client)
    before, pending = coding_dump(state), [r.message_id for r in SqliteStore(state).pending()]
    with caplog.at_level(logging.DEBUG):
        done = client.post(f"/encounter/{INF}/review", data={**form_of(client, INF), "note": NOTE})
    assert done.status_code == 303 and done.headers["Location"].endswith("/encounter/GENHOSP%7CINF20260302007#review")
    assert marks(state) == [(INF, "analyst", NOTE)]
    assert coding_dump(state) == before and [r.message_id for r in SqliteStore(state).pending()] == pending
    assert listed(client) == [EARLY]
    assert listed(client, reviewed="1") == [EARLY, INF]
    assert "reviewed by analyst at" in client.get("/review", query_string={"reviewed": "1"}).data.decode()
    page = client.get(f"/encounter/{INF}").data.decode()
    assert str(escape(NOTE)) in page and "<b>IVSLOW</b>" not in page  # escaped, never markup
    assert "what it holds now" in page and "Reviewed on what it holds now" in page
    logged = " ".join([r.getMessage() for r in caplog.records] + [repr(r.__dict__) for r in caplog.records])
    assert "review mark recorded" in logged
    assert "IVSLOW" not in logged and "pharmacy" not in logged and "analyst" not in logged


def test_a_change_after_the_review_brings_the_encounter_back(client: FlaskClient, state: Path, tmp_path: Path) -> None:
    signed_in(client)
    assert client.post(f"/encounter/{INF}/review", data={**form_of(client, INF), "note": "ok"}).status_code == 303
    assert listed(client) == [EARLY]
    replay(feed(tmp_path / "late", "late.hl7", LATE_FEED), state, tmp_path / "out.ndjson")  # a late dose: a rebill
    assert listed(client) == [EARLY, INF]
    assert "changed since reviewed by analyst" in client.get("/review").data.decode()
    page = client.get(f"/encounter/{INF}").data.decode()
    assert "an earlier version (changed since)" in page and "Reviewed before it last changed" in page
    assert client.post(f"/encounter/{INF}/review", data={**form_of(client, INF), "note": "again"}).status_code == 303
    assert listed(client) == [EARLY] and [m[2] for m in marks(state)] == ["ok", "again"]  # the trail is kept


def test_a_form_shown_before_a_change_records_nothing(client: FlaskClient, state: Path, tmp_path: Path) -> None:
    signed_in(client)
    stale = form_of(client, INF)
    replay(feed(tmp_path / "late", "late.hl7", LATE_FEED), state, tmp_path / "out.ndjson")
    refused = client.post(f"/encounter/{INF}/review", data={**stale, "note": "looked at the old page"})
    assert refused.status_code == 409 and b"changed after the page was shown" in refused.data
    assert b"looked at the old page</textarea>" in refused.data and marks(state) == []


@pytest.mark.parametrize(
    ("note", "says"),
    [
        ("", "Write a note"),
        ("  \n ", "Write a note"),
        ("x" * 2001, "longer than 2000"),
        ("a\x00b", "control character"),
    ],
)
def test_a_note_is_required_and_checked(client: FlaskClient, state: Path, note: str, says: str) -> None:
    signed_in(client)
    refused = client.post(f"/encounter/{INF}/review", data={**form_of(client, INF), "note": note})
    assert refused.status_code == 400 and says in refused.data.decode() and marks(state) == []
    assert 'role="alert" id="review-error"' in refused.data.decode()


def test_a_note_of_2000_characters_is_taken(client: FlaskClient, state: Path) -> None:
    signed_in(client)
    assert client.post(f"/encounter/{INF}/review", data={**form_of(client, INF), "note": "y" * 2000}).status_code == 303
    assert marks(state) == [(INF, "analyst", "y" * 2000)]


def test_read_only_without_a_credential_no_form_and_a_post_is_refused(
    source: StateSource, policy: Policy, state: Path
) -> None:
    client = console(source, policy, Credentials()).test_client()
    page = client.get(f"/encounter/{INF}").data.decode()
    assert "Not reviewed yet" in page and 'name="note"' not in page and "The console is read-only" in page
    assert client.post(f"/encounter/{INF}/review", data={"note": "x"}).status_code == 403
    assert listed(client) == [EARLY, INF] and marks(state) == []


def test_a_state_opened_read_only_takes_no_mark_even_with_a_credential(state: Path, policy: Policy) -> None:
    source = StateSource(str(state))
    try:
        client = console(source, policy).test_client()
        assert client.post(f"/encounter/{INF}/review", headers={"Authorization": f"Bearer {TOKEN}"},
                           data={"note": "x"}).status_code == 403  # fmt: skip
        assert 'name="note"' not in client.get(f"/encounter/{INF}").data.decode()
    finally:
        source.close()
    assert marks(state) == []


def test_the_action_needs_a_sign_in_and_the_forms_csrf_token(client: FlaskClient, state: Path) -> None:
    page = client.get(f"/encounter/{INF}").data.decode()
    assert 'name="note"' not in page and "to mark it reviewed" in page  # a hint to sign in
    assert client.post(f"/encounter/{INF}/review", data={"note": "x"}).status_code == 401
    signed_in(client)
    fields = {**form_of(client, INF), "note": "x"}
    assert client.post(f"/encounter/{INF}/review", data={**fields, "csrf_token": ""}).status_code == 400
    cross = client.post(f"/encounter/{INF}/review", data=fields, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403 and marks(state) == []
    page = client.get(f"/encounter/{INF}").data.decode()
    assert '<label for="review-note">' in page and 'id="review-note" name="note"' in page


def test_a_script_marks_with_the_bearer_token_and_nothing_needing_review_takes_no_mark(
    client: FlaskClient, state: Path
) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post(f"/encounter/{INF}/review", headers=bearer, data={"note": "by script"}).status_code == 303
    assert marks(state) == [(INF, "token", "by script")]
    nothing = client.post(f"/encounter/{ED}/review", headers=bearer, data={"note": "x"})
    assert nothing.status_code == 409 and b"Nothing in this encounter needs review" in nothing.data
    assert client.post("/encounter/GENHOSP|NOPE/review", headers=bearer, data={"note": "x"}).status_code == 404
    assert marks(state) == [(INF, "token", "by script")]
    assert client.get(f"/encounter/{INF}/review").status_code in (404, 405)  # no page, no change by GET


def test_on_postgresql_the_queue_and_a_mark(cluster: LocalPostgres, policy: Policy, tmp_path: Path) -> None:
    with cluster.fresh_schema("review") as dsn:
        replay(ROOT / "examples" / "feeds", dsn, tmp_path / "out.ndjson")
        replay(feed(tmp_path / "early", "early.hl7", EARLY_FEED), dsn, tmp_path / "out2.ndjson")
        source = StateSource(dsn, writable=True)
        try:
            client = console(source, policy).test_client()
            assert listed(client) == [EARLY, INF]
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            basis = form_of_token(client, INF)
            done = client.post(f"/encounter/{INF}/review", headers=bearer, data={"note": NOTE, "basis": basis})
            assert done.status_code == 303
            assert listed(client) == [EARLY] and listed(client, reviewed="1") == [EARLY, INF]
            assert str(escape(NOTE)) in client.get(f"/encounter/{INF}").data.decode()
        finally:
            source.close()


def form_of_token(client: FlaskClient, key: str) -> str:
    """The basis a signed-in page would carry (read here by signing in with the token)."""
    token = CSRF.search(client.get("/sign-in").data)
    assert token is not None
    client.post("/sign-in", data={"csrf_token": token.group(1).decode(), "token": TOKEN})
    return form_of(client, key)["basis"]
