"""A FHIR Bundle, entry by entry: the usable entries become records, each unusable one a reject of its own.

Whole-Bundle rejects are kept for what concerns the Bundle itself: ``entry`` not an array, a
``type`` other than transaction, batch, collection, searchset or message, its own elements
invalid, a message Bundle whose first entry is not a MessageHeader, administrations and
encounters of two FHIR versions, or no MedicationAdministration or Encounter at all.

Everything else is decided per entry, in entry order, and the first problem of an entry is its
reject (detail ``Bundle.entry[3]…``, position suffix ``entry[3]``): an entry or resource that is
not a JSON object, a repeated JSON key inside it, a nested Bundle, a request that deletes or
patches an administration or encounter, an entry that does not validate (any resource type:
an unrelated malformed Patient is rejected too, and kept out of reference resolution), and an
administration or encounter that cannot be read. A reference to a rejected entry (a Medication,
an ``urn:`` Encounter) rejects the administration that makes it, never falls back to a guess.
A ``transaction`` Bundle is read the same way: replay and the consumer read archived or queued
documents, not a FHIR server's atomic transaction interaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from typing import Final, cast

from connector.adapters.errors import AdapterError, InvalidFhir, UnsupportedMessageType
from connector.adapters.fhir.context import Reading
from connector.adapters.fhir.fields import Json, parse_reference
from connector.adapters.fhir.references import Resolver
from connector.adapters.fhir.resource import TARGETS, is_r5, precheck, record_of, type_of
from connector.adapters.fhir.validate import R4B, R5, validate, validate_entry
from connector.adapters.result import Parsed, PartReject
from connector.adapters.sanity import TimeWindow
from connector.model import ParsedRecord
from connector.policy.model import Policy

BUNDLE_TYPES: Final = frozenset({"transaction", "batch", "collection", "searchset", "message"})


def read_bundle(
    bundle: Json,
    policy: Policy,
    position: str,
    window: TimeWindow,
    repeated: Mapping[int, str],
    zone: tzinfo | None = None,
) -> Parsed:
    """The records of a Bundle's MedicationAdministration and Encounter entries, and its rejected entries.

    Args:
        bundle: The parsed Bundle.
        policy: Status and patient class mappings.
        position: Where the Bundle sits in its source.
        window: Accepted instants.
        repeated: Entry index → detail, for entries holding a repeated JSON key (``jsondoc``).
        zone: Default zone of instants (``context.Reading``); None keeps offsets as sent.

    Raises:
        AdapterError: The Bundle as a whole cannot be read (see the module docstring).
    """
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise InvalidFhir("Bundle.entry is not an array")
    rejected: dict[int, AdapterError] = {}
    targets: dict[int, Json] = {}
    for i, entry in enumerate(entries):
        problem = _entry_problem(entry, i, repeated)
        if problem is not None:
            rejected[i] = problem
        elif type_of(entry.get("resource")) in TARGETS:
            targets[i] = entry["resource"]
    if not targets and not rejected:
        raise UnsupportedMessageType("Bundle carries no MedicationAdministration or Encounter")
    kind = bundle.get("type")
    if isinstance(kind, str) and kind not in BUNDLE_TYPES:
        raise UnsupportedMessageType("Bundle.type is not transaction, batch, collection, searchset or message")
    versions = {is_r5(resource) for resource in targets.values()}
    if len(versions) > 1:
        raise InvalidFhir("Bundle.entry mixes R4 and R5 resources")
    version = R5 if versions and versions.pop() else R4B
    validate(version, {k: v for k, v in bundle.items() if k != "entry"}, "Bundle")
    header = entries[0].get("resource") if kind == "message" and entries and isinstance(entries[0], dict) else None
    if kind == "message" and type_of(header) != "MessageHeader":
        raise InvalidFhir("Bundle.entry[0] of a message Bundle is not a MessageHeader")
    for i, entry in enumerate(entries):
        if i in rejected:
            continue
        try:
            if i in targets:
                precheck(targets[i], version is R5)
            validate_entry(version, entry, f"Bundle.entry[{i}]")
        except AdapterError as error:
            rejected[i] = _at(i, error)
    reading = Reading(policy, _resolver(entries, rejected), position, window, zone)
    records: list[ParsedRecord] = []
    for i, resource in targets.items():
        if i in rejected:
            continue
        try:
            records.append(record_of(resource, version is R5, reading))
        except AdapterError as error:
            rejected[i] = _at(i, error)
    rejects = tuple(PartReject(f"entry[{i}]", rejected[i]) for i in sorted(rejected))
    return Parsed(tuple(records), rejects)


def _entry_problem(entry: object, i: int, repeated: Mapping[int, str]) -> AdapterError | None:
    """What rejects an entry before validation, or None."""
    if i in repeated:
        return InvalidFhir(repeated[i])
    if not isinstance(entry, dict) or not isinstance(entry.get("resource") or {}, dict):
        # fhir.resources also takes JSON text holding an object: the adapter does not
        return InvalidFhir(f"Bundle.entry[{i}] or its resource is not a JSON object")
    resource_type = type_of(entry.get("resource"))
    if resource_type == "Bundle":
        return UnsupportedMessageType(f"Bundle.entry[{i}].resource is a nested Bundle")
    request = entry.get("request")
    if resource_type in TARGETS or not isinstance(request, dict):
        return None
    if request.get("method") not in ("DELETE", "PATCH"):
        return None
    url = request.get("url")
    if isinstance(url, str) and TARGETS.intersection(url.split("?", 1)[0].split("/")):
        return UnsupportedMessageType(f"Bundle.entry[{i}].request deletes or patches an administration or encounter")
    return None


def _at(i: int, error: AdapterError) -> AdapterError:
    """The error with a detail that starts with the entry's path (same class, same code)."""
    prefix = f"Bundle.entry[{i}]"
    if error.detail.startswith((f"{prefix}.", f"{prefix}:", f"{prefix} ")):
        return error
    return type(error)(f"{prefix}: {error.detail}")


def _resolver(entries: list[object], rejected: Mapping[int, AdapterError]) -> Resolver:
    """Entry resources by fullUrl and by ``Type/id`` for reference resolution (first wins); rejected ones apart."""
    found: dict[str, Json] = {}
    refused: set[str] = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            continue
        resource = cast(Json, entry["resource"])
        names: list[str] = []
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str):
            names.append(full_url)
            named = parse_reference(full_url)  # https://…/Medication/5 also answers Medication/5
            if named is not None:
                names.append(f"{named[1]}/{named[2]}")
        resource_id = resource.get("id")
        if isinstance(resource_id, str):
            names.append(f"{type_of(resource)}/{resource_id}")
        for name in names:
            if i in rejected:
                refused.add(name)
            else:
                found.setdefault(name, resource)
    return Resolver(found, frozenset(refused - found.keys()))
