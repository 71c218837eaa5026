"""The parked pages' filters: a reject code, and a window of parking times typed as ISO times or ages."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connector.bus.parked import Selector

CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
AGE = re.compile(r"([0-9]{1,12}(?:\.[0-9]{1,9})?)\s*([smhdw])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_AGE = 3650 * 86400  # seconds: an age longer than ten years is refused
MAX_TIME = 64  # characters of a typed time


class FilterError(ValueError):
    """A filter that cannot be read (the message names the field, never its value)."""


@dataclass(frozen=True)
class Filters:
    """The list's filters, as typed (``since``/``until``: ISO 8601, UTC without an offset, or an age such as 2h).

    Attributes:
        code: Reject code (empty: any).
        since: Parked at or after.
        until: Parked before.
        page: Page of the list, from 1.
    """

    code: str = ""
    since: str = ""
    until: str = ""
    page: int = 1

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> Filters:
        """Read the filters of a query string or form.

        Raises:
            FilterError: A code, time or page that cannot be read.
        """
        code = args.get("code", "").strip()
        if code and not CODE.fullmatch(code):
            raise FilterError("Code: a reject code such as missing_encounter_key.")
        page = args.get("page", "1").strip() or "1"
        if not re.fullmatch(r"[0-9]{1,5}", page) or not 1 <= int(page) <= 10_000:
            raise FilterError("Page: a page number.")
        since, until = args.get("since", "").strip(), args.get("until", "").strip()
        for label, text in (("Since", since), ("Until", until)):
            if len(text) > MAX_TIME:
                raise FilterError(f"{label}: an ISO 8601 time such as 2026-03-02T10:00 (UTC) or an age such as 2h.")
        found = cls(code, since, until, int(page))
        found.selector(datetime.now(UTC))  # the times can be read
        return found

    def selector(self, now: datetime, pinned: bool = False) -> Selector:
        """The selection these filters describe, ages counted back from ``now`` (``pinned``: ending at ``now``)."""
        from connector.bus.parked import Selector

        typed = moment(self.since, now, "Since"), moment(self.until, now, "Until")
        since, until = self.window(now) if pinned else typed
        return Selector(codes=frozenset({self.code} if self.code else ()), since=since, until=until)

    def window(self, now: datetime) -> tuple[datetime | None, datetime]:
        """``since`` and ``until`` as instants, ``until`` no later than ``now``."""
        since, until = moment(self.since, now, "Since"), moment(self.until, now, "Until")
        return since, now if until is None else min(until, now)

    def fields(self, **changes: object) -> dict[str, str]:
        """The filters given, as query fields (for links), with ``changes``."""
        values = asdict(self) | changes
        return {key: str(value) for key, value in values.items() if value and not (key == "page" and value == 1)}

    @property
    def narrowed(self) -> bool:
        """Some filter is given (a set requeue needs one)."""
        return bool(self.code or self.since or self.until)


def moment(text: str, now: datetime, label: str) -> datetime | None:
    """An ISO 8601 date or time (UTC without an offset) or an age meaning that long before ``now``.

    Raises:
        FilterError: Neither.
    """
    if not text:
        return None
    age = AGE.fullmatch(text)
    if age is not None:
        seconds = float(age.group(1)) * UNITS[age.group(2)]
        if seconds > MAX_AGE:
            raise FilterError(f"{label}: an age of at most 3650 days.")
        try:
            return now - timedelta(seconds=seconds)
        except OverflowError:
            raise FilterError(f"{label}: an age of at most 3650 days.") from None
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise FilterError(f"{label}: an ISO 8601 time such as 2026-03-02T10:00 (UTC) or an age such as 2h.") from None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)
