"""The imperative shell for a batch of inputs (architecture: "The flow").

For a batch: in ONE store transaction, skip inputs already seen, apply administrations and
encounter events, and for every touched encounter that should emit (closed, or every change
by setting) evaluate (pure), diff against the lines already emitted (pure), render the delta
in every configured format (pure) and write it to the outbox. The caller acks the inputs
only after ``handle`` returns (the transaction committed), and publishes the outbox.

One encounter that cannot be coded or rendered (pure code raised on it) affects that
encounter alone. In ``handle_inputs`` the inputs that changed it are left out of the
transaction (``Outcome.rejected``: the caller parks or reports them, code ``coding_failed`` or
``render_failed``) and the rest commits. In ``close`` it stays open, marked ``failed`` with the
code (``Outcome.failed``), and idle sweeps skip it until new input arrives for it; the other
encounters close. Store errors are not isolated: they roll the transaction back and propagate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from connector.identity import learn, resolve
from connector.model import (
    Administration,
    AdministrationOutcome,
    ChargeLine,
    ClaimType,
    Encounter,
    HistoryEntry,
    ParsedRecord,
)
from connector.model.changes import apply_event
from connector.model.emission import EmitOn
from connector.model.events import EncounterRef
from connector.model.messages import Action, ChargeMessage
from connector.policy.model import Policy
from connector.settle import CODING_FAILED, RENDER_FAILED, EncounterFailed, Failure, Renderer, Settled, guarded, settle
from connector.store.base import EncounterState, Store, Transaction

__all__ = ["CODING_FAILED", "RENDER_FAILED", "EmitOn", "Failure", "Outcome", "Renderer", "Service", "ServiceSettings"]


@dataclass(frozen=True)
class ServiceSettings:
    """How the service codes and emits.

    Attributes:
        renderers: Output format name → pure renderer (``json``, ``dft``, ``chargeitem``).
        emit_on: Emit at close (default) or on every change.
        claim_type: Claim type for new encounters.
        default_payer: Payer policy when the feed names no insurance (an identifier the site
            payer map lacks keeps it too, and puts the lines under review).
        identity_key: The site's secret for ``patient_day`` encounter keys
            (``IVPUSH_IDENTITY_KEY``, ``connector.identity``); empty: that fallback is off.
    """

    renderers: Mapping[str, Renderer]
    emit_on: EmitOn = EmitOn.CLOSE
    claim_type: ClaimType = ClaimType.FACILITY
    default_payer: str = "default"
    identity_key: bytes = b""


@dataclass
class Outcome:
    """What one call did (counts, input positions and encounter keys: no PHI).

    ``rejected``: position of each input left out (``handle_inputs``) → why; ``failed``: key of
    each encounter that could not be closed (``close``) → why; ``administration_outcomes``:
    (outcome, reason) → administrations whose stored outcome became that in this call (the
    metric); ``encounter_outcomes``: key → its administrations' outcomes as now stored, for each
    encounter coded in this call (summaries: the latest per encounter counts).
    """

    inputs: int = 0
    duplicates: int = 0
    administrations: int = 0
    events: int = 0
    messages: int = 0
    lines: dict[str, int] = field(default_factory=dict)
    duplicate_keys: list[str] = field(default_factory=list)  # which inputs were duplicates (metrics by type)
    rejected: dict[int, Failure] = field(default_factory=dict)
    failed: dict[str, Failure] = field(default_factory=dict)
    administration_outcomes: dict[tuple[str, str], int] = field(default_factory=dict)
    encounter_outcomes: dict[str, dict[tuple[str, str], int]] = field(default_factory=dict)

    def count_outcomes(self, before: Sequence[AdministrationOutcome], after: Sequence[AdministrationOutcome]) -> None:
        """Count the outcomes that are new or changed since ``before``."""
        held = {(o.administration_id, o.outcome, o.reason) for o in before}
        for item in after:
            if (item.administration_id, item.outcome, item.reason) not in held:
                key = (item.outcome.value, item.reason)
                self.administration_outcomes[key] = self.administration_outcomes.get(key, 0) + 1

    def count(self, emitted: ChargeMessage) -> None:
        """Count a message's line actions by ``action:code``."""
        self.messages += 1
        for item in emitted.lines:
            key = f"{item.action.value}:{item.line.code}"
            self.lines[key] = self.lines.get(key, 0) + 1


@dataclass
class Recoded:
    """What ``Service.recode`` did to a batch of stored encounters.

    ``outcome``: counts, ``failed`` (encounters that cannot be coded now: left as they were) and
    changed administration outcomes; ``messages``: the charge message of each encounter whose
    lines changed, in key order; ``unchanged``: encounters coded again with no delta;
    ``not_recoded``: open encounters that emitted nothing yet (coded when they close).
    """

    outcome: Outcome = field(default_factory=Outcome)
    messages: list[ChargeMessage] = field(default_factory=list)
    unchanged: int = 0
    not_recoded: int = 0


class _DryRun(Exception):
    """Raised inside a recode's transaction to roll it back."""


@dataclass
class _Attempt:
    """One pass over a batch: what it would write (nothing is written until a pass has no failure)."""

    outcome: Outcome
    fresh: list[str]  # dedup keys to mark seen
    settled: list[Settled]


class Service:
    """Applies inputs to encounter state and queues the resulting charge messages."""

    def __init__(self, store: Store, policy: Policy, settings: ServiceSettings, clock: Callable[[], float]) -> None:
        self.store = store
        self.policy = policy
        self.settings = settings
        self.clock = clock

    def handle(self, records: Iterable[ParsedRecord]) -> Outcome:
        """Apply a batch of parsed records in one transaction, each record an input of its own."""
        return self.handle_inputs([(record,) for record in records])

    def handle_inputs(self, inputs: Iterable[Sequence[ParsedRecord]]) -> Outcome:
        """Apply a batch of inputs in one transaction; an input whose encounter cannot be coded is left out.

        Each input (a delivery, an archive record) is one or more records, applied or left out
        as a whole. When applying an input raises, or coding or rendering an encounter it
        changed raises, every input that changed that encounter is left out (nothing of it is
        written, not even its dedup keys) and listed in ``Outcome.rejected`` by position; the
        batch is worked out again without them, so that the others commit.
        """
        now = self.clock()
        with self.store.transaction() as tx:
            given = [tuple(group) for group in inputs]
            unresolved = tx.seen({r.dedup_key for group in given for r in group if r.unresolved is not None})
            groups, rejected = self._identify(tx, given, unresolved)
            tx.lock(_encounter_keys(r for i, group in enumerate(groups) if i not in rejected for r in group))
            seen = tx.seen({r.dedup_key for group in groups for r in group})  # after the locks; marked at the end
            attempt = self._attempt(tx, groups, rejected, now, seen)
            while isinstance(attempt, dict):  # each pass leaves out at least one more input
                rejected.update(attempt)
                attempt = self._attempt(tx, groups, rejected, now, seen)
            for key in attempt.fresh:
                tx.mark_seen(key)
            for settled in attempt.settled:
                self._write(tx, settled, attempt.outcome, now, "change")
        attempt.outcome.rejected = rejected
        return attempt.outcome

    def close(self, keys: Iterable[str] | None = None, idle_before: float | None = None) -> Outcome:
        """Close encounters (the given ones, or every open one idle since ``idle_before``) and emit.

        An encounter that cannot be coded or rendered stays open, marked ``failed`` (listed in
        ``Outcome.failed``); an idle sweep (``idle_before``) skips it until new input changes it.
        """
        outcome = Outcome()
        now = self.clock()
        with self.store.transaction() as tx:
            chosen = sorted(set(keys)) if keys is not None else tx.open_encounters(idle_before)
            tx.lock(chosen)
            for key in chosen:
                state = tx.get(key)
                if state is None or state.encounter.closed:
                    continue
                closed = replace(state, encounter=replace(state.encounter, closed=True), updated_at=now, failed="")
                try:
                    settled = self._settle(tx, closed, closing=True)
                except EncounterFailed as error:
                    tx.put(replace(state, failed=error.failure.code))
                    outcome.failed[key] = error.failure
                    continue
                self._write(tx, settled, outcome, now, "close")
        return outcome

    def recode(
        self, keys: Iterable[str], claim_type: ClaimType | None = None, payer: str | None = None, write: bool = True
    ) -> Recoded:
        """Code stored encounters again under this service's policy; queue what changed (cause ``recode``).

        Each closed encounter, and each open one that already emitted (emission on change), is
        settled as at close: its lines are diffed against those it emitted, and the delta
        (credits, then charges) goes to the outbox and its history. An open one that emitted
        nothing is left to its close. ``claim_type``/``payer`` replace each encounter's claim
        type and default payer policy first (None: keep them). One that cannot be coded is left
        as it was (``outcome.failed``). ``write`` False: the same work, then the transaction is
        rolled back (a dry run: nothing is kept, not even in a cache).
        """
        found = Recoded()
        now = self.clock()
        try:
            with self.store.transaction() as tx:
                chosen = sorted(set(keys))
                tx.lock(chosen)
                for key in chosen:
                    self._recode_one(tx, key, claim_type, payer, found, now)
                if not write:
                    raise _DryRun
        except _DryRun:
            pass
        return found

    def _recode_one(
        self, tx: Transaction, key: str, claim_type: ClaimType | None, payer: str | None, found: Recoded, now: float
    ) -> None:
        stored = tx.get(key)
        if stored is None or not (stored.encounter.closed or stored.messages):
            found.not_recoded += stored is not None
            return
        held = stored.encounter
        claim_type, payer = claim_type or held.claim_type, payer or held.payer
        state = stored
        if (claim_type, payer) != (held.claim_type, held.payer):
            state = replace(stored, encounter=replace(held, claim_type=claim_type, payer=payer))
        try:
            settled = settle(state, tx.emitted(key), self.policy, self.settings.renderers)
        except EncounterFailed as error:
            found.outcome.failed[key] = error.failure
            return
        if settled.charge is not None:
            found.messages.append(settled.charge)
        else:
            found.unchanged += 1
            if state is stored and settled.outcomes == tx.outcomes(key):
                return  # nothing to write
        self._write(tx, settled, found.outcome, now, "recode")

    def _identify(
        self, tx: Transaction, groups: list[tuple[ParsedRecord, ...]], seen: set[str]
    ) -> tuple[list[tuple[ParsedRecord, ...]], dict[int, Failure]]:
        """Key every record to its encounter (identity chain) and store what it teaches.

        ``seen``: which unresolved records were already processed (they are not resolved again).

        Runs once per batch, before the encounter locks are taken, so that the encounters the
        chain resolves to are locked with the others. An input one of whose records names no
        encounter is left out (``missing_encounter_key``) without restarting the batch.
        """
        keyed_groups: list[tuple[ParsedRecord, ...]] = []
        failures: dict[int, Failure] = {}
        for index, group in enumerate(groups):
            keyed: list[ParsedRecord] = []
            for record in group:
                if record.unresolved is not None and record.dedup_key not in seen:
                    found = resolve(record, self.policy.site, tx, self.settings.identity_key)
                    if isinstance(found, Failure):
                        failures[index] = found
                        break
                    record = found  # noqa: PLW2901
                learn(tx, record)
                keyed.append(record)
            keyed_groups.append(group if index in failures else tuple(keyed))
        return keyed_groups, failures

    def _attempt(
        self,
        tx: Transaction,
        groups: list[tuple[ParsedRecord, ...]],
        rejected: Mapping[int, Failure],
        now: float,
        seen: set[str],
    ) -> _Attempt | dict[int, Failure]:
        """Apply and settle every input not rejected (reads only); the inputs to leave out, if any.

        ``seen``: the batch's dedup keys already processed before this transaction.
        """
        outcome = Outcome()
        touched: dict[str, EncounterState] = {}
        owners: dict[str, set[int]] = {}  # encounter key → the inputs that changed it
        fresh: dict[str, None] = {}
        for index, group in enumerate(groups):
            if index in rejected:
                continue
            for record in group:
                outcome.inputs += 1
                if record.dedup_key in fresh or record.dedup_key in seen:
                    outcome.duplicates += 1
                    outcome.duplicate_keys.append(record.dedup_key)
                    continue
                fresh[record.dedup_key] = None
                try:
                    changed = self._apply(tx, record, touched, now, outcome)
                except EncounterFailed as error:  # touched holds part of it: start again without it
                    return {index: error.failure}
                for key in changed:
                    owners.setdefault(key, set()).add(index)
        settled: list[Settled] = []
        failures: dict[int, Failure] = {}
        for key, state in touched.items():
            try:
                settled.append(self._settle(tx, state, closing=False))
            except EncounterFailed as error:
                failures.update(dict.fromkeys(owners[key], error.failure))
        return failures or _Attempt(outcome, list(fresh), settled)

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
    ) -> set[str]:
        """Apply one record to the touched states (new input clears a ``failed`` mark); the keys it changed."""
        changed: set[str] = set()
        for event in record.encounter_events:
            state = self._state(tx, touched, event.encounter)
            encounter = guarded(CODING_FAILED, "encounter event", apply_event, state.encounter, event)
            touched[state.ref.key] = EncounterState(state.ref, encounter, now, state.messages)  # failed cleared
            changed.add(state.ref.key)
            outcome.events += 1
        by_encounter: dict[str, list[Administration]] = {}
        for admin in record.administrations:
            by_encounter.setdefault(admin.encounter_key, []).append(admin)
        for key, admins in by_encounter.items():
            state = self._state(tx, touched, EncounterRef(key, key.rpartition("|")[2]))
            encounter = guarded(CODING_FAILED, "administrations", state.encounter.with_administrations, admins)
            touched[key] = EncounterState(state.ref, encounter, now, state.messages)  # failed cleared
            changed.add(key)
            outcome.administrations += len(admins)
        return changed

    def _settle(self, tx: Transaction, state: EncounterState, closing: bool) -> Settled:
        """The state to store and, when it should emit, its delta in every format (reads, no write).

        Raises:
            EncounterFailed: The rules (``coding_failed``) or a renderer (``render_failed``) raised.
        """
        if not (closing or state.encounter.closed or self.settings.emit_on is EmitOn.CHANGE):
            return Settled(state)
        return settle(state, tx.emitted(state.encounter.key), self.policy, self.settings.renderers)

    def _write(self, tx: Transaction, settled: Settled, outcome: Outcome, now: float, cause: str) -> None:
        """Store the state and outcomes, queue the settled charge message (if any) and record it."""
        key = settled.state.encounter.key
        if settled.charge is not None:
            for row in settled.rows:
                tx.enqueue(row)
            tx.set_emitted(key, settled.lines)
            outcome.count(settled.charge)
            sequence = settled.state.messages - 1
            tx.add_history(HistoryEntry(key, sequence, settled.charge.message_id, now, cause, settled.record))
        if settled.outcomes is not None:
            outcome.count_outcomes(tx.outcomes(key), settled.outcomes)
            counts: dict[tuple[str, str], int] = {}
            for item in settled.outcomes:
                pair = (item.outcome.value, item.reason)
                counts[pair] = counts.get(pair, 0) + 1
            outcome.encounter_outcomes[key] = counts
            tx.put_outcomes(key, settled.outcomes)
        tx.put(settled.state)


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
