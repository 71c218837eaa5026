"""Reading and re-driving a parking queue (issue #14, item 5) against a queue that behaves like RabbitMQ's."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from connector.bus.base import Delivery, Outgoing, PublishReport
from connector.bus.parked import Parked, Selector
from connector.bus.parked_records import REQUEUED_AT_HEADER, Record, RecordError, Target, read_records, to_record
from connector.bus.parking import DETAIL_HEADER, ERROR_HEADER, MESSAGE_ID_HEADER, PARKED_AT_HEADER, QUEUE_HEADER
from connector.bus.redrive import browse, purge, requeue, requeue_records

PARKING = "ivpush.parking"
INPUT = Target("ivpush.in")


class Queue:
    """One queue read with basic.get: unacked messages are held; nack(multiple, requeue) hands them back."""

    def __init__(self, messages: Sequence[Delivery], refuse: Callable[[Outgoing], bool] = lambda _m: False) -> None:
        self.ready = list(messages)
        self.held: dict[int, Delivery] = {}
        self.tag = 0
        self.published: list[Outgoing] = []
        self.refuse = refuse
        self.events: list[str] = []

    def get(self, queue: str) -> Delivery | None:
        assert queue == PARKING
        if not self.ready:
            return None
        self.tag += 1
        found = replace(self.ready.pop(0), delivery_tag=self.tag)
        self.held[self.tag] = found
        return found

    def ack(self, delivery_tag: int, multiple: bool = False) -> None:
        assert not multiple
        self.events.append(f"ack {self.held.pop(delivery_tag).message_id}")

    def release(self, delivery_tag: int, multiple: bool = True) -> None:
        assert multiple and delivery_tag in self.held  # RabbitMQ refuses an unknown tag
        back = [tag for tag in sorted(self.held) if tag <= delivery_tag]
        self.ready += [self.held.pop(tag) for tag in back]

    def publish(
        self, messages: Sequence[Outgoing], timeout: float, window: int = 500, on_sent: object = None
    ) -> PublishReport:
        report = PublishReport()
        for message in messages:
            self.events.append(f"publish {message.message_id}")
            if self.refuse(message):
                report.nacked.append(message.ident)
            else:
                self.published.append(message)
                report.confirmed.append(message.ident)
        return report

    def ids(self) -> list[str | None]:
        return [m.message_id for m in self.ready]


AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def parked(
    ident: str, code: str = "bad_timestamp", at: datetime | None = AT, body: bytes = b"MSH|x\rPID|y", **extra: object
) -> Delivery:
    headers: dict[str, object] = {ERROR_HEADER: code, DETAIL_HEADER: "RXA-3 out of range", QUEUE_HEADER: "ivpush.in"}
    if at is not None:
        headers[PARKED_AT_HEADER] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    headers.update({(k.replace("_", "-") if k.startswith("x_") else k): v for k, v in extra.items()})
    return Delivery(0, body, "application/hl7-v2", headers, ident, "hl7.ras.pump7")


def test_a_parked_message_is_read_with_its_reason_time_origin_and_source() -> None:
    found = Parked.of(parked("sha256:1", x_ivpush_source="mllp", x_ivpush_message_id="in-7"))
    assert (found.id, found.code, found.detail, found.origin, found.source) == (
        "sha256:1", "bad_timestamp", "RXA-3 out of range", "ivpush.in", "mllp",
    )  # fmt: skip
    assert (found.parked_at, found.sender_id, found.size) == (AT, "in-7", 11)


def test_a_message_the_broker_dead_lettered_is_read_from_x_death() -> None:
    death = {"queue": "ivpush.in", "reason": "delivery_limit", "time": AT, "count": 1}
    delivery = Delivery(0, b"x", None, {"x-death": [death], "x-first-death-reason": "delivery_limit"}, "m1")
    found = Parked.of(delivery)
    assert (found.code, found.parked_at, found.origin) == ("delivery_limit", AT, "ivpush.in")


def test_a_code_header_that_is_not_a_code_is_not_repeated() -> None:
    assert Parked.of(parked("m", code="DOE, JANE 1970-01-01")).code == "unknown"


def test_filters_combine_and_a_message_of_unknown_time_never_matches_a_time_filter() -> None:
    items = [
        Parked.of(parked("a", "bad_timestamp", AT, x_ivpush_source="mllp")),
        Parked.of(parked("b", "not_hl7", AT + timedelta(hours=2), x_ivpush_message_id="sender-b")),
        Parked.of(parked("c", "not_hl7", None)),
    ]

    def chosen(**filters: object) -> list[str]:
        selector = Selector(**filters)  # type: ignore[arg-type]
        return [item.id for item in items if selector.matches(item)]

    assert chosen() == ["a", "b", "c"] and Selector().everything
    assert chosen(codes=frozenset({"not_hl7"})) == ["b", "c"]
    assert chosen(ids=frozenset({"sender-b", "a"})) == ["a", "b"]  # parked id or the sender's
    assert chosen(sources=("mllp",)) == ["a"]
    assert chosen(sources=("hl7.ras.*",)) == ["a", "b", "c"]  # the routing key
    assert chosen(since=AT + timedelta(hours=1)) == ["b"]
    assert chosen(until=AT + timedelta(hours=1)) == ["a"]
    assert chosen(codes=frozenset({"not_hl7"}), until=AT + timedelta(days=1)) == ["b"]


def test_browsing_hands_every_message_back_in_one_nack_and_reads_each_once() -> None:
    queue = Queue([parked("a"), parked("b", "not_hl7"), parked("c")])
    seen: list[str] = []
    tally = browse(queue, PARKING, Selector(codes=frozenset({"bad_timestamp"})), lambda p: seen.append(p.id))
    assert seen == ["a", "c"] and (tally.scanned, tally.matched) == (3, 2)
    assert queue.ids() == ["a", "b", "c"] and not queue.held and not queue.published


def test_a_limit_stops_the_scan() -> None:
    queue = Queue([parked(str(n)) for n in range(5)])
    tally = browse(queue, PARKING, Selector(), lambda _p: None, limit=2)
    assert (tally.scanned, tally.matched) == (2, 2) and len(queue.ready) == 5


def test_purge_removes_only_what_is_selected() -> None:
    queue = Queue([parked("a"), parked("b", "not_hl7"), parked("c")])
    tally = purge(queue, PARKING, Selector(codes=frozenset({"not_hl7"})))
    assert queue.ids() == ["a", "c"] and tally.removed == 1


def test_requeue_acks_a_copy_only_after_its_republication_is_confirmed() -> None:
    queue = Queue([parked("a", x_ivpush_message_id="in-1"), parked("b")], refuse=lambda m: m.message_id == "b")
    tally = requeue(queue, PARKING, Selector(), INPUT)
    assert queue.events.index("publish in-1") < queue.events.index("ack a")
    assert queue.ids() == ["b"]  # nacked by the broker: still parked
    assert (tally.done, tally.failed, tally.removed) == (1, 1, 1)
    (sent,) = queue.published
    assert (sent.exchange, sent.routing_key, sent.message_id, sent.body) == (
        "ivpush.in",
        "hl7.ras.pump7",
        "in-1",
        b"MSH|x\rPID|y",
    )
    assert not {ERROR_HEADER, DETAIL_HEADER, QUEUE_HEADER, PARKED_AT_HEADER, MESSAGE_ID_HEADER} & set(sent.headers)
    assert REQUEUED_AT_HEADER in sent.headers


def test_copies_of_one_input_are_republished_once_and_all_removed() -> None:
    queue = Queue([parked("a"), parked("b"), parked("a"), parked("a", at=None)])
    tally = requeue(queue, PARKING, Selector(ids=frozenset({"a"})), INPUT)
    assert [m.message_id for m in queue.published] == ["a"]
    assert queue.ids() == ["b"] and tally.removed == 3


def test_a_dft_requeue_goes_back_to_the_output_queue_by_the_default_exchange() -> None:
    queue = Queue([parked("msg-1", "receiver_ae", **{"x_ivpush_ack_code": "AE", "x_ivpush_err_code": "204"})])
    requeue(queue, PARKING, Selector(), Target("", "ivpush.out.dft"))
    (sent,) = queue.published
    assert (sent.exchange, sent.routing_key, sent.message_id) == ("", "ivpush.out.dft", "msg-1")
    assert "x-ivpush-ack-code" not in sent.headers and "x-ivpush-err-code" not in sent.headers


def export(*messages: Delivery) -> list[str]:
    lines: list[str] = []
    browse(Queue(list(messages)), PARKING, Selector(), lambda p: lines.append(json.dumps(to_record(p, PARKING))))
    return lines


def test_an_export_fixed_by_hand_is_requeued_and_its_parked_copies_removed_once_confirmed() -> None:
    bad = parked("sha256:bad", body=b"MSH|bad\rRXA|notatime", x_ivpush_message_id="in-3", encounter_id="e1")
    lines = export(bad, parked("other"))
    record = json.loads(lines[0])
    assert record["headers"] == {"encounter_id": "e1"} and record["body"] == "MSH|bad\rRXA|notatime"
    record["body"] = "MSH|bad\rRXA|20260302"
    records = [r for r in read_records([json.dumps(record)]) if isinstance(r, Record)]
    queue = Queue([bad, parked("other"), bad])
    tally = requeue_records(queue, PARKING, records, INPUT)
    (sent,) = queue.published
    assert (sent.body, sent.message_id, sent.routing_key) == (b"MSH|bad\rRXA|20260302", "in-3", "hl7.ras.pump7")
    assert sent.headers["encounter_id"] == "e1"
    assert queue.ids() == ["other"] and (tally.done, tally.removed) == (1, 2)
    again = requeue_records(queue, PARKING, records, INPUT)  # the consumer's dedup makes it a duplicate
    assert (again.done, again.removed) == (1, 0) and len(queue.published) == 2 and queue.ids() == ["other"]


def test_a_record_not_confirmed_leaves_its_parked_copy() -> None:
    records = [r for r in read_records(export(parked("a"))) if isinstance(r, Record)]
    queue = Queue([parked("a")], refuse=lambda _m: True)
    tally = requeue_records(queue, PARKING, records, INPUT)
    assert queue.ids() == ["a"] and (tally.done, tally.failed, tally.removed) == (0, 1, 0)


def test_a_body_that_is_not_utf8_is_exported_in_base64_and_read_back() -> None:
    body = "MSH|^~\\&|Müller".encode("latin-1")
    (line,) = export(parked("a", body=body))
    assert json.loads(line)["body_base64"] == base64.b64encode(body).decode()
    (record,) = read_records([line])
    assert isinstance(record, Record) and record.body == body


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("MSH|DOE^JANE", "line 1: not a JSON object"),
        ('["DOE"]', "line 1: not a JSON object"),
        ('{"id": "a"}', "line 1: give the message in body (text) or body_base64, one of them"),
        ('{"id": "a", "body": "x", "body_base64": "eA=="}', "line 1: give the message in body"),
        ('{"id": "a", "body_base64": "DOE JANE!"}', "line 1: body_base64 is not base64"),
        ('{"id": 7, "body": "x"}', "line 1: id is not a string"),
        ('{"id": "a", "body": "x", "headers": {"h": {"DOE": 1}}}', "line 1: headers is not an object"),
    ],
)
def test_unusable_lines_are_named_by_number_without_their_content(line: str, problem: str) -> None:
    (found,) = read_records([line])
    assert isinstance(found, RecordError) and str(found).startswith(problem) and "DOE" not in str(found)


def test_codes_that_are_not_codes_never_reach_a_log_line() -> None:
    (record,) = read_records(['{"id": "a", "code": "DOE, JANE", "body": "x"}'])
    assert isinstance(record, Record) and record.code == "unknown"
    assert Selector(codes=frozenset({"DOE, JANE", "not_hl7"})).describe() == "code (not a code),not_hl7"
