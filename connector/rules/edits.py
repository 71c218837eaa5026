"""Step 5b: CMS edits on the lines of an encounter — MUE unit limits and NCCI PTP pairs (coding rules §3, §6).

Applied after units became lines and before line ids are derived, with the tables in force on
the encounter's first date of service (``policy.cms``, ``docs/cms-policy-files.md``).

**MUE** (a payer file's ``mue`` entry for the code and claim type first, else the CMS table):

- MAI 1, line edit: each line's units are capped at the value.
- MAI 2, date-of-service edit (policy): the units of the code on the date, over all its lines
  (e.g. with different modifiers), are capped at the value; CMS does not pay more on appeal.
- MAI 3, date-of-service edit (clinical): capped the same way, and the line needs review:
  clinical documentation may support more units on appeal.

A capped line carries ``mue_capped`` and its reason says how many units were over, the MAI and
the CMS file. When the cap leaves a line no unit (a value of 0, or a date-of-service value the
earlier lines of the day used up), the line is not emitted: it is returned as ``Withheld`` and
its administrations say why (``mue_exceeded``) — never a silent drop. A code with no value in
the loaded tables is ``no_mue_on_file``.

**PTP**: when the lines of one date hold both codes of an edit in force that date
(effective ≤ date < deletion), the column-2 line is the one CMS denies:

- modifier indicator 0: ``ptp_conflict`` + ``needs_review`` (no modifier can bypass it);
- indicator 1: the payer's distinct-service modifier (its ``second_site_modifier``: 59, or XS
  for Medicare, Aetna and Cigna) only where the rules document allows one — a second initial at
  a documented separate vascular access site (§3, CMS RAC topic 0071). NCCI lets the modifier
  go on either code of the pair, so the pair is bypassed when that line is the column-2 line
  (it takes the modifier) or when every column-1 line of the pair that day is one (the column-2
  line then says so). Any other column-2 line is ``ptp_conflict`` + ``needs_review``: the feed
  does not show the services distinct;
- indicator 9: nothing (the edit does not apply).

A separate same-day encounter (§3) is coded on its own, so its lines never meet the other
encounter's here; its initial line carries ``separate_encounter_modifier`` (XE) as before.
Two lines of one encounter are never distinct by being in a separate encounter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from connector.model import ClaimType, Review
from connector.policy.cms import (
    MAI_CLINICAL,
    MAI_LINE,
    MAI_NAMES,
    MODIFIER_ALLOWED,
    MODIFIER_NOT_ALLOWED,
    MueTable,
    PtpTable,
)
from connector.policy.model import MueLimit

NO_MUE = "no_mue_on_file"
MUE_CAPPED = "mue_capped"
PTP_CONFLICT = "ptp_conflict"
NEEDS_REVIEW = "needs_review"
MUE_CLINICAL = "mue_clinical"  # review code: units capped by an MAI 3 edit


class Draft:
    """A line before its id: what the edits may change (units, modifiers, reason, flags)."""

    __slots__ = ("admin_ids", "code", "day", "department", "flags", "modifiers", "reason", "rule", "units")

    def __init__(
        self,
        day: date,
        code: str,
        modifiers: tuple[str, ...],
        units: int,
        admin_ids: tuple[str, ...],
        rule: str,
        reason: str,
        flags: set[str],
        department: str,
    ) -> None:
        self.day = day
        self.code = code
        self.modifiers = modifiers
        self.units = units
        self.admin_ids = admin_ids
        self.rule = rule
        self.reason = reason
        self.flags = flags
        self.department = department


@dataclass(frozen=True, slots=True)
class Withheld:
    """A line the MUE left no unit: not emitted, explained on its administrations.

    Attributes:
        day: Its date of service.
        code: Its code.
        modifiers: Its modifiers (with ``day`` and ``code``, the line's key).
        admin_ids: The administrations behind it.
        reason: Why it is not billed (one sentence naming the MUE, the MAI and the CMS file).
    """

    day: date
    code: str
    modifiers: tuple[str, ...]
    admin_ids: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class _Limit:
    value: int
    mai: int
    source: str  # "CMS file X" or the payer entry's reference

    def __str__(self) -> str:
        """``2 (MAI 1, line edit; CMS file X)``: the value and where it comes from, for reasons."""
        return f"{self.value} (MAI {self.mai}, {MAI_NAMES.get(self.mai, 'unknown')}; {self.source})"


def apply_mue(
    drafts: list[Draft],
    claim_type: ClaimType,
    overrides: Mapping[str, MueLimit],
    table: MueTable | None,
    reviews: list[Review],
) -> list[Withheld]:
    """Cap units per MAI (drafts sorted by date, code, modifiers); return the lines left no unit.

    A line capped under MAI 3 adds a ``mue_clinical`` review (what to check) to ``reviews``.
    """
    if table is None and not overrides:
        for draft in drafts:
            draft.flags.add(NO_MUE)
        return []
    limits: dict[str, _Limit | None] = {}
    by_day_code: dict[tuple[date, str], list[Draft]] = {}
    for draft in drafts:
        if draft.code not in limits:
            limits[draft.code] = _limit(draft.code, claim_type, overrides, table)
        by_day_code.setdefault((draft.day, draft.code), []).append(draft)
    withheld: list[Withheld] = []
    for (day, code), group in by_day_code.items():
        limit = limits[code]
        if limit is None:
            for draft in group:
                draft.flags.add(NO_MUE)
            continue
        if limit.mai == MAI_LINE:
            for draft in group:
                if draft.units > limit.value:
                    over = _units(draft.units - limit.value)
                    sentence = f"{over} over the MUE of {limit}: not billed."
                    withheld.extend(_cap(draft, limit.value, sentence, limit, reviews))
            continue
        total = sum(d.units for d in group)
        if total <= limit.value:
            continue
        over = f"{_units(total - limit.value)} over the MUE of {limit}"
        if len(group) > 1:
            over = f"{total} units of {code} on {day.isoformat()} over all its lines, {over}"
        remaining = limit.value
        for draft in group:
            kept = min(draft.units, remaining)
            remaining -= kept
            if kept == draft.units:  # keeps its units: says what the others lost
                draft.reason += f" {over}: the units over are not billed on its other lines."
                continue
            cut = f"{_units(draft.units - kept)} of this line not billed" if len(group) > 1 else "not billed"
            withheld.extend(_cap(draft, kept, f"{over}: {cut}.", limit, reviews))
    return withheld


def _limit(
    code: str, claim_type: ClaimType, overrides: Mapping[str, MueLimit], table: MueTable | None
) -> _Limit | None:
    override = overrides.get(code)
    value = override.limit(claim_type) if override is not None else None
    if override is not None and value is not None:
        return _Limit(value, override.mai, override.reference)
    edit = table.edits.get(code) if table is not None else None
    if edit is None:
        return None
    return _Limit(edit.value, edit.mai, f"CMS file {edit.source}")


def _cap(draft: Draft, kept: int, sentence: str, limit: _Limit, reviews: list[Review]) -> list[Withheld]:
    """Cap one line at ``kept`` units, saying why; the line as withheld when none is left."""
    where = f"{draft.code}{''.join('-' + m for m in draft.modifiers)} on {draft.day.isoformat()}"
    if limit.mai == MAI_CLINICAL:
        check = f"clinical documentation may support more than {_units(limit.value)} on appeal (MAI 3)."
        sentence += f" Needs review: {check}"
        draft.flags.add(NEEDS_REVIEW)
        reviews.append(Review(MUE_CLINICAL, f"{where}: {check}", draft.admin_ids))
    elif limit.mai != MAI_LINE:
        sentence += " Not payable on appeal (MAI 2: CMS policy)."
    draft.units = kept
    draft.flags.add(MUE_CAPPED)
    draft.reason = f"{draft.reason} {sentence}"
    if kept:
        return []
    return [Withheld(draft.day, draft.code, draft.modifiers, draft.admin_ids, f"{where}: {sentence}")]


def _units(count: int) -> str:
    return f"{count} unit" if count == 1 else f"{count} units"


def apply_ptp(
    drafts: list[Draft], table: PtpTable | None, modifier: str, distinct_ids: frozenset[str], reviews: list[Review]
) -> None:
    """Flag the column-2 lines of the PTP edits in force, unless a documented separate site on either line bypasses it.

    Args:
        drafts: The lines still billed (units > 0).
        table: The PTP table in force for the encounter (None: nothing to do).
        modifier: The payer's distinct-service modifier (``second_site_modifier``).
        distinct_ids: Administrations of the second-site initials (a documented separate
            vascular access site, §3).
        reviews: Where a ``ptp_conflict`` review (what to check) is added for each flagged line.
    """
    if table is None or not table.by_column2:
        return
    by_day: dict[date, dict[str, list[Draft]]] = {}
    for draft in drafts:
        by_day.setdefault(draft.day, {}).setdefault(draft.code, []).append(draft)
    for day, codes in by_day.items():
        for code, lines in codes.items():
            seen: set[str] = set()
            for edit in table.by_column2.get(code, ()):
                column1 = edit.column1
                if column1 == code or column1 not in codes or column1 in seen or not edit.applies(day):
                    continue
                seen.add(column1)
                if edit.modifier not in (MODIFIER_NOT_ALLOWED, MODIFIER_ALLOWED):
                    continue  # 9: not applicable
                pair = (
                    f"NCCI PTP edit {column1}/{code} ({edit.rationale or 'no rationale given'}; CMS file {edit.source})"
                )
                firsts = codes[column1]
                for draft in lines:
                    if edit.modifier == MODIFIER_ALLOWED and _distinct_site(draft, distinct_ids):
                        _take(draft, modifier)  # the modifier on the column-2 line
                        draft.reason += (
                            f" {pair}: modifier indicator 1, {modifier} on this line shows a separate vascular "
                            "access site."
                        )
                        continue
                    if edit.modifier == MODIFIER_ALLOWED and all(_distinct_site(f, distinct_ids) for f in firsts):
                        # the modifier on the column-1 line(s): NCCI accepts it on either code of the pair
                        for first in firsts:
                            _take(first, modifier)
                            said = f" {pair}: modifier indicator 1, {modifier} on this line shows a separate vascular "
                            said += f"access site from {code}."
                            if said not in first.reason:
                                first.reason += said
                        where = ", ".join(_label(f) for f in firsts)
                        draft.reason += (
                            f" {pair}: modifier indicator 1, {modifier} on {where} (column 1) shows a separate "
                            f"vascular access site: {code} is not denied beside it."
                        )
                        continue
                    why = (
                        "no modifier is allowed (indicator 0)"
                        if edit.modifier == MODIFIER_NOT_ALLOWED
                        else "a modifier is allowed (indicator 1) only when the services are distinct, a documented "
                        "separate vascular access site on either line of the pair, which the feed does not show"
                    )
                    detail = f"{pair}: {code} is denied beside {column1} on {day.isoformat()}, {why}."
                    draft.flags.update((PTP_CONFLICT, NEEDS_REVIEW))
                    draft.reason += f" Needs review: {detail}"
                    reviews.append(Review(PTP_CONFLICT, detail, draft.admin_ids))


def _take(draft: Draft, modifier: str) -> None:
    """Put the distinct-service modifier on a line (a second-site initial already carries it)."""
    if modifier not in draft.modifiers:
        draft.modifiers = tuple(sorted((*draft.modifiers, modifier)))


def _label(draft: Draft) -> str:
    """``96374-59``: a line by its code and modifiers, for reasons."""
    return draft.code + "".join(f"-{m}" for m in draft.modifiers)


def _distinct_site(draft: Draft, distinct_ids: frozenset[str]) -> bool:
    """A second initial at a documented separate access site (the only line §3 lets take the modifier).

    Either line of a PTP pair may be it: NCCI accepts the distinct-service modifier on the
    column-1 or the column-2 code.
    """
    return draft.rule.startswith("initial.") and not distinct_ids.isdisjoint(draft.admin_ids)
