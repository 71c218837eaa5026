"""Who may act in the console, and proof that a submitted form is the console's own (CSRF).

The console is read-only unless a credential is configured (``[console]``: ``user`` with
``password``, ``token``, or both). Then a person signs in on ``/sign-in`` (a session cookie,
signed with a key made at start-up, ``HttpOnly``, ``SameSite=Strict``, ``Secure`` when
``secure_cookie`` is set) or a script sends ``Authorization: Basic …`` or ``Authorization:
Bearer <token>`` with every request.

Every action is a POST that must carry the session's CSRF token in the ``csrf_token`` field,
except a request authenticated by a bearer token (a browser never adds that header by itself,
so a forged cross-site form cannot carry it). A ``Sec-Fetch-Site`` header naming another site
is refused as well. Secrets are compared in constant time; a failed sign-in is logged without
the name typed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import TYPE_CHECKING, ParamSpec, TypeVar
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, g, request, session
from werkzeug.security import check_password_hash

if TYPE_CHECKING:
    from connector.config.console import ConsoleSection

LOG = logging.getLogger("ivpush.console")
HASH_PREFIXES = ("scrypt:", "pbkdf2:")
CSRF_FIELD = "csrf_token"
ACTIONS = "ivpush_actions"  # the view attribute that marks an action (POST allowed)
TOKEN_ACTOR = "token"  # noqa: S105 - the actor name of a token sign-in, not a secret
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Credentials:
    """The configured credential (empty: the console is read-only).

    Attributes:
        user: The user name (empty: none).
        password: Its password, plain or a werkzeug hash (``scrypt:…``, ``pbkdf2:…``).
        token: The bearer token (empty: none).
        secure_cookie: Send the session cookie over HTTPS only.
        session_minutes: How long a sign-in lasts.
    """

    user: str = ""
    password: str = ""
    token: str = ""
    secure_cookie: bool = False
    session_minutes: int = 480

    @classmethod
    def from_section(cls, section: ConsoleSection) -> Credentials:
        """From the settings' ``[console]`` section."""
        return cls(
            user=section.user or "",
            password=section.password.get_secret_value() if section.password is not None else "",
            token=section.token.get_secret_value() if section.token is not None else "",
            secure_cookie=section.secure_cookie,
            session_minutes=section.session_minutes,
        )

    @property
    def actions(self) -> bool:
        """Whether actions are enabled: a user with a password, or a token, is configured."""
        return bool(self.user and self.password) or bool(self.token)

    def password_matches(self, user: str, password: str) -> bool:
        """The user and password given are the configured ones (constant time for the user)."""
        if not (self.user and self.password):
            return False
        same_user = hmac.compare_digest(user.encode(), self.user.encode())
        if self.password.startswith(HASH_PREFIXES):
            same_password = check_password_hash(self.password, password)
        else:
            same_password = hmac.compare_digest(password.encode(), self.password.encode())
        return same_user and same_password

    def token_matches(self, token: str) -> bool:
        """The token given is the configured one."""
        return bool(self.token) and hmac.compare_digest(token.strip().encode(), self.token.encode())


def install(app: Flask, credentials: Credentials) -> None:
    """Configure the session cookie and the template helpers (``actor``, ``csrf_token``, ``actions``)."""
    app.secret_key = secrets.token_bytes(32)  # sessions end when the console restarts
    app.config.update(
        SESSION_COOKIE_NAME="ivpush_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=credentials.secure_cookie,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=credentials.session_minutes),
        SESSION_REFRESH_EACH_REQUEST=False,  # session_minutes is the sign-in's lifetime, not an idle time-out
    )
    app.extensions["ivpush_credentials"] = credentials
    app.extensions["ivpush_signed_out"] = SignedOut(credentials.session_minutes * 60.0)
    app.extensions["ivpush_failures"] = Failures()
    app.jinja_env.globals.update(actor=actor, csrf_token=csrf_token, actions_enabled=credentials.actions)


def credentials_of(app: Flask) -> Credentials:
    """The credentials ``install`` gave the app."""
    found: Credentials = app.extensions["ivpush_credentials"]
    return found


def actor() -> str | None:
    """Who makes this request: the signed-in user, the basic-auth user, ``token``, or ``None``."""
    if "actor" not in g:
        g.actor, g.by_token = None, False  # a refusal while checking (429) renders a page that asks again
        g.actor, g.by_token = _authenticate()
    found: str | None = g.actor
    return found


def csrf_token() -> str:
    """The session's CSRF token (made on first use), for the hidden field of every form."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def sign_in(name: str) -> None:
    """Start a signed-in session for ``name`` (a fresh CSRF token too)."""
    session.clear()
    session.permanent = True
    session["actor"] = name
    session["sid"] = secrets.token_urlsafe(16)
    session["at"] = time.time()
    session["csrf"] = secrets.token_urlsafe(32)
    g.pop("actor", None)


def sign_out() -> None:
    """End the session: its id is remembered as signed out, so a copy of the cookie no longer signs in."""
    sid, at = session.get("sid"), session.get("at")
    if isinstance(sid, str) and isinstance(at, float | int):
        current_app.extensions["ivpush_signed_out"].add(sid, float(at))
    session.clear()
    g.pop("actor", None)


def action(view: Callable[P, R]) -> Callable[P, R]:
    """Mark a view as an action: enabled credentials, an authenticated actor, a valid CSRF token.

    Refusals: 403 when the console is read-only or the request comes from another site; 401 when
    nobody is authenticated; 400 when the form's CSRF token is missing or wrong.
    """

    @wraps(view)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        check_action()
        return view(*args, **kwargs)

    setattr(guarded, ACTIONS, True)
    return guarded


def check_action() -> None:
    """Refuse the request unless it may act (see ``action``)."""
    if not credentials_of(current_app).actions:
        abort(403, "The console is read-only: no credential is configured.")
    check_same_site()
    if actor() is None:
        abort(401)
    if not g.by_token:
        check_csrf()


def check_same_site() -> None:
    """Refuse a request a browser says comes from another site."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        abort(403, "Refused: the request came from another site.")


def check_csrf() -> None:
    """Refuse a form without this session's CSRF token."""
    expected, given = session.get("csrf"), request.form.get(CSRF_FIELD, "")
    if not isinstance(expected, str) or not hmac.compare_digest(given.encode(), expected.encode()):
        abort(400, "The form has expired or did not come from this console: reload the page and try again.")


def allows_post(view: object) -> bool:
    """Whether the view answers POST (an action, or sign-in and sign-out)."""
    return bool(getattr(view, ACTIONS, False))


def _authenticate() -> tuple[str | None, bool]:
    """The actor and whether a bearer token proved it."""
    credentials = credentials_of(current_app)
    if not credentials.actions:
        return None, False
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return (TOKEN_ACTOR, True) if attempt(lambda: credentials.token_matches(value)) else (None, False)
    if scheme.lower() == "basic":
        user, password = _basic(value)
        matched = attempt(lambda: credentials.password_matches(user, password))
        return (credentials.user, False) if matched else (None, False)
    signed_in, sid, at = session.get("actor"), session.get("sid"), session.get("at")
    if not (isinstance(signed_in, str) and signed_in and signed_in in (credentials.user, TOKEN_ACTOR)):
        return None, False
    if not isinstance(sid, str) or not isinstance(at, float | int):
        return None, False
    if time.time() - at >= credentials.session_minutes * 60 or current_app.extensions["ivpush_signed_out"].has(sid):
        return None, False
    return signed_in, False


def _basic(value: str) -> tuple[str, str]:
    """User and password of a basic-auth header value (empty when malformed)."""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    user, _, password = decoded.partition(":")
    return user, password


def safe_next(target: str | None, default: str) -> str:
    r"""A redirect target after sign-in: a path of this site only (never ``//other`` or a URL).

    Browsers drop tabs and line ends from URLs (``/\t/evil`` is ``//evil``), so any control
    character refuses the target, as do a backslash, a scheme or a host.
    """
    if not target or not target.startswith("/") or "\\" in target:
        return default
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in target) or target.startswith("//"):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


class SignedOut:
    """Session ids signed out in this process, kept until their sign-in would have expired anyway."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self._ended: dict[str, float] = {}  # session id -> when it was signed in
        self._lock = threading.Lock()

    def add(self, sid: str, signed_in_at: float) -> None:
        """Remember ``sid`` as signed out (and forget those that expired)."""
        now = time.time()
        with self._lock:
            self._ended = {key: at for key, at in self._ended.items() if now - at < self.lifetime}
            self._ended[sid] = signed_in_at

    def has(self, sid: str) -> bool:
        """Whether ``sid`` was signed out."""
        with self._lock:
            return sid in self._ended


class Failures:
    """Failed credential checks of the last minute, for the whole console.

    Behind a proxy every client has the proxy's address: there is no per-client count worth keeping.
    """

    LIMIT = 10
    WINDOW = 60.0

    def __init__(self) -> None:
        self._at: list[float] = []
        self._lock = threading.Lock()

    def throttled(self) -> bool:
        """Whether ``LIMIT`` checks failed within ``WINDOW`` seconds."""
        now = time.time()
        with self._lock:
            self._at = [at for at in self._at if now - at < self.WINDOW]
            return len(self._at) >= self.LIMIT

    def failed(self) -> None:
        """Count one failed check."""
        with self._lock:
            self._at.append(time.time())


def attempt(check: Callable[[], bool]) -> bool:
    """Run a credential check unless too many failed lately (then 429).

    Guessing is slowed down, and a basic-auth header on every request cannot keep the console
    hashing passwords.
    """
    failures: Failures = current_app.extensions["ivpush_failures"]
    if failures.throttled():
        LOG.warning("console: credential checks paused after repeated failures", extra={"event": "sign_in_throttled"})
        abort(429, "Too many failed sign-ins: try again in a minute.")
    matched = check()
    if not matched:
        failures.failed()
    return matched
