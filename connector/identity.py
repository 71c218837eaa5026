"""The service steps of the encounter identity chain (docs/site-setup.md, "Encounter identity").

The adapters try the fields a message carries (PV1-19 → PID-18 → PV1-50 by default). A
message with none of them reaches the service with ``IdentityHints``; the steps that need
what earlier messages said run here, in the order the site's chain lists them:

1. ``order``: a placer order id (ORC-2/ORC-4) seen earlier with a visit number;
2. ``visit``: the patient's single ADT visit whose window (admit … discharge) covers the
   first administration; two covering visits are ambiguous and never guessed between;
3. the site fallback ``patient_day``: one encounter per patient and local day of service,
   keyed by a digest (the key is logged, the patient id must not be);
4. otherwise the input is rejected ``missing_encounter_key`` (parked: re-driven once the
   ADT or the order's first message has arrived).

Links and visits learned in the same batch count (``Learned``), so an ADT and a RAS in one
batch resolve like in two.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from connector.model import EncounterEvent, EncounterRef, IdentityHints, ParsedRecord, VisitWindow
from connector.model.ids import digest
from connector.policy.site import SiteProfile
from connector.settle import Failure
from connector.store.base import Transaction

MISSING_ENCOUNTER_KEY = "missing_encounter_key"


@dataclass
class Learned:
    """Order links and visits a batch has seen but not yet written."""

    links: dict[str, str] = field(default_factory=dict)
    visits: list[VisitWindow] = field(default_factory=list)

    def learn(self, record: ParsedRecord) -> None:
        """Remember what a resolved record says about orders and visits."""
        key = _key_of(record)
        if key:
            for order_id in record.order_ids:
                held = self.links.get(order_id)
                self.links[order_id] = key if held is None else min(held, key)
        if record.visit is not None:
            self.visits.append(record.visit)

    def write(self, tx: Transaction) -> None:
        """Store the links and visits (after the batch's attempt succeeded)."""
        by_encounter: dict[str, list[str]] = {}
        for order_id, key in sorted(self.links.items()):
            by_encounter.setdefault(key, []).append(order_id)
        for key, order_ids in by_encounter.items():
            tx.link_orders(order_ids, key)
        for window in self.visits:
            tx.add_visit(window)


def resolve(record: ParsedRecord, site: SiteProfile, tx: Transaction, learned: Learned) -> ParsedRecord | Failure:
    """The record keyed to its encounter, or why it cannot be."""
    hints = record.unresolved
    if hints is None:
        return record
    key = ""
    for step in site.identity_chain:
        if step == "order":
            key = _by_order(hints, tx, learned)
        elif step == "visit":
            key = _by_visit(hints, tx, learned)
        if key:
            break
    if not key and site.fallback == "patient_day" and hints.patient_key and hints.at is not None:
        key = f"{hints.authority}|pd-{digest((hints.patient_key, hints.at.date().isoformat()), 16)}"
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


def _by_order(hints: IdentityHints, tx: Transaction, learned: Learned) -> str:
    found = sorted({learned.links.get(o) or tx.order_link(o) or "" for o in hints.placer_ids} - {""})
    return found[0] if len(found) == 1 else ""  # two encounters for one message's orders: ambiguous


def _by_visit(hints: IdentityHints, tx: Transaction, learned: Learned) -> str:
    if not hints.patient_key or hints.at is None:
        return ""
    at = hints.at
    batch = {w.encounter_key for w in learned.visits if w.patient_key == hints.patient_key and _covers(w, at)}
    stored = tx.visit_at(hints.patient_key, at)
    found = batch | ({stored} if stored else set())
    return next(iter(found)) if len(found) == 1 else ""


def _covers(window: VisitWindow, at: datetime) -> bool:
    return (window.start is None or window.start <= at) and (window.end is None or at <= window.end)


def _key_of(record: ParsedRecord) -> str:
    for event in record.encounter_events:
        if event.encounter.key:
            return event.encounter.key
    for admin in record.administrations:
        if admin.encounter_key:
            return admin.encounter_key
    return ""
