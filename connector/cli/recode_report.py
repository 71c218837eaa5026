"""What ``ivpush recode`` reports: the deltas a mappings or policy change causes in stored encounters.

Counts by code and action, by payer policy and by flag, encounters changed and unchanged, the
administrations whose outcome changed, the encounters that cannot be coded now, and a sample
of explanations (the first changed encounters in key order: each line credited or charged, with
its reason). The same figures whether the run is a dry run or not: both are added up from the
messages ``Service.recode`` settled.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from connector.model import ChargeLine
from connector.model.messages import Action, ChargeMessage
from connector.service import Failure, Recoded

ACTIONS = (Action.CREDIT.value, Action.CHARGE.value)


@dataclass
class RecodeReport:
    """Figures of one recode, added up batch by batch (``add``).

    Attributes:
        sample_size: How many changed encounters to explain (the first, in key order).
        recoded: Encounters coded again (changed + unchanged + failed).
        changed: Encounters that emitted a credit/rebill message.
        unchanged: Encounters coded again to the lines they had.
        not_recoded: Open encounters that emitted nothing yet (coded when they close).
        by_code: (code, action) → lines.
        units: (code, action) → units of those lines.
        by_payer: payer policy → ``messages``/``credit``/``charge`` counts.
        by_flag: (flag, action) → lines.
        reissued: Charges that re-issue a line credited in the same message, the same in all but
            its id and reason (a new policy version alone changes every line id).
        outcomes: (outcome, reason) → administrations whose stored outcome became that.
        failed: Encounter key → why it cannot be coded now (left as it was).
        sample: The charge messages explained.
        notes: Said after the figures (settings changed, where the messages went).
    """

    sample_size: int = 5
    recoded: int = 0
    changed: int = 0
    unchanged: int = 0
    not_recoded: int = 0
    by_code: Counter[tuple[str, str]] = field(default_factory=Counter)
    units: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_payer: dict[str, Counter[str]] = field(default_factory=dict)
    by_flag: Counter[tuple[str, str]] = field(default_factory=Counter)
    reissued: int = 0
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    failed: dict[str, Failure] = field(default_factory=dict)
    sample: list[ChargeMessage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, batch: Recoded) -> None:
        """Add a batch's figures."""
        self.changed += len(batch.messages)
        self.unchanged += batch.unchanged
        self.not_recoded += batch.not_recoded
        self.failed.update(batch.outcome.failed)
        self.recoded += len(batch.messages) + batch.unchanged + len(batch.outcome.failed)
        self.outcomes.update(batch.outcome.administration_outcomes)
        for message in batch.messages:
            payer = self.by_payer.setdefault(message.policy, Counter())
            payer["messages"] += 1
            self.reissued += len(_reissued(message))
            for item in message.lines:
                action = item.action.value
                self.by_code[(item.line.code, action)] += 1
                self.units[(item.line.code, action)] += item.line.units
                payer[action] += 1
                for flag in item.line.flags:
                    self.by_flag[(flag, action)] += 1
        self.sample.extend(batch.messages[: max(0, self.sample_size - len(self.sample))])

    @property
    def lines(self) -> Counter[str]:
        """Lines by action."""
        totals: Counter[str] = Counter()
        for (_, action), count in self.by_code.items():
            totals[action] += count
        return totals

    def as_dict(self, dry_run: bool) -> dict[str, Any]:
        """The report as JSON data (``--report json``)."""
        return {
            "dry_run": dry_run,
            "encounters": {
                "recoded": self.recoded,
                "changed": self.changed,
                "unchanged": self.unchanged,
                "failed": len(self.failed),
                "open_not_recoded": self.not_recoded,
            },
            "messages": self.changed,
            "lines": {action: self.lines[action] for action in ACTIONS},
            "reissued": self.reissued,
            "by_code": _by_action(self.by_code),
            "units_by_code": _by_action(self.units),
            "by_payer": {name: dict(counts) for name, counts in sorted(self.by_payer.items())},
            "by_flag": _by_action(self.by_flag),
            "administration_outcomes": {f"{kind}:{reason}": n for (kind, reason), n in sorted(self.outcomes.items())},
            "failed": {key: {"code": f.code, "detail": f.detail} for key, f in sorted(self.failed.items())},
            "sample": [_sample_dict(message) for message in self.sample],
            "notes": self.notes,
        }

    def text(self, dry_run: bool, label: str) -> list[str]:
        """The report as text lines."""
        lines = self.lines
        out = [
            f"recode of {label}" + (" (dry run: nothing written)" if dry_run else ""),
            f"encounters: {self.recoded} recoded, {self.changed} changed, {self.unchanged} unchanged, "
            f"{len(self.failed)} cannot be coded now, {self.not_recoded} open and not emitted yet (not recoded)",
            f"charge messages: {self.changed}; lines: {lines['credit']} credit, {lines['charge']} charge "
            f"({self.reissued} of the charges re-issue a credited line unchanged but for its id)",
        ]
        out += _table("by code (lines; units)", "code", self.by_code, self.units)
        if self.by_payer:
            out.append("by payer policy:")
            out.append(f"  {'payer':<16} {'messages':>8} {'credit':>7} {'charge':>7}")
            for name, counts in sorted(self.by_payer.items()):
                out.append(f"  {name:<16} {counts['messages']:>8} {counts['credit']:>7} {counts['charge']:>7}")
        out += _table("by flag", "flag", self.by_flag)
        if self.outcomes:
            out.append("administrations whose outcome changed:")
            out += [f"  {kind} ({reason}): {n}" for (kind, reason), n in sorted(self.outcomes.items())]
        if self.failed:
            out.append("cannot be coded now (left as they were):")
            out += [f"  {key}: {f.code} ({f.detail})" for key, f in sorted(self.failed.items())]
        if self.sample:
            out.append(f"sample (the first {len(self.sample)} changed encounters):")
            for message in self.sample:
                out += _sample_text(message)
        return out + self.notes


def _by_action(counts: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for (name, action), count in sorted(counts.items()):
        found.setdefault(name, dict.fromkeys(ACTIONS, 0))[action] = count
    return found


def _table(
    title: str, label: str, counts: Counter[tuple[str, str]], units: Counter[tuple[str, str]] | None = None
) -> list[str]:
    """Rows of name, credits, charges and the net (charges minus credits); with ``units``, the same in units."""
    if not counts:
        return []
    header = f"  {label:<16} {'credit':>7} {'charge':>7} {'net':>7}"
    rows = [f"{title}:", header + (f" {'units credit':>13} {'charge':>7} {'net':>7}" if units else "")]
    in_units = _by_action(units) if units else {}
    for name, by_action in _by_action(counts).items():
        credit, charge = by_action["credit"], by_action["charge"]
        row = f"  {name:<16} {credit:>7} {charge:>7} {charge - credit:>+7}"
        if name in in_units:
            credit, charge = in_units[name]["credit"], in_units[name]["charge"]
            row += f" {credit:>13} {charge:>7} {charge - credit:>+7}"
        rows.append(row)
    return rows


def _sample_dict(message: ChargeMessage) -> dict[str, Any]:
    return {
        "encounter": message.encounter.key,
        "message_id": message.message_id,
        "policy": message.policy,
        "policy_version": message.policy_version,
        "claim_type": message.claim_type.value,
        "lines": [
            {
                "action": item.action.value,
                "code": item.line.code,
                "units": item.line.units,
                "modifiers": list(item.line.modifiers),
                "service_date": item.line.service_date.isoformat(),
                "flags": list(item.line.flags),
                "rule": item.line.rule,
                "reason": item.line.reason,
                "line_id": item.line.line_id,
            }
            for item in message.lines
        ],
    }


def _substance(line: ChargeLine) -> tuple[object, ...]:
    """What a line bills: everything but its id and reason."""
    return (
        line.code,
        line.units,
        line.service_date,
        line.modifiers,
        line.revenue_code,
        line.charge_code,
        line.administration_ids,
        line.rule,
        line.flags,
    )


def _reissued(message: ChargeMessage) -> set[str]:
    """Line ids of the charges that bill what a credit of the same message billed."""
    credited = Counter(_substance(item.line) for item in message.lines if item.action is Action.CREDIT)
    found: set[str] = set()
    for item in message.lines:
        if item.action is Action.CHARGE and credited[_substance(item.line)] > 0:
            credited[_substance(item.line)] -= 1
            found.add(item.line.line_id)
    return found


def _sample_text(message: ChargeMessage) -> list[str]:
    out = [
        f"  Encounter {message.encounter.key}: {message.claim_type.value}, {message.policy} "
        f"{message.policy_version}, message {message.message_id}"
    ]
    reissued = _reissued(message)
    for item in message.lines:
        line = item.line
        modifiers = f" -{'-'.join(line.modifiers)}" if line.modifiers else ""
        flags = f" [{', '.join(line.flags)}]" if line.flags else ""
        why = "re-issued as credited (a new line id)" if line.line_id in reissued else line.reason
        out.append(
            f"    {item.action.value:<6} {line.code}{modifiers} x{line.units} {line.service_date.isoformat()}{flags} "
            f"({line.rule}): {why}"
        )
    return out
