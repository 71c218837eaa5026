"""References inside one FHIR document: finding what they name, and the one key of an encounter.

Encounter keys are ``fhir|<Encounter id>`` (``fields.RELATIVE_BASE``) however the encounter is
named: a relative reference (``Encounter/123``), an absolute one
(``https://host/fhir/Encounter/123``, with or without ``/_history/n``), a ``urn:uuid:`` fullUrl
of a Bundle entry (the key of the Encounter resource in that entry: its id), or the Encounter
resource itself. The base URL is dropped on purpose: a feed is one FHIR server (one EHR's
subscription, bulk export or interface engine channel), whose references all point back to
it, so the base says nothing about which encounter is meant, while keeping it gave the same
encounter two keys as soon as a sender mixed relative and absolute references (servers do,
e.g. relative in ``context`` and absolute in ``fullUrl``). A site that merges two FHIR servers
whose ids can collide must run them as two feeds (two states), as it would two HL7 facilities
without assigning authorities. A logical reference (``identifier`` only) keys as
``system|value``: the identifier system is an authority of its own.

``Resolver`` finds referenced resources: ``#id`` in the referencing resource's ``contained``,
else a Bundle entry by fullUrl or ``Type/id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from connector.adapters.errors import InvalidFhir, MissingEncounterKey
from connector.adapters.fhir.fields import RELATIVE_BASE, Json, obj, parse_reference, reference_id, reference_text, text
from connector.adapters.sanity import identifier
from connector.model import EncounterRef


@dataclass(frozen=True, slots=True)
class Resolver:
    """Finds the resources a reference points to: contained ones, then Bundle entries.

    Attributes:
        entries: Bundle entry resources by fullUrl and by ``Type/id`` (empty outside a Bundle).
        refused: Names (fullUrl, ``Type/id``) of Bundle entries that were rejected.
    """

    entries: Mapping[str, Json]
    refused: frozenset[str] = frozenset()

    def find(self, reference: str, contained: list[Json], where: str) -> Json | None:
        """The resource a literal reference names, or None when it is not in this document.

        Raises:
            InvalidFhir: A ``#id`` reference with no contained resource of that id (FHIR dom-3),
                or a reference to a rejected Bundle entry.
        """
        if reference.startswith("#"):
            for resource in contained:
                if resource.get("id") == reference[1:]:
                    return resource
            raise InvalidFhir(f"{where} names a contained resource that is not there")
        return self.entry(reference, where)

    def entry(self, reference: str, where: str) -> Json | None:
        """The Bundle entry resource a reference names (by fullUrl, else ``Type/id``), or None.

        Raises:
            InvalidFhir: The reference names an entry that was rejected.
        """
        found = self.get(reference)
        if found is None and self.refused.intersection(_names(reference)):
            raise InvalidFhir(f"{where} names a rejected Bundle entry")
        return found

    def get(self, reference: str) -> Json | None:
        """The usable Bundle entry resource a reference names, or None (never raises)."""
        for name in _names(reference):
            found = self.entries.get(name)
            if found is not None:
                return found
        return None


NO_ENTRIES: Resolver = Resolver({})


def _names(reference: str) -> list[str]:
    names = [reference]
    parsed = parse_reference(reference)
    if parsed is not None:
        names.append(f"{parsed[1]}/{parsed[2]}")
    return names


def referenced(ref: Json, contained: list[Json], resolver: Resolver, where: str) -> tuple[Json | None, str]:
    """The resource a Reference names when this document holds it, and the id it names.

    Args:
        ref: The Reference element (``{}`` when absent).
        contained: The ``contained`` resources ``#id`` references resolve in.
        resolver: The document's Bundle entries.
        where: The Reference's element path, for details.

    Returns:
        (The contained or Bundle entry resource, or None; the id the reference names: the
        ``Type/id`` id, else the id of the resource a ``urn:``/``#`` reference resolves to.)

    Raises:
        InvalidFhir: A ``#id`` with no such contained resource, or a rejected Bundle entry.
        BadIdentifier: The reference is blank or holds control characters.
    """
    literal = reference_text(ref, where)
    if not literal:
        return None, ""
    found = resolver.find(literal, contained, f"{where}.reference")
    parsed = parse_reference(literal)
    if parsed is not None:
        return found, parsed[2]
    sent = text(found, "id", where) if found is not None else ""
    return found, sent.strip()


def encounter_ref(resource: Json, name: str, resolver: Resolver, where: str) -> EncounterRef:
    """The encounter a resource's ``context``/``encounter`` Reference names (see the module docstring).

    References and identifier values are trimmed of Unicode whitespace (``sanity.identifier``).

    Raises:
        MissingEncounterKey: No reference, or one that does not name an Encounter by id.
        BadIdentifier: A reference or identifier that is blank or holds control characters.
        InvalidFhir: A ``urn:`` reference to a rejected Bundle entry.
    """
    ref = obj(resource, name, where)
    if not ref:
        raise MissingEncounterKey(f"{where}.{name} absent")
    rw = f"{where}.{name}"
    patient = reference_id(resource, "subject", where)
    literal = reference_text(ref, rw)
    if literal:
        parsed = parse_reference(literal)
        if parsed is None and literal.startswith("urn:"):
            target = resolver.entry(literal, f"{rw}.reference")
            if target is not None and target.get("resourceType") == "Encounter":
                target_id = text(target, "id", rw)
                parsed = (RELATIVE_BASE, "Encounter", identifier(target_id, f"{rw}.reference") if target_id else "")
        if parsed is None or parsed[1] != "Encounter" or not parsed[2]:
            raise MissingEncounterKey(f"{rw}.reference does not name an Encounter by id")
        visit = parsed[2]
        return EncounterRef(f"{RELATIVE_BASE}|{visit}", visit, RELATIVE_BASE, patient)
    logical = obj(ref, "identifier", rw)
    iw = f"{rw}.identifier"
    system, value = text(logical, "system", iw), text(logical, "value", iw)
    if not system or not value:
        raise MissingEncounterKey(f"{rw} has neither a reference nor an identifier system and value")
    system, value = identifier(system, f"{iw}.system"), identifier(value, f"{iw}.value")
    return EncounterRef(f"{system}|{value}", value, system, patient)


def facility_of(encounter: Json, where: str = "Encounter") -> str:
    """An Encounter's facility: its ``serviceProvider`` reference id, else that reference's display."""
    provider = obj(encounter, "serviceProvider", where)
    return reference_id(encounter, "serviceProvider", where) or text(provider, "display", f"{where}.serviceProvider")
