"""Every administration's outcome: coded, no line (and why), or needs review (and what to fix).

Derived from the coding result, so it is as pure and order-insensitive as ``evaluate``:

- **coded**: behind at least one line, none flagged ``needs_review``;
- **no line**: the rules' reason (not given, inpatient, within 30 min of X, integral …);
- **needs review**: a route, method or drug the mappings lack (with the code, its system and
  the field it came from), lines flagged for an encounter-wide reason (unknown class, payer
  identifiers not in the payer map) or for this administration (DST-ambiguous time,
  documented duration far beyond the order, professional initial without ``primary``).
"""

from __future__ import annotations

from connector.model import (
    Administration,
    AdministrationOutcome,
    ChargeResult,
    Coding,
    Decision,
    Encounter,
    OutcomeKind,
    Reason,
    Review,
    ServiceKind,
    Unmapped,
)
from connector.policy.model import Policy
from connector.rules.setting import UNMAPPED_PAYER

# Where each kind of code is read from, per source kind (for ``ivpush unmapped`` and explain).
FIELDS = {
    "hl7v2": {"route": "RXR-1", "method": "RXR-4/RXR-3", "drug": "RXA-5", "payer": "IN1-2/IN1-3/IN1-4"},
    "fhir": {
        "route": "dosage.route",
        "method": "dosage.method",
        "drug": "medication[x]",
        "payer": "Coverage.payor",
    },
}
_NOT_SERVICES = (ServiceKind.EXCLUDED, ServiceKind.INJECTION)


def outcomes(encounter: Encounter, result: ChargeResult, policy: Policy) -> tuple[AdministrationOutcome, ...]:
    """One outcome per administration of ``encounter`` (in its time order)."""
    decisions = {d.administration_id: d for d in result.decisions}
    review_lines: dict[str, list[str]] = {}
    for line in result.lines:
        if "needs_review" in line.flags:
            for admin_id in line.administration_ids:
                review_lines.setdefault(admin_id, []).append(line.code)
    found = []
    for admin in encounter.administrations:
        found.append(_outcome(admin, decisions.get(admin.id), review_lines.get(admin.id), result, policy))
    return tuple(found)


def _outcome(
    admin: Administration,
    decision: Decision | None,
    flagged: list[str] | None,
    result: ChargeResult,
    policy: Policy,
) -> AdministrationOutcome:
    fields = FIELDS.get(admin.source.kind, {})
    day = admin.start.date()
    unmapped: list[Unmapped] = []
    mappings: list[str] = []
    route, _ = policy.route_of(admin.route, day)
    if route is None:
        unmapped.extend(_sent("route", admin.route.codings, admin.route.text, fields))
    else:
        mappings.append(route.dated.origin)
    if not admin.method.is_empty:
        method, _ = policy.method_of(admin.method, day)
        if method is None:
            unmapped.extend(_sent("method", admin.method.codings, admin.method.text, fields))
        else:
            mappings.append(method.dated.origin)
    drug = policy.drugs.resolve(admin.drug)
    if drug.mapped:
        mappings.extend(policy.drugs.entries[i].origin for i in drug.ingredients if i in policy.drugs.entries)
    else:
        unmapped.extend(_sent("drug", admin.drug.codings[:1], admin.drug.text, fields))
    mappings.extend(result.mappings)
    source = admin.source
    if decision is None:
        return AdministrationOutcome(
            admin.id, OutcomeKind.NEEDS_REVIEW, "no_decision", "The rules made no decision.", (), source
        )
    concerning = [r for r in result.reviews if not r.administration_ids or admin.id in r.administration_ids]
    if decision.reason_code is Reason.CODED:
        for review in concerning:
            if review.code == UNMAPPED_PAYER:
                unmapped.extend(_payer_ids(review, fields))
        if flagged or (not drug.mapped and decision.kind not in _NOT_SERVICES):
            code = concerning[0].code if concerning else ("unmapped_drug" if not drug.mapped else "needs_review")
            detail = " ".join([decision.reason, *(f"Needs review: {r.detail}" for r in concerning)])
            if not drug.mapped and not concerning:
                detail += " Needs review: drug not in the drug mappings."
            kind = OutcomeKind.NEEDS_REVIEW
        else:
            code, detail, kind = Reason.CODED.value, decision.reason, OutcomeKind.CODED
        return AdministrationOutcome(
            admin.id, kind, code, detail, decision.codes, source, tuple(dict.fromkeys(mappings)), tuple(unmapped)
        )
    if decision.reason_code is Reason.UNKNOWN_ROUTE:
        return AdministrationOutcome(
            admin.id,
            OutcomeKind.NEEDS_REVIEW,
            "unmapped_route",
            decision.reason,
            (),
            source,
            tuple(dict.fromkeys(mappings)),
            tuple(unmapped),
        )
    return AdministrationOutcome(
        admin.id,
        OutcomeKind.NO_LINE,
        decision.reason_code.value,
        decision.reason,
        (),
        source,
        tuple(dict.fromkeys(mappings)),
        tuple(u for u in unmapped if u.kind != "route"),
    )


def _sent(kind: str, codings: tuple[Coding, ...], text: str, fields: dict[str, str]) -> list[Unmapped]:
    """The codes (else the text) of an unmapped value, as sent."""
    where = fields.get(kind, kind)
    found = [Unmapped(kind, c.system, c.code, where) for c in codings]
    if not found and text:
        found.append(Unmapped(kind, "", text, where))
    if not found:
        found.append(Unmapped(kind, "", "", where))
    return found


def _payer_ids(review: Review, fields: dict[str, str]) -> list[Unmapped]:
    """The identifiers an ``unmapped_payer`` review names."""
    return [Unmapped("payer", "", sent, fields.get("payer", "payer")) for sent in review.sent]
