"""The payer of an Encounter: Encounter.account → Account.coverage (by priority) → Coverage → payor.

Path (R4/R4B and R5 alike, except the payor element):

1. ``Encounter.account``, in order: the first reference that names an Account this document
   holds (contained in the Encounter, or a Bundle entry) and whose status is not
   ``entered-in-error``. An account held elsewhere is not fetched.
2. ``Account.coverage``, ordered by ``priority`` (lowest first; entries without a priority
   after those with one; equal priorities in list order). The primary coverage is the first
   whose Coverage is not ``cancelled`` or ``entered-in-error``. When that Coverage is not in
   the document, the payer is unknown (``()``): the next coverage is a secondary payer and
   is never promoted to primary on a guess.
3. The payors of that Coverage (R4 ``payor[]``; R5 ``insurer``), in order, each giving: its
   identifiers (the Reference's ``identifier.value``, then the ``identifier[].value`` of the
   Organization it resolves to in the document), then the id the reference names
   (``Organization/BCBS-IL`` → ``BCBS-IL``; a ``urn:`` reference, the id of the entry it
   resolves to; never the local id of a contained Organization), then its name (the Reference's ``display``, else
   the resolved Organization's ``name``); de-duplicated, most specific first, so the site
   payer map can match any of them.

A payor that is a Patient or RelatedPerson (self-pay) gives nothing: its identifiers, id and
display are a person's, never a payer's, and would leak PHI into review reasons. A value that
is blank or holds control characters is skipped. The Coverage's own identifiers (the member
id) are never read.

References follow FHIR: ``#id`` names a resource contained in the resource that holds the
reference's container (the Encounter for a contained Account and Coverage), else a Bundle
entry. A reference to a resource of another type is ``invalid_fhir`` (as for a Medication).

Account and Coverage resources arrive inside a Bundle with the Encounter pointing to them
(or contained in it). A Bundle entry no Encounter points to is read like any other unrelated
entry (validated, no record, no effect); a document holding only an Account or a Coverage is
rejected ``unsupported_message_type``, as any resource other than MedicationAdministration,
Encounter or Bundle (there is no payer to attach it to).
"""

from __future__ import annotations

from typing import Final

from connector.adapters.errors import BadIdentifier, InvalidFhir
from connector.adapters.fhir.fields import Json, number, obj, objects, parse_reference, reference_text, text
from connector.adapters.fhir.references import Resolver, referenced
from connector.adapters.sanity import identifier

_DEAD_ACCOUNT: Final = frozenset({"entered-in-error"})
_DEAD_COVERAGE: Final = frozenset({"cancelled", "entered-in-error"})
_PERSONS: Final = frozenset({"Patient", "RelatedPerson", "Person"})


def payer_ids(encounter: Json, r5: bool, resolver: Resolver, where: str = "Encounter") -> tuple[str, ...]:
    """Identifiers of an Encounter's primary coverage's payor (see the module docstring), or ``()``.

    Raises:
        InvalidFhir: A reference names a resource of the wrong type, a ``#id`` that is not
            contained, or a rejected Bundle entry.
        BadIdentifier: A reference is blank or holds control characters.
    """
    contained = objects(encounter, "contained", where)
    for i, ref in enumerate(objects(encounter, "account", where)):
        aw = f"{where}.account[{i}]"
        account, _ = referenced(ref, contained, resolver, aw)
        if account is None:
            continue
        _expect(account, "Account", "an Account", aw)
        if text(account, "status", "Account") in _DEAD_ACCOUNT:
            continue
        scope = contained if _is_contained(account, contained) else objects(account, "contained", "Account")
        return _primary(account, scope, r5, resolver)
    return ()


def _primary(account: Json, scope: list[Json], r5: bool, resolver: Resolver) -> tuple[str, ...]:
    items = objects(account, "coverage", "Account")
    ranked: list[tuple[bool, int, int]] = []
    for i, item in enumerate(items):
        priority = number(item, "priority", f"Account.coverage[{i}]")
        ranked.append((priority is None, int(priority or 0), i))
    for _, _, i in sorted(ranked):
        cw = f"Account.coverage[{i}]"
        coverage, _ = referenced(obj(items[i], "coverage", cw), scope, resolver, f"{cw}.coverage")
        if coverage is None:
            return ()
        _expect(coverage, "Coverage", "a Coverage", f"{cw}.coverage")
        if text(coverage, "status", "Coverage") in _DEAD_COVERAGE:
            continue
        inner = scope if _is_contained(coverage, scope) else objects(coverage, "contained", "Coverage")
        return _payors(coverage, inner, r5, resolver)
    return ()


def _payors(coverage: Json, scope: list[Json], r5: bool, resolver: Resolver) -> tuple[str, ...]:
    refs = [obj(coverage, "insurer", "Coverage")] if r5 else objects(coverage, "payor", "Coverage")
    found: list[str] = []
    for i, ref in enumerate(refs):
        if ref:
            found.extend(_payor(ref, scope, resolver, "Coverage.insurer" if r5 else f"Coverage.payor[{i}]"))
    return _distinct(found)


def _payor(ref: Json, scope: list[Json], resolver: Resolver, where: str) -> list[str]:
    """One payor's identifiers, id and name, most specific first; nothing for a person."""
    literal = reference_text(ref, where)
    parsed = parse_reference(literal) if literal else None
    kind = parsed[1] if parsed else text(ref, "type", where).rsplit("/", 1)[-1]
    resource = resolver.find(literal, scope, f"{where}.reference") if literal else None
    if resource is not None:
        kind = text(resource, "resourceType", where)
    if kind in _PERSONS:
        return []
    values = [text(obj(ref, "identifier", where), "value", f"{where}.identifier")]
    name = text(ref, "display", where)
    named = parsed[2] if parsed else ""
    if resource is not None:
        _expect(resource, "Organization", "an Organization, Patient or RelatedPerson", where)
        mw = "Organization"
        values.extend(text(item, "value", f"{mw}.identifier") for item in objects(resource, "identifier", mw))
        if not literal.startswith("#"):  # a contained resource's id means nothing outside its container
            named = named or text(resource, "id", mw)
        name = name or text(resource, "name", mw)
    return [*values, named, name]


def _expect(resource: Json, resource_type: str, noun: str, where: str) -> None:
    if resource.get("resourceType") != resource_type:
        raise InvalidFhir(f"{where}.reference does not name {noun}")


def _is_contained(resource: Json, contained: list[Json]) -> bool:
    return any(item is resource for item in contained)


def _distinct(values: list[str]) -> tuple[str, ...]:
    """Values trimmed, blank and unusable ones dropped, each kept once (first place)."""
    kept: list[str] = []
    for sent in values:
        if not sent:
            continue
        try:
            value = identifier(sent, "payer")
        except BadIdentifier:
            continue
        if value not in kept:
            kept.append(value)
    return tuple(kept)
