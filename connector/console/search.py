"""Search the stored encounters: by encounter, patient, account, dates, code, flag and payer, in pages.

There is no index yet: a search walks the encounter keys in the store's order
(``encounter_keys(after, limit)``, ``PAGE_KEYS`` at a time, one short read transaction each)
and reads of each encounter only what the criteria need, cheapest first — the key, then its
state (patient, account, dates, coverage), then its currently charged lines (codes, flags), stored
outcomes (review reasons) and history (payer policy). A request stops after ``page_size``
matches, or after scanning ``max_scan`` encounters; the page then links to the next one from
the last key it read. ``docs/console.md`` says what an index would need.

What it matches on, all from what was stored (nothing is coded again):

- **encounter**: the full key, or the visit number (the part after ``|``), case-insensitive;
- **patient**: the patient id as sent (PID-3 / FHIR Patient id), exactly;
- **account**: the patient account number as sent (PID-18 / FHIR Encounter.account), exactly;
- **dates**: an administration started (local date) within ``from``..``to``, both inclusive;
- **code**: a currently charged line with that code, or an administration behind one;
- **flag**: ``needs_review`` (a charged line flagged, or an administration needing review),
  ``write_off``, ``unmapped_drug`` (a line flag or an unmapped drug), ``mue_capped``;
- **payer**: the payer policy a message was coded under (``bcbs``), or a coverage identifier
  the feed sent containing the text, case-insensitive.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from connector.console.reader import Source, StateReader
from connector.model import OutcomeKind

FLAGS = ("needs_review", "write_off", "unmapped_drug", "mue_capped")
PAGE_KEYS = 200  # keys read per transaction while scanning
PAGE_SIZE = 25
MAX_SCAN = 20_000  # encounters read per request at most: the page then offers to go on
MAX_TEXT = 200  # a search field longer than this is refused


class QueryError(ValueError):
    """A search field that cannot be read (the message names the field, never its value)."""


@dataclass(frozen=True, slots=True)
class Query:
    """What a search asks for (empty fields: no condition)."""

    encounter: str = ""
    patient: str = ""
    account: str = ""
    since: date | None = None
    until: date | None = None
    code: str = ""
    flag: str = ""
    payer: str = ""
    after: str = ""

    @property
    def is_empty(self) -> bool:
        """Whether no criterion is set (every encounter is listed)."""
        criteria = (
            self.encounter,
            self.patient,
            self.account,
            self.since,
            self.until,
            self.code,
            self.flag,
            self.payer,
        )
        return not any(criteria)

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> Query:
        """A query from form fields.

        The fields: ``q``, ``patient``, ``account``, ``from``, ``to``, ``code``, ``flag``, ``payer``, ``after``.

        Raises:
            QueryError: A field is too long, a date is not ``YYYY-MM-DD``, the range is reversed,
                or the flag is not one of ``FLAGS``.
        """
        text = {}
        for name in ("q", "patient", "account", "from", "to", "code", "flag", "payer", "after"):
            value = (args.get(name) or "").strip()
            if len(value) > MAX_TEXT:
                raise QueryError(f"{name}: longer than {MAX_TEXT} characters")
            text[name] = value
        since, until = _date("from", text["from"]), _date("to", text["to"])
        if since and until and since > until:
            raise QueryError("from: after to")
        if text["flag"] and text["flag"] not in FLAGS:
            raise QueryError(f"flag: not one of {', '.join(FLAGS)}")
        return cls(
            encounter=text["q"],
            patient=text["patient"],
            account=text["account"],
            since=since,
            until=until,
            code=text["code"],
            flag=text["flag"],
            payer=text["payer"],
            after=text["after"],
        )


def _date(name: str, value: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise QueryError(f"{name}: not a date (YYYY-MM-DD)") from error


@dataclass(frozen=True, slots=True)
class Row:
    """One encounter found, as the results table shows it."""

    key: str
    visit_number: str
    account: str
    patient_class: str
    status: str
    administrations: int
    first_day: str
    last_day: str
    codes: tuple[str, ...]
    flags: tuple[str, ...]
    payers: tuple[str, ...]
    coded: int
    no_line: int
    needs_review: int


@dataclass(frozen=True, slots=True)
class Page:
    """One page of results.

    Attributes:
        rows: The encounters found, in key order.
        next_after: The key to go on from (empty: the scan reached the end).
        scanned: Encounters read for this page.
        stopped: The page ended because ``max_scan`` encounters were read, not because it filled.
    """

    rows: tuple[Row, ...]
    next_after: str
    scanned: int
    stopped: bool = False


def _row(reader: StateReader, key: str) -> Row | None:
    """The row of the results table (None: the encounter went away meanwhile)."""
    state = reader.get(key)
    if state is None:
        return None
    enc = state.encounter
    days = sorted({a.start.date().isoformat() for a in enc.administrations})
    kinds = [o.outcome for o in reader.outcomes(key)]
    status = ("closed" if enc.closed else "open") + (f", {state.failed}" if state.failed else "")
    return Row(
        key,
        state.ref.visit_number or key.rpartition("|")[2],
        enc.account,
        enc.patient_class.value,
        status,
        len(enc.administrations),
        days[0] if days else "",
        days[-1] if days else "",
        tuple(sorted({line.code for line in reader.emitted(key).values()})),
        tuple(sorted(_flags(reader, key))),
        _policies(reader, key),
        kinds.count(OutcomeKind.CODED),
        kinds.count(OutcomeKind.NO_LINE),
        kinds.count(OutcomeKind.NEEDS_REVIEW),
    )


def _flags(reader: StateReader, key: str) -> set[str]:
    """Flags of the charged lines, plus ``needs_review``/``unmapped_drug`` from stored outcomes."""
    found = {flag for line in reader.emitted(key).values() for flag in line.flags if flag in FLAGS}
    for outcome in reader.outcomes(key):
        if outcome.outcome is OutcomeKind.NEEDS_REVIEW:
            found.add("needs_review")
        if outcome.reason == "unmapped_drug" or any(item.kind == "drug" for item in outcome.unmapped):
            found.add("unmapped_drug")
    return found


def _policies(reader: StateReader, key: str) -> tuple[str, ...]:
    """The payer policies the encounter's messages were coded under, in the order first seen."""
    seen: list[str] = []
    for entry in reader.history(key):
        try:
            body = json.loads(entry.body)
        except ValueError:
            continue
        policy = body.get("policy") if isinstance(body, dict) else None
        if isinstance(policy, str) and policy not in seen:
            seen.append(policy)
    return tuple(seen)


def matches(reader: StateReader, key: str, query: Query) -> bool:
    """Whether the encounter ``key`` meets every criterion of ``query`` (cheapest checks first)."""
    if query.encounter:
        wanted = query.encounter.casefold()
        if wanted not in (key.casefold(), key.rpartition("|")[2].casefold()):
            return False
    needs_state = query.patient or query.account or query.since or query.until or query.payer
    state = reader.get(key) if needs_state or query.code else None
    if needs_state and state is None:
        return False
    if state is not None and query.patient and state.ref.patient_id != query.patient:
        return False
    if state is not None and query.account and state.encounter.account != query.account:
        return False
    if state is not None and (query.since or query.until):
        days = [a.start.date() for a in state.encounter.administrations]
        if not any((not query.since or day >= query.since) and (not query.until or day <= query.until) for day in days):
            return False
    if query.code:
        lines = reader.emitted(key).values()
        if not any(line.code == query.code for line in lines) and not any(
            query.code in o.codes for o in reader.outcomes(key)
        ):
            return False
    if query.flag and query.flag not in _flags(reader, key):
        return False
    if query.payer and state is not None:
        wanted = query.payer.casefold()
        named = {p.casefold() for p in _policies(reader, key)}
        if wanted not in named and not any(wanted in sent.casefold() for sent in state.encounter.payer_ids):
            return False
    return True


def search(source: Source, query: Query, page_size: int = PAGE_SIZE, max_scan: int = MAX_SCAN) -> Page:
    """One page of the encounters matching ``query``, from ``query.after`` on, in the store's key order."""
    rows: list[Row] = []
    after = query.after or None
    scanned = 0
    while scanned < max_scan:
        want = min(PAGE_KEYS, max_scan - scanned)
        with source.read() as reader:
            keys = reader.encounter_keys(after, want)
            for key in keys:
                scanned += 1
                after = key
                row = _row(reader, key) if matches(reader, key, query) else None
                if row is not None:
                    rows.append(row)
                    if len(rows) == page_size:
                        return Page(tuple(rows), key, scanned)
        if len(keys) < want:
            return Page(tuple(rows), "", scanned)
    return Page(tuple(rows), after or "", scanned, stopped=True)
