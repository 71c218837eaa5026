"""The service steps of the encounter identity chain (docs/site-setup.md, "Encounter identity").

The adapters try the fields a message carries (PV1-19 → PID-18 → PV1-50 by default). A
message with none of them reaches the service with ``IdentityHints``; the steps that need
what earlier messages said run here, in the order the site's chain lists them:

1. ``order``: a placer order id (ORC-2/ORC-4) seen earlier with a visit number;
2. ``visit``: the patient's single ADT visit whose window (admit … discharge) covers the
   first administration; two covering visits are ambiguous and never guessed between;
3. the site fallback ``patient_day``: one encounter per patient and local day of service,
   keyed by an HMAC of the patient key and the date under the site's identity key
   (``IVPUSH_IDENTITY_KEY``): encounter keys are logged, and a plain digest of an MRN can be
   reversed by trying every MRN. Without a key the fallback does not apply;
4. otherwise the input is rejected ``missing_encounter_key`` (parked: re-driven once the
   ADT or the order's first message has arrived).

Every record's links and visits are written to the unit of work as soon as it is keyed, so a
later record of the same batch sees them exactly as a later batch would: one set of rules (the
store's: first committed link wins, visit windows merge, two covering visits are ambiguous).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace

from connector.model import EncounterEvent, EncounterRef, IdentityHints, ParsedRecord
from connector.policy.site import SiteProfile
from connector.settle import Failure
from connector.store.base import Transaction

MISSING_ENCOUNTER_KEY = "missing_encounter_key"


def learn(tx: Transaction, record: ParsedRecord) -> None:
    """Store what a keyed record says about its orders and its patient's visit."""
    key = _key_of(record)
    if key and record.order_ids:
        tx.link_orders(record.order_ids, key)
    if record.visit is not None:
        tx.add_visit(record.visit)


def resolve(record: ParsedRecord, site: SiteProfile, tx: Transaction, secret: bytes = b"") -> ParsedRecord | Failure:
    """The record keyed to its encounter, or why it cannot be."""
    hints = record.unresolved
    if hints is None:
        return record
    key = ""
    for step in site.identity_chain:
        if step == "order":
            key = _by_order(hints, tx)
        elif step == "visit":
            key = _by_visit(hints, tx)
        if key:
            break
    if not key and site.fallback == "patient_day" and hints.patient_key and hints.at is not None:
        if not secret:
            return Failure(MISSING_ENCOUNTER_KEY, "the patient_day fallback needs IVPUSH_IDENTITY_KEY")
        day = hints.at.date().isoformat()
        mac = hmac.new(secret, f"{hints.patient_key}\x1f{day}".encode(), hashlib.sha256).hexdigest()[:24]
        key = f"{hints.authority}|pd-{mac}"
    if not key:
        return Failure(MISSING_ENCOUNTER_KEY, "no visit number, order link or ADT visit names the encounter")
    return keyed(record, key)


def keyed(record: ParsedRecord, key: str) -> ParsedRecord:
    """``record`` with every administration and event under encounter ``key``."""
    authority, _, visit = key.rpartition("|")
    admins = tuple(replace(a, encounter_key=key) for a in record.administrations)
    events = tuple(_rekeyed(event, key, authority, visit) for event in record.encounter_events)
    return replace(record, administrations=admins, encounter_events=events, unresolved=None)


def _rekeyed(event: EncounterEvent, key: str, authority: str, visit: str) -> EncounterEvent:
    ref = event.encounter
    return replace(
        event, encounter=EncounterRef(key, visit, ref.assigning_authority or authority, ref.patient_id, ref.facility)
    )


def _by_order(hints: IdentityHints, tx: Transaction) -> str:
    """The encounter the message's orders were first seen with, while it is open.

    A discharged encounter takes a later administration only through its visit window (the
    ``visit`` step): a standing order reused on the next visit must not bill the first one.
    Orders linked to two encounters are ambiguous.
    """
    found = {key for order_id in hints.placer_ids if (key := tx.order_link(order_id))}
    if len(found) != 1:
        return ""
    key = found.pop()
    state = tx.get(key)
    return "" if state is not None and state.encounter.closed else key


def _by_visit(hints: IdentityHints, tx: Transaction) -> str:
    """The patient's single ADT visit covering the first administration (store rules)."""
    if not hints.patient_key or hints.at is None:
        return ""
    return tx.visit_at(hints.patient_key, hints.at) or ""


def _key_of(record: ParsedRecord) -> str:
    for event in record.encounter_events:
        if event.encounter.key:
            return event.encounter.key
    for admin in record.administrations:
        if admin.encounter_key:
            return admin.encounter_key
    return ""
