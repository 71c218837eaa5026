"""``/sign-in`` and ``/sign-out``: a session for a person, with the configured user or token."""

from __future__ import annotations

import logging

from flask import Flask, abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from connector.console import security
from connector.console.security import TOKEN_ACTOR, credentials_of

LOG = logging.getLogger("ivpush.console")


def register(app: Flask) -> None:
    """Add the sign-in and sign-out routes."""

    @app.get("/sign-in")
    def sign_in_page() -> ResponseReturnValue:
        if not credentials_of(app).actions:
            abort(404)
        return render_template("signin.html", error="", next=request.args.get("next", ""))

    def sign_in() -> ResponseReturnValue:
        credentials = credentials_of(app)
        if not credentials.actions:
            abort(404)
        security.check_same_site()
        security.check_csrf()  # a sign-in form posted from elsewhere is refused too
        form = request.form
        name: str | None = None
        if form.get("token"):
            name = TOKEN_ACTOR if security.attempt(lambda: credentials.token_matches(form["token"])) else None
        elif security.attempt(lambda: credentials.password_matches(form.get("user", ""), form.get("password", ""))):
            name = credentials.user
        if name is None:
            LOG.warning("console: sign-in refused", extra={"event": "sign_in_refused"})
            page = render_template("signin.html", error="That did not match.", next=form.get("next", ""))
            return page, 401
        security.sign_in(name)
        LOG.info("console: signed in", extra={"event": "sign_in", "by": "token" if name == TOKEN_ACTOR else "user"})
        return redirect(security.safe_next(form.get("next"), url_for("search_page")), 303)

    def sign_out() -> ResponseReturnValue:
        security.check_same_site()
        security.check_csrf()
        security.sign_out()
        return redirect(url_for("search_page"), 303)

    for view in (sign_in, sign_out):
        setattr(view, security.ACTIONS, True)  # POST allowed; each checks its own CSRF token
    app.add_url_rule("/sign-in", "sign_in", sign_in, methods=["POST"])
    app.add_url_rule("/sign-out", "sign_out", sign_out, methods=["POST"])
