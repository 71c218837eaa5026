"""Step 2: choose the one initial service of the encounter (coding rules §3, §4).

Facility hierarchy (CPT via HCPro 2010, Revenue Cycle Advisor 2018): chemotherapy infusion >
chemotherapy push > therapeutic infusion > therapeutic push > hydration; the hierarchy
overrides add-on parentheticals. Ties: earliest start, then the stable administration id.
IM/SQ injections do not compete. Professional claims (findacode; AAPC Part B Alert; JUCM):
the primary reason for the encounter, taken from the feed's ``primary`` flag; without it
the facility hierarchy with a ``needs_review`` marker. A second initial only for a separate
vascular access site, when the payer policy allows it (CMS RAC topic 0071; default off).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from connector.model import ClaimType, ServiceKind
from connector.policy.model import PayerPolicy
from connector.rules.classify import Service

HIERARCHY = (
    ServiceKind.CHEMO_INFUSION,
    ServiceKind.CHEMO_PUSH,
    ServiceKind.INFUSION,
    ServiceKind.PUSH,
    ServiceKind.HYDRATION,
)
RANK = {kind: rank for rank, kind in enumerate(HIERARCHY)}


class Candidate(NamedTuple):
    """A service that could be the initial one: a push, an infusion drug group, hydration.

    Internal and created once per push, so a NamedTuple; compared by identity (``is``).
    """

    kind: ServiceKind
    members: tuple[Service, ...]

    @property
    def first(self) -> Service:
        """The earliest member (members are sorted by start, id)."""
        return self.members[0]

    @property
    def start(self) -> datetime:
        """When the candidate began."""
        return self.first.start

    @property
    def site(self) -> str:
        """Documented access site of the first member."""
        return self.first.admin.site

    def sort_key(self) -> tuple[int, datetime, str]:
        """Hierarchy rank, then earliest start, then stable id."""
        first = self.members[0]
        return (HIERARCHY.index(self.kind), first.start, first.admin.id)  # = RANK[kind], without hashing an enum


class InitialChoice(NamedTuple):
    """The initial service, any second-site initials, and whether a person should check."""

    main: Candidate | None
    second_sites: tuple[Candidate, ...]
    needs_review: bool
    why: str


def choose_initial(candidates: list[Candidate], claim_type: ClaimType, payer: PayerPolicy) -> InitialChoice:
    """Pick the initial service by the claim type's rule."""
    if not candidates:
        return InitialChoice(None, (), False, "no reportable IV service")
    order = Candidate.sort_key  # ``min`` by it is the first of ``sorted`` by it: one pass, no sort
    needs_review = False
    if claim_type is ClaimType.PROFESSIONAL:
        primary = [c for c in candidates if any(m.admin.primary for m in c.members)]
        if primary:
            main, why = min(primary, key=order), "the feed marks it as the primary reason for the encounter"
        else:
            main, why = min(candidates, key=order), "highest in the hierarchy (no primary reason in the feed)"
            needs_review = True
    else:
        main, why = min(candidates, key=order), "highest in the facility hierarchy"
    seconds: list[Candidate] = []
    if payer.allow_second_site_initial and main.site:
        seen = {main.site}
        for candidate in sorted(candidates, key=order):
            if candidate.site and candidate.site not in seen and candidate.kind is not ServiceKind.HYDRATION:
                seen.add(candidate.site)
                seconds.append(candidate)
    return InitialChoice(main, tuple(seconds), needs_review, why)
