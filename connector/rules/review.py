"""Which lines a person must review, and why (docs/rules.md decisions 21 and 22).

- Times a DST change made ambiguous (§2 "Time"): every line of that local day (decision 21).
- A documented infusion far longer than ordered (decision 22): CPT codes infusion time from
  the documented start and stop, so the documented time is coded; but a duration over twice
  the ordered one *and* at least an hour longer is more often a stop time charted late than
  a slow infusion, so the lines it feeds are flagged, naming both durations.
- Encounter-wide reasons (unknown class, unmapped payer: ``setting.py``) flag every line.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from connector.model import Encounter, Review, ServiceKind
from connector.rules.classify import Service
from connector.rules.units import Unit

DURATION_REVIEW = "duration_review"
UNMAPPED_METHOD = "unmapped_method"
TIME_REVIEW = "time_review"
FAR_BEYOND_FACTOR = 2.0
FAR_BEYOND_MINUTES = 60.0


def duration_reviews(services: Iterable[Service]) -> list[Review]:
    """A review for each timed service documented far beyond its ordered duration."""
    found = []
    for item in services:
        ordered = item.admin.ordered_minutes
        if not ordered or not (item.is_infusion or item.kind is ServiceKind.HYDRATION):
            continue
        documented = item.minutes
        if documented > ordered * FAR_BEYOND_FACTOR and documented - ordered >= FAR_BEYOND_MINUTES:
            detail = (
                f"{item.admin.id}: documented {documented:g} min, ordered over {ordered} min "
                "(check the charted stop time)."
            )
            found.append(Review(DURATION_REVIEW, detail, (item.admin.id,)))
    return found


def method_reviews(unmapped: Iterable[Service]) -> list[Review]:
    """A review for each coded service whose method was sent but is not in the mappings.

    Without a mapped method, push or infusion is decided by the documented duration alone
    (§2); the site should map its code so that a charted "push" is read as one.

    Args:
        unmapped: The services ``classify`` found with such a method
            (``Classified.unmapped_method``, from ``policy.method_of`` on their start date).
    """
    found = []
    for item in unmapped:
        method = item.admin.method
        sent = ", ".join(f"{c.system}|{c.code}" for c in method.codings) or f'"{method.text}"'
        detail = f"{item.admin.id}: method {sent} not in the method mappings (classified by duration)."
        found.append(Review(UNMAPPED_METHOD, detail, (item.admin.id,)))
    return found


def time_reviews(encounter: Encounter) -> list[Review]:
    """A review naming each administration whose local time a DST change made ambiguous."""
    return [
        Review(TIME_REVIEW, f"{admin.id}: {admin.time_review} (local time at a DST change).", (admin.id,))
        for admin in encounter.administrations
        if admin.time_review
    ]


def ambiguous_days(encounter: Encounter) -> frozenset[date]:
    """Local days with an administration whose time a DST change made ambiguous.

    coding-rules.md §2 "Time" flags the line of that administration *and* any line whose
    code would differ under the other reading. Any line of the same day can (sequence,
    initial choice, hour units), so every line of that day is flagged: more review, never a
    silent guess.
    """
    days: set[date] = set()
    for admin in encounter.administrations:
        if admin.time_review:
            days.add(admin.start.date())
            if admin.end is not None:
                days.add(admin.end.date())
    return frozenset(days)


def flag(units: list[Unit], reviews: Iterable[Review], days: frozenset[date]) -> list[Unit]:
    """``needs_review`` (and the reviews' details in the reason) on every unit a review concerns."""
    reviews = list(reviews)
    if not reviews and not days:
        return units
    result = []
    for unit in units:
        details = [
            r.detail for r in reviews if not r.administration_ids or set(r.administration_ids) & set(unit.admin_ids)
        ]
        if details or unit.day in days:
            flags = unit.flags if "needs_review" in unit.flags else (*unit.flags, "needs_review")
            reason = unit.reason + "".join(f" Needs review: {d}" for d in details)
            unit = unit._replace(flags=flags, reason=reason)  # noqa: PLW2901
        result.append(unit)
    return result
