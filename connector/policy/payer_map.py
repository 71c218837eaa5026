"""Insurance identifiers as sent → payer policy (pure: built by ``policy.siteload``).

``mappings/payer_map.yaml`` maps what a feed says about the primary coverage (HL7 IN1-2 plan
id, IN1-3 company id, IN1-4 company name; FHIR Coverage payor identifier or display) to the
name of a payer policy in ``mappings/payers/``. Entries are dated; a site adds its own company
ids and may replace a shipped entry by using the same ``id``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from connector.policy.dated import DatedSpan, in_force, normalise_key

normalise_id = normalise_key
"""An identifier as compared: upper-case, runs of whitespace as one space, trimmed."""


@dataclass(frozen=True, slots=True)
class PayerMapEntry(DatedSpan):
    """One identifier's payer policy over a span of dates of service.

    Attributes:
        id: The identifier, normalised (``normalise_id``).
        payer: Payer policy name (a file of ``mappings/payers/``, lower-case).
        origin: ``file:line`` of the entry.
        reference: The source the entry rests on.
        effective_from: First date of service it applies to.
        effective_to: Last date of service it applies to (inclusive), or open.
    """

    id: str
    payer: str
    origin: str
    reference: str
    effective_from: date
    effective_to: date | None = None


@dataclass(frozen=True, slots=True)
class PayerMap:
    """Normalised identifier → its dated entries (no two of one id overlap)."""

    entries: Mapping[str, tuple[PayerMapEntry, ...]] = field(default_factory=dict)

    def payer_for(self, ids: Sequence[str], day: date) -> tuple[str, str] | None:
        """The payer policy of the first identifier (in the order given) mapped on ``day``.

        Args:
            ids: Identifiers of the primary coverage as sent, most specific first.
            day: Date of service.

        Returns:
            ``(payer policy name, "file:line")``, or None when no identifier is mapped that day.
        """
        for sent in ids:
            if (entry := in_force(self.entries.get(normalise_id(sent), ()), day)) is not None:
                return entry.payer, entry.origin
        return None

    @property
    def count(self) -> int:
        """How many entries the table holds (all dates)."""
        return sum(len(v) for v in self.entries.values())
