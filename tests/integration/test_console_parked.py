"""The console's parked pages (issue #17, item 4) on a real RabbitMQ, through Flask's test client.

Parked copies are published to a test topology's parking exchange as the consumer parks them;
the pages list them by code and time without payload or ids, show one (ids, headers and payload
only once signed in), and requeue one or a filtered set as CSRF-checked actions: exactly the
message shown, or exactly the messages counted (a message parked after the count stays parked).
"""

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from broker import LocalBroker, declare, delete_topology, depth, drain, fresh_topology
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict

from connector.bus.base import Outgoing
from connector.bus.parking import DETAIL_HEADER, ERROR_HEADER, PARKED_AT_HEADER, QUEUE_HEADER
from connector.bus.topology import Topology
from connector.console.app import create_app
from connector.console.parked_queue import ParkedQueue
from connector.console.reader import StateSource
from connector.console.security import Credentials
from connector.policy.model import Policy
from connector.store.sqlite import SqliteStore

CSRF = re.compile(rb'name="csrf_token" value="([^"]+)"')
SENDER = "x-ivpush-message-id"
REF = re.compile(rb'href="/parked/([0-9a-f]{32})"')
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
WARNING = "Reading these pages can make parked inputs disappear"


def parked_copy(topology: Topology, ident: str, code: str, ago: timedelta, **headers: str) -> Outgoing:
    at = (datetime.now(UTC) - ago).strftime("%Y-%m-%dT%H:%M:%SZ")
    reason = {ERROR_HEADER: code, DETAIL_HEADER: "no visit number", QUEUE_HEADER: topology.input_queue()}
    body = f"MSH|^~\\&|{ident}|PID|1||MRN-SECRET-{ident}".encode()
    return Outgoing(
        topology.parking_exchange, "feed", body, ident, "application/hl7-v2", reason | {PARKED_AT_HEADER: at} | headers
    )


@pytest.fixture
def topology(rabbit: LocalBroker) -> Iterator[Topology]:
    made = fresh_topology("console-parked")
    declare(rabbit, made)
    bus = rabbit.bus()
    copies = [
        parked_copy(made, "PYXIS|GENHOSP|A1", "missing_encounter_key", timedelta(hours=1), **{SENDER: "in-a1"}),
        parked_copy(made, "PYXIS|GENHOSP|A2", "missing_encounter_key", timedelta(days=3)),
        parked_copy(made, "sha256:b", "bad_timestamp", timedelta(minutes=5)),
    ]  # fmt: skip
    assert bus.publish(copies, 30).complete
    bus.close()
    yield made
    delete_topology(rabbit, made)


@pytest.fixture
def client(rabbit: LocalBroker, topology: Topology, policy: Policy, tmp_path: Path) -> Iterator[FlaskClient]:
    path = tmp_path / "state.db"
    SqliteStore(str(path)).close()
    source = StateSource(str(path))
    parked = ParkedQueue(topology.parking_queue, topology.input_exchange, rabbit.settings, problem="")
    credentials = Credentials(user="analyst", password="s3cret-words")
    yield create_app(source, policy, credentials=credentials, parked=parked).test_client()
    source.close()


def sign_in(client: FlaskClient) -> str:
    token = CSRF.search(client.get("/sign-in").data)
    assert token is not None
    data = {"csrf_token": token.group(1).decode(), "user": "analyst", "password": "s3cret-words"}
    assert client.post("/sign-in", data=data).status_code == 303
    found = CSRF.search(client.get("/parked").data)
    assert found is not None
    return found.group(1).decode()


def confirmed(client: FlaskClient, query: str) -> MultiDict[str, str]:
    """The form of the confirm page of ``/parked/requeue?<query>``: its hidden fields, CSRF token included."""
    return MultiDict(HIDDEN.findall(client.get(f"/parked/requeue?{query}").data.decode()))


def test_the_list_counts_by_code_filters_by_code_and_time_and_shows_neither_payload_nor_ids(
    client: FlaskClient, rabbit: LocalBroker, topology: Topology
) -> None:
    page = client.get("/parked")
    assert page.status_code == 200
    text = page.data.decode()
    assert "3 parked inputs match, of 3 read" in text
    assert "MRN-SECRET" not in text and "GENHOSP|A1" not in text and "in-a1" not in text
    assert len(REF.findall(page.data)) == 3
    only = client.get("/parked?code=missing_encounter_key&since=2d").data.decode()
    assert "1 parked input match, of 3 read" in only and "bad_timestamp" not in only
    older = client.get("/parked?until=2d").data.decode()
    assert "1 parked input match" in older
    bad = client.get("/parked?since=yesterday")
    assert bad.status_code == 400 and b"Since: an ISO 8601 time" in bad.data
    for query, said in [
        ("since=99999999999w", b"Since: an age of at most 3650 days"),
        ("until=3651d", b"Until: an age of at most 3650 days"),
        ("since=" + "9" * 400 + "h", b"Since: an ISO 8601 time"),
        ("page=" + "9" * 5000, b"Page: a page number"),
        ("page=%C2%B2", b"Page: a page number"),  # a superscript two: str.isdigit, not int
    ]:
        refused = client.get(f"/parked?{query}")
        assert refused.status_code == 400 and said in refused.data, query
    assert depth(rabbit, topology.parking_queue) == 3  # reading took nothing


def test_one_message_shows_its_reason_to_anyone_and_its_ids_and_payload_only_once_signed_in(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    ref = REF.findall(client.get("/parked?code=bad_timestamp").data)[0].decode()
    anonymous = client.get(f"/parked/{ref}?payload=1").data.decode()
    assert "bad_timestamp" in anonymous and "x-ivpush-parked-at" in anonymous
    assert "MRN-SECRET" not in anonymous and "sha256:b" not in anonymous and "Sign in" in anonymous
    assert client.get("/parked/" + "0" * 32).status_code == 404
    sign_in(client)
    assert "sha256:b" in client.get("/parked").data.decode()
    with caplog.at_level(logging.INFO):
        shown = client.get(f"/parked/{ref}?payload=1").data.decode()
    assert "MRN-SECRET-sha256:b" in shown and "sha256:b" in shown
    assert "parked payload shown" in caplog.text and "MRN-SECRET" not in caplog.text and "sha256:b" not in caplog.text


def test_requeue_one_is_an_action_and_sends_it_back_to_the_input_exchange(
    client: FlaskClient, rabbit: LocalBroker, topology: Topology, caplog: pytest.LogCaptureFixture
) -> None:
    ref = REF.findall(client.get("/parked?code=bad_timestamp").data)[0].decode()
    assert client.post(f"/parked/{ref}/requeue").status_code == 401
    token = sign_in(client)
    assert client.post(f"/parked/{ref}/requeue").status_code == 400  # no CSRF token
    with caplog.at_level(logging.INFO):
        done = client.post(f"/parked/{ref}/requeue", data={"csrf_token": token})
    assert done.status_code == 303
    assert "Requeued 1 of 1 parked input to the input exchange." in client.get("/parked").data.decode()
    (sent,) = drain(rabbit, topology.input_queue())
    assert sent.body == b"MSH|^~\\&|sha256:b|PID|1||MRN-SECRET-sha256:b" and ERROR_HEADER not in sent.headers
    assert depth(rabbit, topology.parking_queue) == 2
    assert "parked requeue one by user: 1 matched, 1 requeued" in caplog.text
    assert "sha256:b" not in caplog.text and "MRN-SECRET" not in caplog.text
    assert client.get(f"/parked/{ref}").status_code == 404  # gone


def test_requeue_one_selects_the_parked_id_only_never_a_senders_id(
    client: FlaskClient, rabbit: LocalBroker, topology: Topology
) -> None:
    bus = rabbit.bus()  # parked id "in-a1": the sender's id of the fixture's PYXIS|GENHOSP|A1
    assert bus.publish([parked_copy(topology, "in-a1", "bad_timestamp", timedelta(minutes=1))], 30).complete
    bus.close()
    token = sign_in(client)
    row = re.search(rb'<td class="ids">in-a1</td>\s*<td><a class="parked-link" href="/parked/([0-9a-f]{32})"',
                    client.get("/parked").data)  # fmt: skip
    assert row is not None
    assert client.post(f"/parked/{row.group(1).decode()}/requeue", data={"csrf_token": token}).status_code == 303
    assert "Requeued 1 of 1 parked input" in client.get("/parked").data.decode()
    assert [m.message_id for m in drain(rabbit, topology.input_queue())] == ["in-a1"]
    assert depth(rabbit, topology.parking_queue) == 3  # PYXIS|GENHOSP|A1 (sender's id in-a1) stays


def test_a_set_is_requeued_after_a_page_that_counts_it(
    client: FlaskClient, rabbit: LocalBroker, topology: Topology
) -> None:
    token = sign_in(client)
    confirm = client.get("/parked/requeue?code=missing_encounter_key").data.decode()
    assert '<strong id="count">2</strong>' in confirm and "Requeue 2 inputs" in confirm
    assert "Give a reason code or a time first" in client.get("/parked/requeue").data.decode()
    unfiltered = client.post("/parked/requeue", data={"csrf_token": token, "expected": "3"})
    assert unfiltered.status_code == 400
    form = confirmed(client, "code=missing_encounter_key")
    assert form["csrf_token"] == token and form["expected"] == "2" and len(form.getlist("ref")) == 2
    for name, value in [("expected", "9" * 5000), ("expected", "²"), ("to", "2h"), ("ref", "not-a-ref")]:
        changed = form.copy()
        changed[name] = value
        assert client.post("/parked/requeue", data=changed).status_code == 400, name
    done = client.post("/parked/requeue", data=form)
    assert done.status_code == 303 and "code=missing_encounter_key" in done.headers["Location"]
    assert "Requeued 2 of 2 parked inputs" in client.get("/parked").data.decode()
    assert sorted(m.message_id or "" for m in drain(rabbit, topology.input_queue())) == ["PYXIS|GENHOSP|A2", "in-a1"]
    assert depth(rabbit, topology.parking_queue) == 1


@pytest.mark.parametrize("by_refs", [True, False], ids=["refs", "pinned-window"])
def test_an_input_parked_after_the_count_is_not_requeued(
    client: FlaskClient, rabbit: LocalBroker, topology: Topology, by_refs: bool
) -> None:
    sign_in(client)
    form = confirmed(client, "since=2h")  # an age: the window must not move with the time of the POST
    assert form["expected"] == "2" and form["since"] == "2h" and form["from"] and form["to"]
    if not by_refs:  # as a confirm page of more than MAX_REFS inputs posts it: the window and the count
        form.poplist("ref")
    bus = rabbit.bus()
    late = parked_copy(topology, "PYXIS|GENHOSP|LATE", "missing_encounter_key", -timedelta(seconds=1))
    assert bus.publish([late], 30).complete
    bus.close()
    assert client.post("/parked/requeue", data=form).status_code == 303
    assert "Requeued 2 of 2 parked inputs" in client.get("/parked").data.decode()
    assert sorted(m.message_id or "" for m in drain(rabbit, topology.input_queue())) == ["in-a1", "sha256:b"]
    assert depth(rabbit, topology.parking_queue) == 2  # A2 (3 days old) and the late one


def test_the_pages_show_delivery_counts_and_warn_before_the_broker_drops_a_message(
    client: FlaskClient, rabbit: LocalBroker, topology: Topology
) -> None:
    first = client.get("/parked").data.decode()
    assert WARNING not in first and "Deliveries" in first
    for _ in range(10):  # each read hands every message back: a delivery for the broker
        assert client.get("/parked/" + "0" * 32).status_code == 404
    page = client.get("/parked?page=1&code=bad_timestamp").data.decode()
    assert WARNING in page and "ivpush parked policy" in page
    assert re.search(r'<td class="num unmapped">1[01]</td>', page)
    ref = REF.findall(page.encode())[0].decode()
    assert WARNING in client.get(f"/parked/{ref}").data.decode()
    assert depth(rabbit, topology.parking_queue) == 3


def test_without_a_broker_the_pages_say_so(policy: Policy, tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteStore(str(path)).close()
    source = StateSource(str(path))
    client = create_app(source, policy).test_client()
    page = client.get("/parked")
    assert page.status_code == 503 and b"No broker is configured: set IVPUSH_AMQP_URL" in page.data
    assert client.get("/parked/" + "a" * 32).status_code == 503
    source.close()
