"""The demo's printout: per encounter, its charges, then the administrations that got no line.

Charges come from the JSON charge messages (charges net of credits). What else is shown of an
encounter comes from the state the messages were coded in (``ivpush consume``'s or a replay's):
the place of service and payer the rules used, the primary coverage the feed sent, and the
stored outcome of every administration that is not simply coded — no line and why, or what
needs review (an unmapped local code with its system and field).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connector.cli.replay_report import outcome_summary
from connector.model import Administration, AdministrationOutcome, Encounter, OutcomeKind
from connector.policy.model import Policy
from connector.rules.describe import when
from connector.rules.setting import resolve_setting
from connector.store.base import Store

QUIET_FLAGS = frozenset({"no_mue_on_file"})
"""Flags every line carries (no MUE values ship, docs/rules.md): named once under the table, not per line."""

_KINDS = {OutcomeKind.NO_LINE: "no line", OutcomeKind.NEEDS_REVIEW: "needs review"}


@dataclass(frozen=True, slots=True)
class Notes:
    """What the state says about one encounter besides its charge lines.

    Attributes:
        head: ``<visit> — <class>`` for an encounter without charge messages.
        place_of_service: CMS place of service the rules used (``""``: none derived).
        coverage: The primary coverage as sent and the payer policy it mapped to (``""``: none sent).
        uncharged: One row per administration with no line, or whose lines need review.
        administrations: How many administrations the encounter has.
    """

    head: str = ""
    place_of_service: str = ""
    coverage: str = ""
    uncharged: tuple[str, ...] = ()
    administrations: int = 0


def read_notes(store: Store, policy: Policy) -> dict[str, Notes]:
    """The notes of every encounter with stored outcomes, by encounter key."""
    found: dict[str, Notes] = {}
    with store.transaction() as tx:
        keys = sorted({key for key, _ in tx.scan_outcomes()})
        for key in keys:
            state = tx.get(key)
            if state is None:
                continue
            encounter = state.encounter
            setting = resolve_setting(encounter, policy)
            by_id = {a.id: a for a in encounter.administrations}
            rows = tuple(
                uncharged_row(outcome, by_id.get(outcome.administration_id), policy)
                for outcome in tx.outcomes(key)
                if outcome.outcome is not OutcomeKind.CODED
            )
            found[key] = Notes(
                f"{state.ref.visit_number or key} — {setting.encounter.patient_class.value}",
                setting.encounter.place_of_service,
                coverage(encounter, setting.encounter.payer, policy),
                rows,
                len(encounter.administrations),
            )
    return found


def stored_summary(store: Store) -> str:
    """``administrations coded 8; no line: …; needs review: …`` over every outcome in ``store``."""
    counts: Counter[tuple[str, str]] = Counter()
    with store.transaction() as tx:
        for _, outcome in tx.scan_outcomes():
            counts[(outcome.outcome.value, outcome.reason)] += 1
    return outcome_summary(dict(counts))


def coverage(encounter: Encounter, payer: str, policy: Policy) -> str:
    """``primary coverage sent: <ids> → <payer> (<payer map entry>)``, or ``""`` when none was sent."""
    if not encounter.payer_ids or not encounter.administrations:
        return ""
    sent = ", ".join(encounter.payer_ids)
    found = policy.payer_map.payer_for(encounter.payer_ids, encounter.administrations[0].start.date())
    if found is None:
        return f"primary coverage sent: {sent} → not in the payer map: policy {payer}, lines need review"
    return f"primary coverage sent: {sent} → {found[0]} ({found[1]})"


def uncharged_row(outcome: AdministrationOutcome, admin: Administration | None, policy: Policy) -> str:
    """One administration without a line (or to review): time, drug, source, outcome, reason, detail."""
    at = when(admin.start) if admin else "?"
    drug = policy.drugs.resolve(admin.drug).key if admin else "?"
    kind = _KINDS.get(outcome.outcome, outcome.outcome.value)
    codes = f" ({', '.join(outcome.codes)})" if outcome.codes else ""
    text = f"{at}  {drug:<16}  {outcome.source.message_id:<8}  {kind}{codes}: {outcome.reason} — {outcome.detail}"
    for code in outcome.unmapped:
        sent = f"{code.system}|{code.code}" if code.system else f'"{code.code}"'
        text += f" Not in the {code.kind} mappings: {sent} ({code.field})."
    return text


def table(ndjson: bytes, notes: Mapping[str, Notes] | None = None) -> str:
    """Net charge lines (charges minus credits) per encounter, each followed by its notes."""
    notes = notes or {}
    current, heads = _net(ndjson)
    every = [line for lines in current.values() for line in lines.values()]
    width = max([5, *(len(_flags(line)) for line in every)])
    out: list[str] = []
    for key in sorted(heads.keys() | notes.keys()):
        note = notes.get(key, Notes())
        place = f", place of service {note.place_of_service}" if note.place_of_service else ""
        out.append(f"Encounter {heads.get(key, f'{note.head}, no charge message')}{place}")
        if note.coverage:
            out.append(f"  {note.coverage}")
        lines = current.get(key, {})
        out.extend(_lines(lines, width))
        if any("write_off" in line["flags"] for line in lines.values()):
            out.append(
                f"  write_off: the payer does not reimburse these codes on this claim type in place of service "
                f"{note.place_of_service or '?'} (coding-rules.md §7); the lines stay visible, flagged"
            )
        if note.uncharged:
            out.append(f"  no line, or to review ({len(note.uncharged)} of {note.administrations} administrations):")
            out.extend(f"    {row}" for row in note.uncharged)
        out.append("")
    quiet = sorted({flag for line in every for flag in line["flags"]} & QUIET_FLAGS)
    if quiet:
        out.append(f"Not shown per line: {', '.join(quiet)} (every line carries it until a site adds MUE values).")
    return "\n".join(out)


def _net(ndjson: bytes) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, str]]:
    """Lines charged and not credited, by encounter key and line id; the heading of each encounter."""
    current: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    heads: dict[str, str] = {}
    for text in ndjson.splitlines():
        message = json.loads(text)
        enc = message["encounter"]
        key = f"{enc['assigning_authority']}|{enc['id']}"
        heads[key] = f"{enc['id']} — {enc['patient_class']}, {message['claim_type']} claim, payer {message['policy']}"
        for line in message["lines"]:
            if line["action"] == "charge":
                current[key][line["line_id"]] = line
            else:
                current[key].pop(line["line_id"], None)
    return current, heads


_COLUMNS = ("date", 10), ("code", 5), ("mods", 5), ("units", -5), ("rev", 4), ("charge", 9)


def _lines(lines: Mapping[str, Mapping[str, Any]], width: int) -> list[str]:
    if not lines:
        return []
    heading = "  ".join(f"{name:>{-n}}" if n < 0 else f"{name:<{n}}" for name, n in _COLUMNS)
    out = [f"  {heading}  {'flags':<{width}}  reason"]
    for line in sorted(lines.values(), key=lambda ln: (ln["service_date"], ln["code"])):
        mods = ",".join(line["modifiers"]) or "-"
        out.append(
            f"  {line['service_date']:<10}  {line['code']:<5}  {mods:<5}  {line['units']:>5}  "
            f"{line['revenue_code']:<4}  {line['charge_code']:<9}  {_flags(line):<{width}}  {line['reason']}"
        )
    return out


def _flags(line: Mapping[str, Any]) -> str:
    return ",".join(flag for flag in line["flags"] if flag not in QUIET_FLAGS) or "-"
