"""Coding one encounter's delta and rendering it, with any failure confined to that encounter.

``settle`` is the pure step ``service.Service`` takes for every encounter that should emit:
evaluate the encounter (rules), diff against the lines already emitted, build the charge
message and render it in every format. Pure code that raises on one encounter — an event it
cannot apply, the rules, a renderer refusing a value (the ChargeItem models reject what FHIR
does not allow) — raises ``EncounterFailed`` with a reject code and a detail that names the
step and the exception class, never the exception's text (it may quote a value).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import ParamSpec, TypeVar

from connector.emitters.json_charge import render as render_json
from connector.model import AdministrationOutcome, ChargeLine
from connector.model.messages import ChargeMessage
from connector.policy.model import Policy
from connector.rules import evaluate
from connector.rules.delta import delta, message
from connector.rules.outcomes import outcomes
from connector.store.base import EncounterState, OutboxRow

Renderer = Callable[[ChargeMessage], bytes]
P = ParamSpec("P")
T = TypeVar("T")
CODING_FAILED = "coding_failed"  # an encounter event, the rules or the message raised
RENDER_FAILED = "render_failed"  # a renderer raised


@dataclass(frozen=True)
class Failure:
    """Why an encounter could not be coded or rendered.

    Attributes:
        code: ``coding_failed`` or ``render_failed`` (the reject code).
        detail: The step and the exception class (``chargeitem renderer: ValidationError``).
    """

    code: str
    detail: str


class EncounterFailed(Exception):
    """Pure code raised on one encounter; ``failure`` says where."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.detail)
        self.failure = failure


def guarded(code: str, what: str, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``call(*args)``, anything it raises turned into ``EncounterFailed`` (class name only, no value)."""
    try:
        return call(*args, **kwargs)
    except Exception as error:
        raise EncounterFailed(Failure(code, f"{what}: {error.__class__.__name__}")) from error


@dataclass(frozen=True)
class Settled:
    """An encounter's state to store and, when it emits, its charge message rendered in every format.

    ``outcomes``: every administration's outcome when the encounter was coded (None: it was not,
    e.g. still open with emission at close); ``record``: the message in the JSON charge format,
    for the encounter's history.
    """

    state: EncounterState
    charge: ChargeMessage | None = None
    rows: tuple[OutboxRow, ...] = ()
    lines: Mapping[str, ChargeLine] = field(default_factory=dict)
    outcomes: tuple[AdministrationOutcome, ...] | None = None
    record: bytes = b""


def settle(
    state: EncounterState, emitted: Mapping[str, ChargeLine], policy: Policy, renderers: Mapping[str, Renderer]
) -> Settled:
    """The delta of ``state`` against the ``emitted`` lines, rendered in every format.

    Raises:
        EncounterFailed: The rules (``coding_failed``) or a renderer (``render_failed``) raised.
    """
    encounter = state.encounter
    result = guarded(CODING_FAILED, "rules", evaluate, encounter, policy)
    found = guarded(CODING_FAILED, "outcomes", outcomes, encounter, result, policy)
    actions = guarded(CODING_FAILED, "rules", delta, result, emitted)
    if not actions:
        return Settled(state, outcomes=found)
    charge = guarded(CODING_FAILED, "rules", message, state.ref, encounter, result, actions, state.messages)
    rows = tuple(
        OutboxRow(charge.message_id, encounter.key, name, guarded(RENDER_FAILED, f"{name} renderer", render, charge))
        for name, render in renderers.items()
    )
    lines = {line.line_id: line for line in result.lines}
    record = next((row.body for row in rows if row.format == "json"), b"") or guarded(
        RENDER_FAILED, "json renderer", render_json, charge
    )
    return Settled(replace(state, messages=state.messages + 1), charge, rows, lines, found, record)
