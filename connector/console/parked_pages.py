"""``/parked``: the parked inputs by reason code and time; one message; requeue one or a filtered set.

The list never shows a payload, and shows ids only to a signed-in reader; a message's page
shows its properties and reason headers to anyone, its ids, other headers and (on request) its
payload only to a signed-in reader. Requeueing is an action (``security.action``): one message
from its page (by its parked id only), or a filtered set after a page that counts it. That page
resolves the times to instants, ends the window at the count's time, and posts the refs of the
messages it counted (at most ``MAX_REFS``; more: the window and the count bound the set), so a
message parked since is not requeued. Logs hold counts, codes, times and who acted (``user`` or
``token``), never an id or a payload.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from flask import Flask, abort, flash, get_flashed_messages, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from connector.console import security
from connector.console.parked_filters import MAX_TIME, FilterError, Filters
from connector.console.parked_queue import (
    DELIVERY_WARNING,
    MAX_REFS,
    MAX_SCAN,
    BrokerProblem,
    ParkedQueue,
    Surveys,
    deliveries,
)

if TYPE_CHECKING:
    from connector.bus.parked import Parked, Selector, Tally

LOG = logging.getLogger("ivpush.console")
PAGE = 50
REF = re.compile(r"[0-9a-f]{32}")
COUNT = re.compile(r"[0-9]{1,6}")
REASON_HEADERS = ("x-ivpush-error", "x-ivpush-detail", "x-ivpush-queue", "x-ivpush-parked-at", "x-ivpush-source")


class Refusal(Exception):
    """A request the parked pages answer with an error page saying why (status and text)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _filters(parked: ParkedQueue) -> Filters | ResponseReturnValue:
    """The request's filters, or the list page saying why there is nothing to read (400, 503)."""
    try:
        filters = Filters.parse(request.args)
    except FilterError as error:
        return _page("parked.html", filters=Filters(), error=str(error), survey=None), 400
    if not parked.available:
        return _page("parked.html", filters=filters, error=parked.problem, survey=None), 503
    return filters


def register(app: Flask, parked: ParkedQueue) -> None:
    """Add the parked pages over ``parked`` (a queue with ``problem`` set: the pages say why they are empty)."""
    surveys = Surveys()
    app.jinja_env.globals["delivery_warning"] = DELIVERY_WARNING

    @app.get("/parked")
    def parked_list() -> ResponseReturnValue:
        filters = _filters(parked)
        if not isinstance(filters, Filters):
            return filters
        now, skip = datetime.now(UTC), (filters.page - 1) * PAGE
        survey = surveys.get(("list", filters), lambda: parked.survey(filters.selector(now), skip, PAGE, now))
        return _page("parked.html", filters=filters, error="", survey=survey, page_size=PAGE)

    @app.get("/parked/<ref>")
    def parked_message(ref: str) -> ResponseReturnValue:
        found, most = _find(parked, ref)
        signed_in = security.actor() is not None
        text = None
        if signed_in and request.args.get("payload") == "1":
            LOG.info("console: parked payload shown", extra={"event": "parked_payload_shown", "code": found.code})
            text = found.delivery.body.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
        values = _shown(found) | {"deliveries": deliveries(found), "most_delivered": most}
        return _page("parked_message.html", m=found, ref=ref, signed_in=signed_in, payload_text=text, **values)

    @security.action
    def parked_requeue_one(ref: str) -> ResponseReturnValue:
        from connector.bus.parked import Selector

        found, _ = _find(parked, ref)
        if not found.id:
            raise Refusal(409, "This message has no id: requeue it with a filter (its code and time).")
        tally = parked.requeue(Selector(ids=frozenset({found.id}), parked_ids_only=True))
        surveys.clear()
        _log(tally, "requeue one")
        flash(_said(tally.done, tally.matched, tally.failed))
        return redirect(url_for("parked_list"), 303)

    @app.get("/parked/requeue")
    def parked_requeue_confirm() -> ResponseReturnValue:
        filters = _filters(parked)
        if not isinstance(filters, Filters):
            return filters
        now = datetime.now(UTC)
        counted = filters.selector(now, pinned=True)
        survey = surveys.get(("requeue", filters), lambda: parked.survey(counted, 0, 0, now, refs=True))
        since, until = filters.window(survey.at or now)
        window = {"from": since.isoformat() if since else "", "to": until.isoformat()}
        return _page("parked_requeue.html", filters=filters, survey=survey, window=window)

    @security.action
    def parked_requeue_set() -> ResponseReturnValue:
        filters, selector, expected = _confirmed(parked)
        tally = parked.requeue(selector, limit=expected)
        surveys.clear()
        _log(tally, "requeue filtered")
        flash(_said(tally.done, tally.matched, tally.failed))
        return redirect(url_for("parked_list", **filters.fields(page=1)), 303)  # type: ignore[arg-type]

    app.add_url_rule("/parked/<ref>/requeue", "parked_requeue_one", parked_requeue_one, methods=["POST"])
    app.add_url_rule("/parked/requeue", "parked_requeue_set", parked_requeue_set, methods=["POST"])

    @app.errorhandler(BrokerProblem)
    def _broker(error: BrokerProblem) -> ResponseReturnValue:
        LOG.warning("console: parked inputs unavailable (%s)", type(error.__cause__ or error).__name__)
        return render_template("error.html", status=503, message=str(error)), 503

    @app.errorhandler(Refusal)
    def _refused(error: Refusal) -> ResponseReturnValue:
        return render_template("error.html", status=error.status, message=str(error)), error.status


def _page(template: str, **values: object) -> str:
    return render_template(template, notices=get_flashed_messages(), **values)


def _find(parked: ParkedQueue, ref: str) -> tuple[Parked, int]:
    """The message named by ``ref`` and the most deliveries of the messages read (404: none)."""
    if not REF.fullmatch(ref):
        abort(404)
    if not parked.available:
        raise BrokerProblem(parked.problem)
    found, most = parked.find(ref)
    if found is None:
        raise Refusal(404, "No such parked input: it may have been requeued or purged.")
    return found, most


def _confirmed(parked: ParkedQueue) -> tuple[Filters, Selector, int]:
    """The form of a confirm page: its filters as typed, the selection it counted and the count.

    The selection is the posted window (instants) and, when posted, the refs counted.

    Raises:
        Refusal: A form no confirm page posts.
    """
    from connector.bus.parked import Selector

    try:
        filters = Filters.parse(request.form)
    except FilterError as error:
        raise Refusal(400, str(error)) from None
    expected = request.form.get("expected", "")
    if not filters.narrowed or not COUNT.fullmatch(expected) or not 1 <= int(expected) <= MAX_SCAN:
        raise Refusal(400, "Give a filter and confirm the count first.")
    since, until = _instant(request.form.get("from", "")), _instant(request.form.get("to", ""))
    refs = frozenset(request.form.getlist("ref"))
    if until is None or len(refs) > MAX_REFS or not all(REF.fullmatch(ref) for ref in refs):
        raise Refusal(400, "Confirm the count first: open the requeue page again.")
    codes = frozenset({filters.code} if filters.code else ())
    named = (lambda found: parked.ref(found) in refs) if refs else None
    return filters, Selector(codes=codes, since=since, until=until, also=named), int(expected)


def _instant(text: str) -> datetime | None:
    """An instant a confirm page posted (ISO 8601 with an offset; empty: None).

    Raises:
        Refusal: Not one.
    """
    if not text:
        return None
    try:
        found = datetime.fromisoformat(text) if len(text) <= MAX_TIME else None
    except ValueError:
        found = None
    if found is None or found.tzinfo is None:
        raise Refusal(400, "Confirm the count first: open the requeue page again.")
    return found


def _shown(found: Parked) -> dict[str, object]:
    """What the message page shows: its reason headers (anyone) and its other headers (signed-in)."""
    from connector.bus.parked_records import kept_headers

    headers = found.delivery.headers
    reason = {name: _text(headers[name]) for name in REASON_HEADERS if name in headers}
    return {"reason_headers": reason, "other_headers": kept_headers(headers)}


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _said(done: int, matched: int, failed: int) -> str:
    text = f"Requeued {done} of {matched} parked input{'s' if matched != 1 else ''} to the input exchange."
    return text + (f" {failed} not confirmed: still parked, try again." if failed else "")


def _log(tally: Tally, action: str) -> None:
    """One line: the action, who (user or token) and the counts."""
    by = "token" if security.actor() == security.TOKEN_ACTOR else "user"
    counts = {"matched": tally.matched, "done": tally.done, "failed": tally.failed, "removed": tally.removed}
    LOG.info(
        "console: parked %s by %s: %d matched, %d requeued, %d failed, %d removed", action, by, *counts.values(),
        extra={"event": "parked_requeue", "by": by, **counts},
    )  # fmt: skip
