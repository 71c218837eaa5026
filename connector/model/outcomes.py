"""What became of each administration, and of each emitted message (stored, explained, counted)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from connector.model.administration import SourceRef

UNKNOWN_SOURCE = SourceRef(kind="unknown")


class OutcomeKind(StrEnum):
    """The three ends an accepted administration can come to (DEVELOPERS.md, non-negotiable 9)."""

    CODED = "coded"  # it is behind at least one line, none of them flagged for review
    NO_LINE = "no_line"  # no line, for a documented reason (not given, inpatient, within 30 min …)
    NEEDS_REVIEW = "needs_review"  # unmapped code or payer, unknown class, doubtful times or duration


@dataclass(frozen=True, slots=True)
class Unmapped:
    """A code the mappings lack, as sent, and where it came from (for ``ivpush unmapped``).

    Attributes:
        kind: ``route``, ``method``, ``drug`` or ``payer``.
        system: Its coding system as sent (``HL70162``, a FHIR system URL; empty for text).
        code: The code, else the text, as sent (site codes, not patient data).
        field: The field it was read from (``RXR-1``, ``dosage.route``, ``IN1-3`` …).
    """

    kind: str
    system: str
    code: str
    field: str


@dataclass(frozen=True, slots=True)
class AdministrationOutcome:
    """The stored outcome of one administration.

    Attributes:
        administration_id: The administration.
        outcome: Coded, no line or needs review.
        reason: A stable code: a ``Reason`` value (``coded``, ``inpatient``, ``within_interval``
            …) or a review code (``unmapped_route``, ``unmapped_drug``, ``unmapped_payer``,
            ``unknown_class``, ``duration_review``, ``time_review``, ``needs_review``).
        detail: One sentence, with local times and their offset.
        codes: Codes of the lines it is behind.
        source: Where it came from (message or resource id, file position).
        mappings: ``file:line`` of the mapping entries used (route, method, drug, payer, place).
        unmapped: Codes the mappings lack.
    """

    administration_id: str
    outcome: OutcomeKind
    reason: str
    detail: str
    codes: tuple[str, ...] = ()
    source: SourceRef = UNKNOWN_SOURCE
    mappings: tuple[str, ...] = ()
    unmapped: tuple[Unmapped, ...] = ()


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One charge message an encounter emitted, as ``explain --state`` shows it.

    Attributes:
        encounter_key: The encounter.
        sequence: Its place among the encounter's messages (0, 1, …).
        message_id: The message id downstream de-duplicates on.
        recorded_at: Wall-clock seconds when it was queued (the store's clock).
        cause: ``close``, ``change`` or ``recode``.
        body: The message in the JSON charge format (lines, actions, rules and reasons).
    """

    encounter_key: str
    sequence: int
    message_id: str
    recorded_at: float
    cause: str
    body: bytes
