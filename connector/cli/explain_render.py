"""Text of ``ivpush explain``: an encounter's administrations with their outcomes, its lines, rejects, history.

Times are local with their offset (``2026-03-02 07:10-05:00``), as the reasons give them;
history times are UTC. Nothing here names a patient: encounters by key, administrations by
id, sources by file, position and message or resource id, drugs as sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from connector.model import (
    Administration,
    AdministrationOutcome,
    ChargeResult,
    Decision,
    Encounter,
    HistoryEntry,
    OutcomeKind,
    SourceRef,
)
from connector.rules.describe import when

INDENT = "        "


def encounter_text(
    encounter: Encounter,
    result: ChargeResult,
    found: Sequence[AdministrationOutcome],
    title: str = "",
) -> list[str]:
    """The header, each administration in time order with its outcome, then the lines."""
    return [*header(encounter, result, title), *administrations(encounter, result, found), *lines(result)]


def header(encounter: Encounter, result: ChargeResult, title: str = "") -> list[str]:
    """Key (and title); class as coded, claim type, payer policy and version, place of service."""
    coded_class = result.patient_class.value
    if encounter.patient_class.value != coded_class:
        coded_class += f" (the feed: {encounter.patient_class.value})"
    place = result.place_of_service or "none"
    out = [
        f"Encounter {encounter.key}" + (f" — {title}" if title else ""),
        f"  class {coded_class}, {result.claim_type.value} claim, payer {result.policy} "
        f"(policy {result.policy_version}), place of service {place}",
    ]
    if encounter.payer_ids:
        out.append(f"  coverage identifiers: {', '.join(encounter.payer_ids)}")
    if result.mappings:
        out.append(f"  encounter mappings: {', '.join(result.mappings)}")
    return out


def administrations(encounter: Encounter, result: ChargeResult, found: Sequence[AdministrationOutcome]) -> list[str]:
    """Each administration in time order: time, id, drug, classification; outcome, source, mappings."""
    decisions = {d.administration_id: d for d in result.decisions}
    by_id = {o.administration_id: o for o in found}
    out = ["  Administrations in time order:" if encounter.administrations else "  Administrations: none"]
    for admin in encounter.administrations:
        out.append(_admin_line(admin, decisions.get(admin.id)))
        outcome = by_id.get(admin.id)
        if outcome is None:
            out.append(f"{INDENT}no outcome")
            out.append(f"{INDENT}source: {source_text(admin.source)}")
            continue
        out.extend(outcome_text(outcome))
    return out


def _admin_line(admin: Administration, decision: Decision | None) -> str:
    drug = admin.drug.text or ",".join(c.code for c in admin.drug.codings) or "(no drug)"
    classified = f"  [{decision.kind.value}, {decision.drug_key}]" if decision else ""
    return f"    {when(admin.start)}  {admin.id:<10} {drug}{classified}"


def outcome_text(outcome: AdministrationOutcome) -> list[str]:
    """The outcome and its detail, where the administration came from, the mapping entries used."""
    out = [f"{INDENT}{verdict(outcome)}: {outcome.detail}", f"{INDENT}source: {source_text(outcome.source)}"]
    for item in outcome.unmapped:
        code = f"{item.system}|{item.code}" if item.system else repr(item.code) if item.code else "(none sent)"
        out.append(f"{INDENT}not in the mappings: {item.kind} {code} ({item.field})")
    if outcome.mappings:
        out.append(f"{INDENT}mappings: {', '.join(outcome.mappings)}")
    return out


def verdict(outcome: AdministrationOutcome) -> str:
    """``coded → 96374``, ``no line (within_interval)`` or ``needs review (unmapped_route)``."""
    codes = ", ".join(outcome.codes)
    if outcome.outcome is OutcomeKind.CODED:
        return f"coded → {codes}"
    if outcome.outcome is OutcomeKind.NO_LINE:
        return f"no line ({outcome.reason})"
    return f"needs review ({outcome.reason})" + (f" → {codes}" if codes else "")


def source_text(source: SourceRef) -> str:
    """``feed.hl7 byte 120, message MSG0001`` (file and position, then message or resource id)."""
    where = " ".join(part for part in (source.file, source.position) if part)
    if source.kind == "scenario":
        return f"scenario {source.message_id}".strip()
    named = ""
    if source.message_id:
        named = f"message {source.message_id}" if source.kind == "hl7v2" else f"resource {source.message_id}"
    return ", ".join(part for part in (where, named) if part) or f"{source.kind} (position not recorded)"


def lines(result: ChargeResult) -> list[str]:
    """The charge lines with their rules, administrations, flags and reasons."""
    out = ["  Lines:" if result.lines else "  Lines: none"]
    for line in result.lines:
        modifiers = "-".join(line.modifiers)
        flags = f"  flags: {', '.join(line.flags)}" if line.flags else ""
        out.append(
            f"    {line.service_date}  {line.code}{'-' + modifiers if modifiers else ''} x{line.units}  "
            f"rev {line.revenue_code}  {line.charge_code}  rule {line.rule}  "
            f"[{', '.join(line.administration_ids)}]{flags}"
        )
        out.append(f"{INDENT}{line.reason}")
    return out


def rejects(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every input not coded: code, source and position (or encounter), detail."""
    if not entries:
        return ["Rejects: none"]
    out = [f"Rejects ({len(entries)}):"]
    for entry in entries:
        where = (
            f"encounter {entry['encounter']}"
            if entry.get("encounter")
            else f"{entry.get('source') or '?'} {entry.get('position') or ''}".strip()
        )
        out.append(f"  {entry.get('code')}  {where}: {entry.get('detail', '')}")
    return out


def differences(stored: Sequence[AdministrationOutcome], now: Sequence[AdministrationOutcome]) -> list[str]:
    """The stored outcomes that differ from the ones the current mappings give (none: nothing)."""
    before = {o.administration_id: o for o in stored}
    changed = []
    for outcome in now:
        held = before.pop(outcome.administration_id, None)
        if held is None:
            changed.append(f"    {outcome.administration_id}: none stored, now {verdict(outcome)}")
        elif (held.outcome, held.reason, held.codes) != (outcome.outcome, outcome.reason, outcome.codes):
            changed.append(f"    {outcome.administration_id}: stored {verdict(held)}, now {verdict(outcome)}")
    changed += [f"    {key}: stored {verdict(held)}, no such administration now" for key, held in before.items()]
    if not changed:
        return []
    return ["  Stored outcomes (when it was last coded) that differ from the current mappings':", *changed]


def history(entries: Iterable[HistoryEntry]) -> list[str]:
    """Each message emitted: sequence, UTC time, cause, message id, and each line's action and reason."""
    items = list(entries)
    if not items:
        return ["  Messages emitted: none"]
    out = [f"  Messages emitted ({len(items)}):"]
    for entry in items:
        at = datetime.fromtimestamp(entry.recorded_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            body = json.loads(entry.body)
        except ValueError:
            body = {}
        policy = f" policy {body['policy_version']}" if isinstance(body, dict) and body.get("policy_version") else ""
        out.append(f"    #{entry.sequence}  {at}  {entry.cause}  {entry.message_id}{policy}")
        found = body.get("lines") if isinstance(body, dict) else None
        if not isinstance(found, list):
            out.append(f"{INDENT}(message body not readable)")
            continue
        for line in found:
            out.append(
                f"{INDENT}{line.get('action')} {line.get('code')} x{line.get('units')} {line.get('service_date')} "
                f"{line.get('line_id')}: {line.get('reason', '')}"
            )
    return out
