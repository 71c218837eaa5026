"""The console's WSGI application (Flask): search and encounter pages, read-only, strict headers.

``create_app(source, policy)`` builds it over a state (``reader.Source``) and the loaded
mappings. Pages are rendered on the server (Jinja2, autoescaped); the console needs no
JavaScript and loads nothing from other sites: its one stylesheet is served from ``static/``.

Every response carries a Content-Security-Policy that allows only this origin and no inline
script or style, ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` (a
search URL may hold a patient id), ``X-Frame-Options: DENY`` and ``Cache-Control: no-store``.
Only GET and HEAD are served, and POST to the views marked as actions (``security``): those
need a configured credential, a signed-in (or basic/bearer-authenticated) actor and the form's
CSRF token.

The access log (logger ``ivpush.console.access``) has one line per request: method, path
*without its query string* (search fields may hold a patient id), status, bytes and time. A
request refused or not found is logged by its route (``/encounter/<path:key>``, ``(no route)``),
never by the path as sent (someone may type anything into a URL). Request parameters are never
logged, nor the text of an exception (only its class).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from flask import Flask, abort, g, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from connector.console import dashboard, parked_pages, review, security, signin
from connector.console import encounter as encounter_page
from connector.console.dashboard import Scraper
from connector.console.parked_queue import ParkedQueue
from connector.console.reader import Source, StateError
from connector.console.search import FLAGS, Query, QueryError, search
from connector.console.security import Credentials
from connector.policy.model import Policy

ACCESS = logging.getLogger("ivpush.console.access")
LOG = logging.getLogger("ivpush.console")
HERE = Path(__file__).parent
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
}


def create_app(
    source: Source,
    policy: Policy,
    page_size: int = 25,
    credentials: Credentials | None = None,
    parked: ParkedQueue | None = None,
    metrics: Scraper | None = None,
) -> Flask:
    """The console over ``source``, coding with ``policy`` (the same mappings ``explain`` would load).

    Args:
        source: The state, read-only.
        policy: The loaded mappings and payer policies.
        page_size: Encounters per page of search results.
        credentials: Who may act (default: nobody; the console is read-only).
        parked: The parking queue of inputs (default: none configured; the parked pages say so).
        metrics: The scraper of the consumer's metrics (default: none; the dashboard says so).
    """
    app = Flask("connector.console", template_folder=str(HERE / "templates"), static_folder=str(HERE / "static"))
    app.config.update(MAX_CONTENT_LENGTH=64 * 1024, TEMPLATES_AUTO_RELOAD=False, SEND_FILE_MAX_AGE_DEFAULT=0)
    security.install(app, credentials or Credentials())
    app.jinja_env.autoescape = True
    app.jinja_env.globals["FLAGS"] = FLAGS
    app.jinja_env.filters["dict_without"] = _without
    app.jinja_env.filters["dict_with"] = _with

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        if request.method in ("GET", "HEAD"):
            return
        view = app.view_functions.get(request.endpoint or "")
        if request.method != "POST" or not security.allows_post(view):
            abort(405)

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.update(HEADERS)
        rule = request.url_rule.rule if request.url_rule is not None else "(no route)"
        path = request.script_root + request.path if response.status_code < 400 else rule
        elapsed = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        ACCESS.info(
            "%s %s %d %s %.1fms", request.method, path, response.status_code, response.content_length or "-", elapsed,
            extra={"method": request.method, "path": path, "status": response.status_code, "ms": round(elapsed, 1)},
        )  # fmt: skip
        return response

    signin.register(app)
    review.register(app, source, policy, page_size)
    parked_pages.register(app, parked or ParkedQueue())
    dashboard.register(app, metrics or Scraper(""))

    @app.get("/")
    def search_page() -> ResponseReturnValue:
        try:
            query = Query.parse(request.args)
        except QueryError as error:
            return render_template("search.html", query=Query(), args=request.args, error=str(error), page=None), 400
        page = search(source, query, page_size=page_size)
        return render_template("search.html", query=query, args=request.args, error="", page=page)

    @app.get("/encounter/<path:key>")
    def encounter(key: str) -> ResponseReturnValue:
        found = encounter_page.load(source, key, policy)
        if found is None:
            abort(404)
        return render_template("encounter.html", e=found)

    @app.errorhandler(StateError)
    def _state_error(error: StateError) -> ResponseReturnValue:
        LOG.error("console: the state cannot be read (%s)", type(error.__cause__ or error).__name__)
        return render_template("error.html", status=503, message="The state cannot be read just now."), 503

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> ResponseReturnValue:
        status = error.code or 500
        detail = error.description or ""  # our refusals' fixed sentences, or werkzeug's own
        return render_template("error.html", status=status, message=error.name, detail=detail), status

    @app.errorhandler(Exception)
    def _error(error: Exception) -> ResponseReturnValue:  # the class only: its text may quote a value
        LOG.error("console: %s while answering %s", type(error).__name__, request.url_rule or "(no route)")
        return render_template("error.html", status=500, message="Something went wrong."), 500

    return app


def _without(fields: dict[str, str], name: str) -> dict[str, str]:
    """The form fields without ``name`` (the first page of a search)."""
    return {key: value for key, value in fields.items() if key != name}


def _with(fields: dict[str, str], name: str, value: str) -> dict[str, str]:
    """The form fields with ``name`` set to ``value`` (the next page of a search)."""
    return {**fields, name: value}
