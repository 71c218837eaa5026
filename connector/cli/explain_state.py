"""``ivpush explain --state S --encounter ID``: a stored encounter, coded again, with what it emitted.

The encounter (full key, or a visit number naming one encounter with stored outcomes or still
open) is read from the state and evaluated again with the current mappings (pure ``evaluate``:
nothing is written). The text shows it as ``explain`` shows a feed's encounters, then the
stored outcomes that differ from the current ones, then every charge message it emitted.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3

from connector.bootstrap import POSTGRES_SCHEMES, StoreOpenError, open_store, store_label
from connector.cli import explain_render as render
from connector.cli.feeds import encounter_keys
from connector.model import AdministrationOutcome, HistoryEntry
from connector.policy.model import Policy
from connector.rules import evaluate
from connector.rules.outcomes import outcomes
from connector.settle import CODING_FAILED, EncounterFailed, guarded
from connector.store.base import EncounterState, Store, Transaction


class ExplainError(Exception):
    """The state cannot be read or does not hold the encounter (one line, no traceback)."""


def explain_stored(spec: str, wanted: str, policy: Policy) -> list[str]:
    """The text explaining encounter ``wanted`` of the state ``spec``.

    Raises:
        ExplainError: The state cannot be opened or read, or holds no such encounter.
    """
    label = store_label(spec)
    if spec != ":memory:" and not spec.startswith(POSTGRES_SCHEMES) and not os.path.isfile(spec):
        raise ExplainError(f"no such state file: {spec}")
    try:
        store = open_store(spec)
    except StoreOpenError as error:
        raise ExplainError(str(error)) from error
    try:
        with store.transaction() as tx:
            key = _find(tx, wanted, label)
            state = tx.get(key)
            stored = tx.outcomes(key)
            emitted = tx.history(key)
    except (sqlite3.Error, OSError, RuntimeError) as error:  # not a state file, a server gone, a newer schema
        raise ExplainError(f"cannot read the state {label}: {type(error).__name__}: {error}") from error
    finally:
        _close(store)
    if state is None:
        raise ExplainError(f"no encounter '{wanted}' in the state {label}")
    return _text(state, stored, emitted, policy)


def _close(store: Store) -> None:
    with contextlib.suppress(sqlite3.Error, OSError, RuntimeError):  # already reported, or nothing to release
        store.close()


def _find(tx: Transaction, wanted: str, label: str) -> str:
    """The key of the encounter ``wanted`` names: itself, or the one key ending in ``|wanted``."""
    if tx.get(wanted) is not None:
        return wanted
    matches = [key for key in encounter_keys(tx) if key.rpartition("|")[2] == wanted]
    if not matches:
        raise ExplainError(
            f"no encounter '{wanted}' in the state {label} (give the full key, authority|visit number, "
            "for an encounter closed without stored outcomes)"
        )
    if len(matches) > 1:
        raise ExplainError(f"visit number '{wanted}' names {len(matches)} encounters: {', '.join(matches)}")
    return matches[0]


def _text(
    state: EncounterState, stored: tuple[AdministrationOutcome, ...], emitted: list[HistoryEntry], policy: Policy
) -> list[str]:
    encounter = state.encounter
    status = "closed" if encounter.closed else "open"
    if state.failed:
        status += f", not coded at its last close ({state.failed})"
    note = f"  state: {status}; {state.messages} charge message(s) emitted"
    try:
        result = guarded(CODING_FAILED, "rules", evaluate, encounter, policy)
        now = guarded(CODING_FAILED, "outcomes", outcomes, encounter, result, policy)
    except EncounterFailed as error:  # class only, never the exception's text (it may quote a value)
        failed = f"  cannot be coded with the current mappings ({error.failure.code}: {error.failure.detail})"
        return [f"Encounter {encounter.key}", note, failed, *render.history(emitted)]
    text = render.encounter_text(encounter, result, now)
    out = [*text[:1], note, *text[1:]]
    if not stored:
        out.append("  Stored outcomes: none (not coded yet, or coded before outcomes were stored)")
    else:
        out.extend(render.differences(stored, now))
    return [*out, *render.history(emitted)]
