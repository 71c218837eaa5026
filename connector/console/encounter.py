"""The encounter page's content: the stored encounter coded again, as ``ivpush explain --state`` does.

The encounter is read from the state and evaluated again with the current mappings (the pure
``rules.evaluate`` and ``rules.outcomes``; nothing is written), exactly as ``ivpush explain
--state S --encounter ID`` does, and its texts — verdicts, reasons, sources, mapping entries,
the differences from the stored outcomes — come from the same functions
(``connector.cli.explain_render``), so the page and the command say the same thing. Then the
lines currently charged (emitted and not credited) and the history of emitted messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from connector.cli import explain_render as render
from connector.console import timeline
from connector.console.reader import Source
from connector.model import AdministrationOutcome, ChargeLine, ChargeResult, HistoryEntry
from connector.policy.model import Policy
from connector.rules import evaluate
from connector.rules.describe import when
from connector.rules.outcomes import outcomes
from connector.settle import CODING_FAILED, EncounterFailed, guarded
from connector.store.base import EncounterState


@dataclass(frozen=True, slots=True)
class AdminRow:
    """One administration in the table under the timeline (texts as ``explain`` prints them)."""

    anchor: str
    admin_id: str
    time: str
    drug: str
    classification: str
    outcome: str
    verdict: str
    detail: str
    source: str
    unmapped: tuple[str, ...]
    mappings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LineRow:
    """A line the current mappings give, and whether it is the one charged."""

    line: ChargeLine
    charged: bool

    @property
    def modifiers(self) -> str:
        """Modifiers joined by ``-`` (empty: none)."""
        return "-".join(self.line.modifiers)


@dataclass(frozen=True, slots=True)
class SentLine:
    """A line of an emitted message, as its JSON body says."""

    action: str
    code: str
    units: str
    service_date: str
    line_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Message:
    """A charge message the encounter emitted."""

    sequence: int
    at: str
    cause: str
    message_id: str
    policy_version: str
    lines: tuple[SentLine, ...]
    readable: bool


@dataclass(frozen=True, slots=True)
class EncounterView:
    """Everything the encounter page shows."""

    key: str
    visit_number: str
    status: str
    patient_class: str
    claim_type: str
    payer: str
    policy_version: str
    place_of_service: str
    coverage: tuple[str, ...]
    mappings: tuple[str, ...]
    failure: str
    differences: tuple[str, ...]
    administrations: tuple[AdminRow, ...]
    lines: tuple[LineRow, ...]
    stale: tuple[ChargeLine, ...]  # charged, but not what the current mappings give
    messages: tuple[Message, ...]
    timeline: timeline.Timeline


def load(source: Source, key: str, policy: Policy) -> EncounterView | None:
    """The page of encounter ``key`` (its full key), or None when the state does not hold it."""
    with source.read() as reader:
        state = reader.get(key)
        if state is None:
            return None
        stored = reader.outcomes(key)
        emitted = reader.emitted(key)
        history = reader.history(key)
    return view(state, stored, emitted, history, policy)


def view(
    state: EncounterState,
    stored: tuple[AdministrationOutcome, ...],
    emitted: dict[str, ChargeLine],
    history: list[HistoryEntry],
    policy: Policy,
) -> EncounterView:
    """The page's content from what was read (pure: evaluates, writes nothing)."""
    encounter = state.encounter
    status = ("closed" if encounter.closed else "open") + f"; {state.messages} charge message(s) emitted"
    if state.failed:
        status += f"; not coded at its last close ({state.failed})"
    failure = ""
    result: ChargeResult | None = None
    try:
        result = guarded(CODING_FAILED, "rules", evaluate, encounter, policy)
        now = guarded(CODING_FAILED, "outcomes", outcomes, encounter, result, policy)
    except EncounterFailed as error:  # the class only, never the exception's text (it may quote a value)
        failure = f"cannot be coded with the current mappings ({error.failure.code}: {error.failure.detail})"
        now = stored
    decisions = {d.administration_id: d for d in result.decisions} if result else {}
    by_id = {o.administration_id: o for o in now}
    rows = []
    for index, admin in enumerate(encounter.administrations):
        decision = decisions.get(admin.id)
        outcome = by_id.get(admin.id)
        rows.append(
            AdminRow(
                f"adm-{index + 1}",
                admin.id,
                when(admin.start),
                admin.drug.text or ",".join(c.code for c in admin.drug.codings) or "(no drug)",
                f"{decision.kind.value}, {decision.drug_key}" if decision else "",
                outcome.outcome.value if outcome else "none",
                render.verdict(outcome) if outcome else "no outcome",
                outcome.detail if outcome else "",
                render.source_text(outcome.source if outcome else admin.source),
                tuple(_unmapped(outcome)),
                outcome.mappings if outcome else (),
            )
        )
    titles = {row.admin_id: f"{row.time} {row.drug}: {row.verdict}: {row.detail}" for row in rows}
    anchors = {row.admin_id: row.anchor for row in rows}
    limit = policy.payer(result.policy if result else encounter.payer).same_drug_min_interval_minutes
    picture = timeline.build(encounter.administrations, decisions, by_id, titles, anchors, limit)
    current = result.lines if result else ()
    produced = {line.line_id for line in current}
    differences = render.differences(stored, now)[1:] if stored and result else []
    coded_class = result.patient_class.value if result else encounter.patient_class.value
    if coded_class != encounter.patient_class.value:
        coded_class += f" (the feed: {encounter.patient_class.value})"
    return EncounterView(
        key=encounter.key,
        visit_number=state.ref.visit_number,
        status=status,
        patient_class=coded_class,
        claim_type=(result.claim_type if result else encounter.claim_type).value,
        payer=result.policy if result else encounter.payer,
        policy_version=result.policy_version if result else "",
        place_of_service=(result.place_of_service if result else "") or "none",
        coverage=encounter.payer_ids,
        mappings=result.mappings if result else (),
        failure=failure,
        differences=tuple(text.strip() for text in differences),
        administrations=tuple(rows),
        lines=tuple(LineRow(line, line.line_id in emitted) for line in current),
        stale=tuple(line for line_id, line in sorted(emitted.items()) if line_id not in produced),
        messages=tuple(_message(entry) for entry in history),
        timeline=picture,
    )


def _unmapped(outcome: AdministrationOutcome | None) -> list[str]:
    out = []
    for item in outcome.unmapped if outcome else ():
        code = f"{item.system}|{item.code}" if item.system else repr(item.code) if item.code else "(none sent)"
        out.append(f"{item.kind} {code} ({item.field})")
    return out


def _message(entry: HistoryEntry) -> Message:
    """A history entry with its JSON body read as ``explain`` reads it."""
    at = datetime.fromtimestamp(entry.recorded_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        body = json.loads(entry.body)
    except ValueError:
        body = {}
    found = body.get("lines") if isinstance(body, dict) else None
    version = body.get("policy_version", "") if isinstance(body, dict) else ""
    if not isinstance(found, list):
        return Message(entry.sequence, at, entry.cause, entry.message_id, str(version), (), False)
    lines = tuple(
        SentLine(
            str(line.get("action", "")),
            str(line.get("code", "")),
            str(line.get("units", "")),
            str(line.get("service_date", "")),
            str(line.get("line_id", "")),
            str(line.get("reason", "")),
        )
        for line in found
        if isinstance(line, dict)
    )
    return Message(entry.sequence, at, entry.cause, entry.message_id, str(version), lines, True)
