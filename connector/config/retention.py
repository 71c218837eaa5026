"""The ``[retention]`` section: how long parked messages, dedup keys and sent outbox rows are kept.

Parked messages expire by a RabbitMQ **policy** on the parking queues (``message-ttl``), which
``ivpush parked policy`` prints for an administrator: a policy applies to queues that exist and
can be changed or removed at any time, whereas ``x-message-ttl`` as a queue argument cannot be
changed on an existing queue (and every ivpush process re-declares the queues at connect, so it
would fail against a queue declared without it). Dedup keys and sent outbox rows are deleted by
``ivpush state purge`` and, with ``state_days`` set, by the consumer every ``purge_seconds``.
"""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from connector.config.section import Section

DAY = 86400.0


class RetentionSection(Section):
    """How long what piles up is kept: parked messages (broker policy) and the store's old rows."""

    parked_days: float = Field(
        default=0.0,
        ge=0,
        description="Parked messages expire after this many days (the policy `ivpush parked policy` prints); "
        "0: kept until purged.",
    )
    state_days: float = Field(
        default=0.0,
        ge=0,
        description="Dedup keys and sent outbox rows older than this many days are deleted by the consumer "
        "and `ivpush state purge`; 0: kept for ever.",
    )
    purge_seconds: float = Field(
        default=3600.0, gt=0, description="Seconds between the consumer's purges (with `state_days`)."
    )

    @field_validator("state_days")
    @classmethod
    def _keys_outlive_parked(cls, state_days: float, info: ValidationInfo) -> float:
        parked_days = info.data.get("parked_days") or 0.0
        if state_days and parked_days and state_days < parked_days:
            raise ValueError(
                f"must be at least retention.parked_days ({parked_days:g}): an input parked, applied meanwhile by "
                "a resend and requeued after its dedup key was purged would be charged twice"
            )
        return state_days

    @property
    def keep_seconds(self) -> float | None:
        """Age beyond which store rows are purged (None: never)."""
        return self.state_days * DAY if self.state_days else None

    @property
    def message_ttl(self) -> int | None:
        """The parking policy's ``message-ttl`` in milliseconds (None: no expiry)."""
        return round(self.parked_days * DAY * 1000) if self.parked_days else None
