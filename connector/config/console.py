"""The ``[console]`` section of ``ivpush serve``: who may act (read-only when nobody is configured), metrics."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator, model_validator

from connector.config.redact import Opaque
from connector.config.section import Section


class ConsoleSection(Section):
    """The review console's credential, session cookie and metrics source.

    Actions (mark reviewed, requeue a parked input, see a parked payload) are enabled only when
    a credential is configured: a user name with its password, a bearer token, or both.
    """

    user: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$",
        description="User name for sign-in and HTTP basic auth (needs `password`; not set: no user).",
    )
    password: Opaque | None = Field(
        default=None,
        description="The user's password, plain or a werkzeug hash `scrypt:…`/`pbkdf2:…` (secret; needs `user`).",
    )
    token: Opaque | None = Field(
        default=None,
        description="Bearer token for scripts and sign-in, at least 16 characters (secret; not set: none).",
    )
    secure_cookie: bool = Field(
        default=False, description="Send the session cookie over HTTPS only (set it behind a TLS reverse proxy)."
    )
    session_minutes: int = Field(
        default=480, ge=1, le=10080, description="A signed-in session lasts this long, minutes."
    )
    metrics_url: str = Field(
        default="http://127.0.0.1:9464/metrics",
        pattern=r"^(https?://\S+)?$",
        description="The consumer's Prometheus endpoint the dashboard scrapes (`ivpush consume`'s `/metrics`, "
        "`[metrics]` host and port); empty: no dashboard.",
    )

    @field_validator("password")
    @classmethod
    def _needs_user(cls, value: Opaque | None, info: ValidationInfo) -> Opaque | None:
        if value is not None and not info.data.get("user"):
            raise ValueError("a console password needs console.user")
        if value is not None and not value.get_secret_value():
            raise ValueError("the console password is empty")
        return value

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: Opaque | None) -> Opaque | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("the console token must have at least 16 characters")
        return value

    @model_validator(mode="after")
    def _user_has_password(self) -> ConsoleSection:
        if self.user and self.password is None:
            raise ValueError("console.user needs console.password")
        return self
