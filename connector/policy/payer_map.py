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


def normalise_id(sent: str) -> str:
    """An identifier as compared: upper-case, runs of whitespace as one space, trimmed."""
    return " ".join(sent.upper().split())


@dataclass(frozen=True, slots=True)
class PayerMapEntry:
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

    def covers(self, day: date) -> bool:
        """Whether the entry is in force on ``day``."""
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)

    def overlaps(self, other: PayerMapEntry) -> bool:
        """Whether two entries are in force on a common day."""
        end = self.effective_to or date.max
        other_end = other.effective_to or date.max
        return self.effective_from <= other_end and other.effective_from <= end


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
            for entry in self.entries.get(normalise_id(sent), ()):
                if entry.covers(day):
                    return entry.payer, entry.origin
        return None

    @property
    def count(self) -> int:
        """How many entries the table holds (all dates)."""
        return sum(len(v) for v in self.entries.values())
