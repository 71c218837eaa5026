"""HL7 v2 encounter identity: the site's identity chain, as far as one message can follow it.

The chain (``policy.site.identity_chain``, default ``PV1-19, PID-18, PV1-50, order, visit``)
names where an administration's encounter comes from, in order. The message steps are read
here, in the order the site lists them (a site may drop or reorder them):

- ``PV1-19`` visit number (CX), the encounter itself;
- ``PID-18`` patient account number (CX), which many sites bill by;
- ``PV1-50`` alternate visit id (CX), e.g. the number of a preadmission or an ED visit.

The first step that carries a number keys the encounter as ``authority|number``; the
authority is the identifier's CX.4 (HD.1), else the sending facility (MSH-4). A number or
authority that is sent but broken (whitespace only, control characters) is a reject
(``bad_identifier``), never a fallback to the next step: it may be another encounter's.

When no message step carries a number, the service steps remain: ``order`` (an order-to-
encounter link learned from an earlier message that sent ORC-2/ORC-4 with a visit number)
and ``visit`` (the patient's ADT visit window that covers the administration), then the
site ``fallback`` (``patient_day`` keys the patient's day). The adapter then returns the
administrations keyed ``""`` with ``IdentityHints`` for the service to resolve; only a site
with neither service step nor fallback has the message rejected here, ``missing_encounter_key``.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from connector.adapters.errors import BadIdentifier, MissingEncounterKey
from connector.adapters.hl7v2.encoding import Syntax
from connector.adapters.hl7v2.segments import Message, Segment
from connector.adapters.sanity import identifier
from connector.model import EncounterRef, IdentityHints
from connector.policy.site import SiteProfile

_MEMO_TEXT = 1024  # longer PID+PV1 texts are read every time: the cache must stay small


def encounter_ref(
    pid: Segment | None, pv1: Segment | None, facility: str, site: SiteProfile, *, resolvable: bool
) -> EncounterRef:
    """The encounter from the first message step of the site's chain that carries a number.

    Args:
        pid: The PID segment, if sent.
        pv1: The PV1 segment, if sent.
        facility: Sending facility (MSH-4 HD.1), the default assigning authority.
        site: The site profile (its identity chain and fallback).
        resolvable: Whether the message can be resolved by the service when no step carries a
            number (a RAS can; an ADT that names no visit changes no known encounter).

    Returns:
        The encounter; ``key`` and ``visit_number`` empty when no step carries a number and
        the service may still resolve it (``site.rejects_unkeyed`` false).

    Raises:
        BadIdentifier: The first step that is sent holds a broken number or authority.
        MissingEncounterKey: No step carries a number and nothing else can resolve it.
    """
    return _encounter(pid, pv1, facility, site.field_steps, not resolvable or site.rejects_unkeyed)


def _encounter(
    pid: Segment | None, pv1: Segment | None, facility: str, steps: tuple[str, ...], unkeyed_rejected: bool
) -> EncounterRef:
    """``encounter_ref`` on the chain's field steps; ``unkeyed_rejected``: no number is an error."""
    patient = pid.value(3) if pid else ""
    patient_id = identifier(patient, "PID-3") if patient else ""
    for step in steps:
        segment = pv1 if step.startswith("PV1") else pid
        cx = segment.components(int(step[4:])) if segment else []
        if not cx or not cx[0]:
            continue
        number = identifier(cx[0], step)
        sent_authority = cx[3] if len(cx) > 3 else ""
        authority = identifier(sent_authority, f"{step} CX.4") if sent_authority else facility
        return EncounterRef(f"{authority}|{number}", number, authority, patient_id, facility)
    if unkeyed_rejected:
        raise MissingEncounterKey(f"none of {', '.join(steps) or 'the chain fields'} carries a number")
    return EncounterRef("", "", facility, patient_id, facility)


def encounter_and_account(
    pid: Segment | None, pv1: Segment | None, facility: str, site: SiteProfile, *, resolvable: bool
) -> tuple[EncounterRef, str]:
    """``encounter_ref`` and ``account_number``, cached by the PID and PV1 texts.

    A feed sends the same PID and PV1 with every administration of a visit, and reading the
    identity chain is a large share of a short RAS. The result depends only on the two
    segments' text and syntax, the facility, the chain's field steps and whether a message
    without a number is rejected, which make the key; the values are immutable. A failure is
    not cached: it is raised again, the same, on every message.

    Raises:
        BadIdentifier: As ``encounter_ref``.
        MissingEncounterKey: As ``encounter_ref``.
    """
    sent = pid or pv1
    if sent is None or len(pid.text if pid else "") + len(pv1.text if pv1 else "") > _MEMO_TEXT:
        return encounter_ref(pid, pv1, facility, site, resolvable=resolvable), account_number(pid)
    unkeyed_rejected = not resolvable or site.rejects_unkeyed
    return _identity_of(
        pid.text if pid else None, pv1.text if pv1 else None, sent.syntax, facility, site.field_steps, unkeyed_rejected
    )


@lru_cache(maxsize=4096)
def _identity_of(
    pid_text: str | None,
    pv1_text: str | None,
    syntax: Syntax,
    facility: str,
    steps: tuple[str, ...],
    unkeyed_rejected: bool,
) -> tuple[EncounterRef, str]:
    pid = Segment(pid_text, syntax) if pid_text is not None else None
    pv1 = Segment(pv1_text, syntax) if pv1_text is not None else None
    return _encounter(pid, pv1, facility, steps, unkeyed_rejected), account_number(pid)


def account_number(pid: Segment | None) -> str:
    """PID-18 patient account number (CX.1) as sent, trimmed; ``""`` when none or a broken one is sent.

    Read whatever the site's identity chain says: the account is kept on the encounter for
    finding it (the console's search), whether or not it keys it. The CX.4 authority is not
    kept (the account number is shown and searched as the feed prints it). A broken number
    (whitespace only, control characters) is left out, not rejected: like an order link, it is
    a finding aid, and a charge is not lost over it. Where PID-18 *keys* the encounter, the
    identity step rejects it ``bad_identifier`` as before.
    """
    cx = pid.components(18) if pid else []
    if not cx or not cx[0]:
        return ""
    try:
        return identifier(cx[0], "PID-18")
    except BadIdentifier:
        return ""


def placer_ids(message: Message, authority: str) -> tuple[str, ...]:
    """``authority|number`` of every ORC-2 (placer order) and ORC-4 (placer group) EI.1, sorted.

    The authority is the sending facility (MSH-4) whether or not a visit number was sent, so
    that the link a message with a visit number teaches matches the one without. Numbers that
    are not usable identifiers are left out (a link, not a key: nothing is rejected for it).
    """
    found: set[str] = set()
    for orc in message.every("ORC"):
        for number in (2, 4):
            value = orc.value(number).strip()
            if value and value.isprintable():
                found.add(f"{authority}|{value}")
    return tuple(sorted(found))


def patient_key(pid: Segment | None, facility: str) -> str:
    """``authority|PID-3 CX.1`` (authority: PID-3 CX.4 HD.1, else MSH-4), or ``""`` when none is sent.

    Raises:
        BadIdentifier: The number or its authority is sent but broken.
    """
    cx = pid.components(3) if pid else []
    if not cx or not cx[0]:
        return ""
    number = identifier(cx[0], "PID-3")
    sent_authority = cx[3] if len(cx) > 3 else ""
    authority = identifier(sent_authority, "PID-3 CX.4") if sent_authority else facility
    return f"{authority}|{number}"


def identity_hints(message: Message, pid: Segment | None, facility: str, starts: tuple[datetime, ...]) -> IdentityHints:
    """What the service needs to resolve a message without a visit number.

    Args:
        message: The message (its ORC segments).
        pid: Its PID segment.
        facility: Sending facility (MSH-4), the authority of the resolved key.
        starts: The administrations' start times (RXA-3, in the facility's zone).
    """
    return IdentityHints(
        authority=facility,
        placer_ids=placer_ids(message, facility),
        patient_key=patient_key(pid, facility),
        at=min(starts) if starts else None,
    )
