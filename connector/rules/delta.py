"""Deltas: what changed since the lines already emitted (architecture invariant 3).

Nothing is rewritten silently: every emitted line that no longer holds is credited, every
new line is charged. A line is identified by its deterministic id, which covers everything
that makes it the line it is (code, date, modifiers, units, contributing administrations,
policy), so an unchanged line is never re-sent and a changed one is credit + rebill.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from connector.model import ChargeLine, ChargeResult, Encounter
from connector.model.events import EncounterRef
from connector.model.ids import digest
from connector.model.messages import Action, ChargeMessage, LineAction


def delta(result: ChargeResult, emitted: Mapping[str, ChargeLine]) -> tuple[LineAction, ...]:
    """Credits for emitted lines that no longer hold, then charges for new lines."""
    current = {line.line_id: line for line in result.lines}
    credits = [LineAction(Action.CREDIT, line) for line_id, line in emitted.items() if line_id not in current]
    charges = [LineAction(Action.CHARGE, line) for line_id, line in current.items() if line_id not in emitted]
    return (*_ordered(credits), *_ordered(charges))


def _ordered(actions: Iterable[LineAction]) -> list[LineAction]:
    return sorted(actions, key=lambda a: (a.line.service_date, a.line.code, a.line.line_id))


def message(
    ref: EncounterRef, encounter: Encounter, result: ChargeResult, actions: tuple[LineAction, ...], sequence: int
) -> ChargeMessage:
    """The charge message for a delta, with an id derived from its content.

    Args:
        ref: The encounter's output identity.
        encounter: The encounter as coded.
        result: The coding result.
        actions: The delta.
        sequence: How many messages this encounter emitted before (so charging, crediting
            and charging the same line again yields three distinct message ids).
    """
    parts = (ref.key, str(sequence), *(f"{a.action.value}:{a.line.line_id}" for a in actions))
    message_id = "msg-" + digest(parts)
    times = [a.start for a in encounter.administrations] + [a.end for a in encounter.administrations if a.end]
    return ChargeMessage(
        message_id=message_id,
        encounter=ref,
        patient_class=result.patient_class,
        claim_type=result.claim_type,
        policy=result.policy,
        policy_version=result.policy_version,
        lines=actions,
        as_of=max(times, key=lambda moment: moment.timestamp()),
    )
