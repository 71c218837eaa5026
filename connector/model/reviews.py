"""What needs a person's review in an encounter, and the audited marks that say someone looked.

Pure: the caller reads the charged lines and stored outcomes, and the clock. An encounter
*needs review* when a line it is charged with is flagged ``needs_review`` or an
administration's stored outcome is ``needs_review`` (the console's search flag says the same).
A review mark records *what* was reviewed as a ``basis``: a digest of the charged lines (ids
and flags) and of every stored outcome (administration, outcome, reason). A line id changes
with its code, units, date, administrations and policy version, so new administrations, a
rebill or a recode change the basis, and an encounter reviewed before then needs review again.
A mark never changes coding.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from connector.model.charge import ChargeLine
from connector.model.ids import digest
from connector.model.outcomes import AdministrationOutcome, OutcomeKind

NEEDS_REVIEW_FLAG = "needs_review"
FLAGGED_LINES = "flagged_line"  # the reason counted for charged lines flagged needs_review
NOTE_MAX = 2000


@dataclass(frozen=True, slots=True)
class ReviewMark:
    """One "mark reviewed" by a person: an audit record, never updated nor deleted.

    Attributes:
        encounter_key: The encounter reviewed.
        at: When, an aware UTC instant (the console's wall clock).
        actor: Who: the signed-in user name, or ``token``.
        note: What the analyst wrote (free text: stored and shown, never logged).
        basis: ``review_basis`` of what was reviewed.
    """

    encounter_key: str
    at: datetime
    actor: str
    note: str
    basis: str

    def __post_init__(self) -> None:
        """Refuse a naive time (a mark's instant must be unambiguous)."""
        if self.at.utcoffset() is None:
            raise ValueError("a review mark's time must be aware (UTC)")


@dataclass(frozen=True, slots=True)
class ReviewNeed:
    """What needs review in an encounter, from its stored outcomes and charged lines.

    Attributes:
        administration_ids: Administrations needing review (their outcome, or behind a flagged line).
        flagged_lines: Charged lines flagged ``needs_review``.
        reasons: (reason, count) pairs, most frequent first then by name: review codes of
            the outcomes (``unmapped_route`` …), and ``flagged_line`` for flagged lines.
        basis: ``review_basis`` of these lines and outcomes.
    """

    administration_ids: tuple[str, ...]
    flagged_lines: int
    reasons: tuple[tuple[str, int], ...]
    basis: str

    @property
    def needed(self) -> bool:
        """Whether anything needs review."""
        return bool(self.administration_ids or self.flagged_lines)


def review_basis(lines: Iterable[ChargeLine], outcomes: Iterable[AdministrationOutcome]) -> str:
    """A digest of the charged lines (ids and flags) and stored outcomes, whatever their order.

    An outcome counts whole — its detail (local times), codes, source and unmapped codes too — so
    a corrected administration that still needs review for the same reason (another unmapped
    route, other times, another message) changes the basis: an administration's id stays across its versions.
    """
    parts = sorted(f"line:{line.line_id}:{','.join(sorted(line.flags))}" for line in lines)
    parts += sorted(
        f"outcome:{o.administration_id}:{o.outcome.value}:{o.reason}:{o.detail}:{','.join(o.codes)}:"
        f"{o.source.kind}:{o.source.message_id}:{o.unmapped!r}"  # not the file position: a replay moves it
        for o in outcomes
    )
    return "rb-" + digest(parts)


def review_need(lines: Iterable[ChargeLine], outcomes: Iterable[AdministrationOutcome]) -> ReviewNeed:
    """What needs review, given an encounter's charged lines and stored outcomes."""
    charged, stored = tuple(lines), tuple(outcomes)
    flagged = [line for line in charged if NEEDS_REVIEW_FLAG in line.flags]
    reasons: Counter[str] = Counter(o.reason for o in stored if o.outcome is OutcomeKind.NEEDS_REVIEW)
    if flagged:
        reasons[FLAGGED_LINES] = len(flagged)
    ids = {o.administration_id for o in stored if o.outcome is OutcomeKind.NEEDS_REVIEW}
    ids.update(admin_id for line in flagged for admin_id in line.administration_ids)
    ordered = tuple(sorted(reasons.items(), key=lambda item: (-item[1], item[0])))
    return ReviewNeed(tuple(sorted(ids)), len(flagged), ordered, review_basis(charged, stored))


def is_current(mark: ReviewMark, need: ReviewNeed) -> bool:
    """Whether a mark reviewed what the encounter holds now."""
    return mark.basis == need.basis


def check_note(text: str) -> str:
    """The note as it will be stored: line ends made newlines, outer blanks stripped.

    Raises:
        ValueError: It is empty, longer than ``NOTE_MAX`` characters, or holds a control
            character other than a line end or tab (the message never quotes the note).
    """
    note = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not note:
        raise ValueError("Write a note: what you checked, or what should be done.")
    if len(note) > NOTE_MAX:
        raise ValueError(f"The note is longer than {NOTE_MAX} characters ({len(note)}).")
    if any((ord(c) < 32 and c not in "\n\t") or ord(c) == 127 for c in note):
        raise ValueError("The note holds a control character: type it again as plain text.")
    return note
