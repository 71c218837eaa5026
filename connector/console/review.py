"""The review queue page, the encounter page's review panel, and the "mark reviewed" action.

- ``GET /review``: the queue (``connector.console.queue``), oldest first, paged.
- The encounter page includes ``review_panel.html``, which calls the template function
  ``review_panel(key)``: what needs review (as stored), the marks made (when, who, note, and
  whether what they reviewed is still what the encounter holds) and, for a signed-in actor,
  the form.
- ``POST /encounter/<key>/review`` (``security.action``): appends a ``ReviewMark`` — the
  console's clock (UTC), the actor, the note, the basis — in one short write transaction, then
  redirects (303) to the encounter page. It changes no coding: no state, line, outcome or
  message is written. The form carries the basis the page showed; if the encounter changed
  since, nothing is recorded (409) and the page says to look again. A note is required (1 to
  ``NOTE_MAX`` characters).

The note is never logged (nor the actor's name): the log says that a mark was recorded, by a
user or a token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask, abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from connector.console import encounter as encounter_page
from connector.console import security
from connector.console.queue import PAGE_SIZE, QueueError, QueueQuery, queue
from connector.console.reader import Source, WritableSource
from connector.model.reviews import NOTE_MAX, ReviewMark, ReviewNeed, check_note, review_need
from connector.policy.model import Policy

LOG = logging.getLogger("ivpush.console")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The console's wall clock, an aware UTC instant."""
    return datetime.now(UTC)  # the console is the shell: it stamps review marks (TID251 off for connector/console)


@dataclass(frozen=True, slots=True)
class MarkRow:
    """A review mark as the encounter page lists it."""

    at: str
    actor: str
    note: str
    current: bool


@dataclass(frozen=True, slots=True)
class ReviewPanel:
    """The encounter page's review section.

    Attributes:
        need: What needs review now (from the stored outcomes and charged lines).
        marks: The marks made, oldest first.
        reviewed: Whether a mark reviewed what the encounter holds now.
        writable: Whether the state takes marks (actions enabled).
    """

    need: ReviewNeed
    marks: tuple[MarkRow, ...]
    reviewed: bool
    writable: bool


def stamp(at: datetime) -> str:
    """``2026-03-04T15:30:12Z`` (UTC, to the second)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def panel(source: Source, key: str) -> ReviewPanel:
    """The review section of encounter ``key``."""
    with source.read() as reader:
        need = review_need(reader.emitted(key).values(), reader.outcomes(key))
        marks = reader.reviews(key)
    rows = tuple(MarkRow(stamp(m.at), m.actor, m.note, m.basis == need.basis) for m in marks)
    writable = isinstance(source, WritableSource) and source.writable
    return ReviewPanel(need, rows, any(row.current for row in rows), writable)


def register(app: Flask, source: Source, policy: Policy, page_size: int = PAGE_SIZE, clock: Clock = utc_now) -> None:
    """Add the queue page, the ``review_panel`` template function and the mark action.

    Args:
        app: The console.
        source: Its state (marks are written only to a ``WritableSource`` opened writable).
        policy: The mappings the encounter page codes with (shown again after a refused mark).
        page_size: Encounters per page of the queue.
        clock: The console's wall clock (UTC), read when a mark is made.
    """
    app.jinja_env.globals.update(review_panel=lambda key: panel(source, key), NOTE_MAX=NOTE_MAX)

    @app.get("/review")
    def review_queue() -> ResponseReturnValue:
        try:
            query = QueueQuery.parse(request.args)
        except QueueError as error:
            return render_template("review.html", query=QueueQuery(), error=str(error), page=None), 400
        return render_template("review.html", query=query, error="", page=queue(source, query, page_size))

    @security.action
    def mark_reviewed(key: str) -> ResponseReturnValue:
        if not (isinstance(source, WritableSource) and source.writable):
            abort(403, "The state was opened read-only.")
        typed = request.form.get("note", "")
        try:
            note = check_note(typed)
        except ValueError as error:
            return _again(source, policy, key, str(error), typed, 400)
        shown = request.form.get("basis", "")
        actor = security.actor() or ""
        with source.write() as tx:
            tx.lock([key])
            if tx.get(key) is None:
                abort(404)
            need = review_need(tx.emitted(key).values(), tx.outcomes(key))
            if not need.needed:
                refused = "Nothing in this encounter needs review now: no mark was recorded."
            elif shown and shown != need.basis:
                refused = (
                    "This encounter changed after the page was shown: no mark was recorded. "
                    "Look at it again, then mark it reviewed."
                )
            else:
                refused = ""
                tx.add_review(ReviewMark(key, clock(), actor, note, need.basis))
        if refused:
            return _again(source, policy, key, refused, typed, 409)
        by = "token" if actor == security.TOKEN_ACTOR else "user"
        LOG.info("console: review mark recorded", extra={"event": "review_marked", "by": by})
        return redirect(url_for("encounter", key=key, _anchor="review"), 303)

    app.add_url_rule("/encounter/<path:key>/review", "mark_reviewed", mark_reviewed, methods=["POST"])


def _again(source: Source, policy: Policy, key: str, error: str, typed: str, status: int) -> ResponseReturnValue:
    """The encounter page again, with why nothing was recorded and the note as typed."""
    found = encounter_page.load(source, key, policy)
    if found is None:
        abort(404)
    return render_template("encounter.html", e=found, review_error=error, review_note=typed), status
