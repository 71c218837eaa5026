"""The imperative shell for a batch of inputs (architecture: "The flow").

For a batch: in ONE store transaction, skip inputs already seen, apply administrations and
encounter events, and for every touched encounter that should emit (closed, or every change
by setting) evaluate (pure), diff against the lines already emitted (pure), render the delta
in every configured format (pure) and write it to the outbox. The caller acks the inputs
only after ``handle`` returns (the transaction committed), and publishes the outbox.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from connector.model import Administration, ChargeLine, ClaimType, Encounter, ParsedRecord
from connector.model.changes import apply_event
from connector.model.events import EncounterRef
from connector.model.messages import Action, ChargeMessage
from connector.policy.model import Policy
from connector.rules import evaluate
from connector.rules.delta import delta, message
from connector.store.base import EncounterState, OutboxRow, Store, Transaction

Renderer = Callable[[ChargeMessage], bytes]


class EmitOn(StrEnum):
    """When an encounter's lines are emitted."""

    CLOSE = "close"  # at discharge/finish, idle timeout, or end of a replay; deltas after that
    CHANGE = "change"  # after every change


@dataclass(frozen=True)
class ServiceSettings:
    """How the service codes and emits.

    Attributes:
        renderers: Output format name → pure renderer (``json``, ``dft``, ``chargeitem``).
        emit_on: Emit at close (default) or on every change.
        claim_type: Claim type for new encounters.
        default_payer: Payer policy when the feed names none (or an unknown one).
        payer_aliases: Upper-cased insurance identifier (IN1-3/IN1-4, Coverage payor) →
            payer policy name.
    """

    renderers: Mapping[str, Renderer]
    emit_on: EmitOn = EmitOn.CLOSE
    claim_type: ClaimType = ClaimType.FACILITY
    default_payer: str = "default"
    payer_aliases: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    """What one call did (counts only: no PHI)."""

    inputs: int = 0
    duplicates: int = 0
    administrations: int = 0
    events: int = 0
    messages: int = 0
    lines: dict[str, int] = field(default_factory=dict)
    duplicate_keys: list[str] = field(default_factory=list)  # which inputs were duplicates (metrics by type)

    def count(self, emitted: ChargeMessage) -> None:
        """Count a message's line actions by ``action:code``."""
        self.messages += 1
        for item in emitted.lines:
            key = f"{item.action.value}:{item.line.code}"
            self.lines[key] = self.lines.get(key, 0) + 1


class Service:
    """Applies inputs to encounter state and queues the resulting charge messages."""

    def __init__(self, store: Store, policy: Policy, settings: ServiceSettings, clock: Callable[[], float]) -> None:
        self.store = store
        self.policy = policy
        self.settings = settings
        self.clock = clock

    def handle(self, records: Iterable[ParsedRecord]) -> Outcome:
        """Apply a batch of parsed inputs in one transaction."""
        outcome = Outcome()
        now = self.clock()
        records = list(records)
        with self.store.transaction() as tx:
            tx.lock(_encounter_keys(records))
            touched: dict[str, EncounterState] = {}
            for record in records:
                outcome.inputs += 1
                if tx.is_seen(record.dedup_key):
                    outcome.duplicates += 1
                    outcome.duplicate_keys.append(record.dedup_key)
                    continue
                tx.mark_seen(record.dedup_key)
                self._apply(tx, record, touched, now, outcome)
            for state in touched.values():
                self._settle(tx, state, outcome, closing=False)
        return outcome

    def close(self, keys: Iterable[str] | None = None, idle_before: float | None = None) -> Outcome:
        """Close encounters (the given ones, or every open one idle since ``idle_before``) and emit."""
        outcome = Outcome()
        now = self.clock()
        with self.store.transaction() as tx:
            chosen = sorted(set(keys)) if keys is not None else tx.open_encounters(idle_before)
            tx.lock(chosen)
            for key in chosen:
                state = tx.get(key)
                if state is None or state.encounter.closed:
                    continue
                closed = replace(state, encounter=replace(state.encounter, closed=True), updated_at=now)
                self._settle(tx, closed, outcome, closing=True)
        return outcome

    def _state(self, tx: Transaction, touched: dict[str, EncounterState], ref: EncounterRef) -> EncounterState:
        state = touched.get(ref.key) or tx.get(ref.key)
        if state is None:
            encounter = Encounter(
                ref.key, claim_type=self.settings.claim_type, payer=self.settings.default_payer, facility=ref.facility
            )
            state = EncounterState(ref, encounter, 0.0)
        elif ref.patient_id and not state.ref.patient_id:
            state = replace(state, ref=ref)  # a richer identity (from PV1/PID) replaces a bare key
        return state

    def _apply(
        self, tx: Transaction, record: ParsedRecord, touched: dict[str, EncounterState], now: float, outcome: Outcome
    ) -> None:
        for event in record.encounter_events:
            state = self._state(tx, touched, event.encounter)
            payer = self._payer(event.payer_ids)
            touched[state.ref.key] = replace(
                state, encounter=apply_event(state.encounter, event, payer), updated_at=now
            )
            outcome.events += 1
        by_encounter: dict[str, list[Administration]] = {}
        for admin in record.administrations:
            by_encounter.setdefault(admin.encounter_key, []).append(admin)
        for key, admins in by_encounter.items():
            state = self._state(tx, touched, EncounterRef(key, key.rpartition("|")[2]))
            encounter = state.encounter.with_administrations(admins)
            touched[key] = replace(state, encounter=encounter, updated_at=now)
            outcome.administrations += len(admins)

    def _payer(self, payer_ids: tuple[str, ...]) -> str | None:
        for identifier in payer_ids:
            name = self.settings.payer_aliases.get(identifier.strip().upper())
            if name:
                return name
        return None

    def _settle(self, tx: Transaction, state: EncounterState, outcome: Outcome, closing: bool) -> None:
        """Store the state and, when it should emit, queue the delta in every format."""
        encounter = state.encounter
        if closing or encounter.closed or self.settings.emit_on is EmitOn.CHANGE:
            result = evaluate(encounter, self.policy)
            emitted: dict[str, ChargeLine] = tx.emitted(encounter.key)
            actions = delta(result, emitted)
            if actions:
                charge = message(state.ref, encounter, result, actions, state.messages)
                for name, render in self.settings.renderers.items():
                    tx.enqueue(OutboxRow(charge.message_id, encounter.key, name, render(charge)))
                tx.set_emitted(encounter.key, {line.line_id: line for line in result.lines})
                state = replace(state, messages=state.messages + 1)
                outcome.count(charge)
        tx.put(state)


def _encounter_keys(records: Iterable[ParsedRecord]) -> list[str]:
    """Every encounter a batch may change, sorted (the order locks are taken in)."""
    keys = {event.encounter.key for record in records for event in record.encounter_events}
    keys.update(admin.encounter_key for record in records for admin in record.administrations)
    return sorted(keys)


def net_lines(messages: Iterable[ChargeMessage]) -> dict[str, ChargeLine]:
    """The lines still charged after a sequence of messages (charges minus credits)."""
    current: dict[str, ChargeLine] = {}
    for charge in messages:
        for item in charge.lines:
            if item.action is Action.CHARGE:
                current[item.line.line_id] = item.line
            else:
                current.pop(item.line.line_id, None)
    return current
