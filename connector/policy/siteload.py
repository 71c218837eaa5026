"""Loading the feed-facing site files: ``site.yaml``, ``payer_map.yaml``, ``places_of_service.yaml``.

Each is read from the shipped defaults, then from a site's mappings directory, and validated
at load: every problem names ``file:line``. ``site.yaml`` is overridden key by key (``zones``
facility by facility); in the two tables a site entry replaces the shipped entries with the
same key (identifier; class and location) and adds new ones.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connector.model import PatientClass
from connector.policy.payer_map import PayerMap, PayerMapEntry, normalise_id
from connector.policy.places import PlaceEntry, PlaceTable, normalise_location
from connector.policy.site import FALLBACKS, SiteProfile, chain_problem, parse_primary_hl7
from connector.policy.yamlfile import KEY_LINES, LINE, MappingFile, Problems

SITE_KEYS = ("zones", "identity_chain", "fallback", "primary_hl7", "primary_fhir_extension")
PAYER_ROW_KEYS = frozenset({"id", "payer", "effective_from", "effective_to", "reference", "note"})
PLACE_ROW_KEYS = frozenset({"class", "location", "pos", "effective_from", "effective_to", "reference", "note"})
_EXTENSION_SCHEMES = ("http://", "https://", "urn:")


def load_site(files: list[MappingFile], problems: Problems, shipped_root: Path) -> SiteProfile:
    """The site profile: shipped ``site.yaml`` (or the built-in defaults), then the site's keys."""
    values: dict[str, Any] = {}
    zones: dict[str, tzinfo] = {}
    origin = ""
    for file in files:
        data = file.data
        for key in data:
            if key not in (*SITE_KEYS, "meta", LINE, KEY_LINES):
                problems.add(file.where(data, key), f"unknown key '{key}' (known: {', '.join(SITE_KEYS)})")
        zones.update(_zones(file, problems))
        for key in SITE_KEYS[1:]:
            if key in data:
                checked = _site_value(file, key, data[key], problems)
                if checked is not None:
                    values[key] = checked
        if file.path.parent.resolve() != shipped_root.resolve():
            origin = file.where(data)
    return SiteProfile(zones=zones, origin=origin, **values)


def _zones(file: MappingFile, problems: Problems) -> dict[str, tzinfo]:
    raw = file.data.get("zones")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.add(file.where(file.data, "zones"), "zones must be a mapping of facility id → IANA zone name")
        return {}
    found: dict[str, tzinfo] = {}
    for facility, name in raw.items():
        if facility in (LINE, KEY_LINES):
            continue
        where = file.where(raw, facility)
        if not isinstance(name, str) or not str(facility).strip():
            problems.add(where, f"zone of facility '{facility}' must be an IANA zone name such as America/Chicago")
            continue
        try:
            found[str(facility).strip().upper()] = ZoneInfo(name.strip())
        except (ZoneInfoNotFoundError, ValueError):
            problems.add(where, f"'{name}' is not a known IANA time zone (e.g. America/Chicago)")
    return found


def _site_value(file: MappingFile, key: str, value: Any, problems: Problems) -> Any:
    where = file.where(file.data, key)
    if key == "identity_chain":
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            problems.add(where, "identity_chain must be a list of steps, e.g. [PV1-19, PID-18, PV1-50, order, visit]")
            return None
        chain = tuple(s.strip() for s in value)
        if (why := chain_problem(chain)) is not None:
            problems.add(where, why)
            return None
        return chain
    text = "" if value is None else value
    if not isinstance(text, str):
        problems.add(where, f"{key} must be a string")
        return None
    text = text.strip()
    if key == "fallback" and text not in FALLBACKS:
        problems.add(where, f"fallback '{text}' is not one of {list(FALLBACKS)}")
        return None
    if key == "primary_hl7":
        try:
            parse_primary_hl7(text)
        except ValueError as error:
            problems.add(where, str(error))
            return None
    if key == "primary_fhir_extension" and text and not text.startswith(_EXTENSION_SCHEMES):
        problems.add(where, f"primary_fhir_extension '{text}' must be an extension URL (http(s):// or urn:) or \"\"")
        return None
    return text


def load_payer_map(files: list[MappingFile], problems: Problems, payers: Collection[str]) -> PayerMap:
    """The payer map; every entry must name a loaded payer policy."""
    table: dict[str, list[PayerMapEntry]] = {}
    for file in files:
        mine: dict[str, list[PayerMapEntry]] = {}
        for row in file.rows("entries", problems):
            _unknown_keys(file, row, PAYER_ROW_KEYS, problems)
            sent, payer = row.get("id"), _text(row, "payer").lower()
            if not isinstance(sent, str) or not normalise_id(sent):
                problems.add(
                    file.where(row, "id"), "id is required and must be quoted text (YAML reads 00123 as a number)"
                )
                continue
            if payer not in payers:
                problems.add(
                    file.where(row, "payer"),
                    f"payer '{payer}' is not a payer policy; the mappings have: {', '.join(sorted(payers))}",
                )
                continue
            dated = _dated(file, row, problems)
            if dated is None:
                continue
            entry = PayerMapEntry(normalise_id(sent), payer, file.where(row), *dated)
            clash = next((e for e in mine.get(entry.id, ()) if e.overlaps(entry)), None)
            if clash is not None:
                problems.add(entry.origin, f"id '{entry.id}' overlaps the dates of the entry at {clash.origin}")
                continue
            mine.setdefault(entry.id, []).append(entry)
        table.update(mine)  # a site's entries replace the shipped ones with the same key
    return PayerMap({k: tuple(sorted(v, key=lambda e: e.effective_from)) for k, v in table.items()})


def load_places(files: list[MappingFile], problems: Problems) -> PlaceTable:
    """The place-of-service table."""
    table: dict[tuple[PatientClass, str], list[PlaceEntry]] = {}
    for file in files:
        mine: dict[tuple[PatientClass, str], list[PlaceEntry]] = {}
        for row in file.rows("entries", problems):
            _unknown_keys(file, row, PLACE_ROW_KEYS, problems)
            try:
                patient_class = PatientClass(_text(row, "class").lower())
            except ValueError:
                known = [c.value for c in PatientClass]
                problems.add(file.where(row, "class"), f"class '{_text(row, 'class')}' is not one of {known}")
                continue
            location = row.get("location")
            pos = _pos(row.get("pos"))
            if location is not None and not isinstance(location, str):
                problems.add(file.where(row, "location"), 'location must be quoted text ("" for the class default)')
                continue
            if pos is None:
                problems.add(file.where(row, "pos"), 'pos must be a two-digit CMS place-of-service code, e.g. "22"')
                continue
            dated = _dated(file, row, problems)
            if dated is None:
                continue
            entry = PlaceEntry(patient_class, normalise_location(location or ""), pos, file.where(row), *dated)
            key = (entry.patient_class, entry.location)
            clash = next((e for e in mine.get(key, ()) if e.overlaps(entry)), None)
            if clash is not None:
                what = f"class {key[0].value}, location '{key[1]}'" if key[1] else f"class {key[0].value} default"
                problems.add(entry.origin, f"{what} overlaps the dates of the entry at {clash.origin}")
                continue
            mine.setdefault(key, []).append(entry)
        table.update(mine)  # a site's entries replace the shipped ones with the same key
    return PlaceTable({k: tuple(sorted(v, key=lambda e: e.effective_from)) for k, v in table.items()})


def _pos(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 < value < 100:
        return f"{value:02d}"
    if isinstance(value, str) and len(value.strip()) == 2 and value.strip().isdigit():
        return value.strip()
    return None


def _dated(file: MappingFile, row: Mapping[str, Any], problems: Problems) -> tuple[str, date, date | None] | None:
    """(reference, effective_from, effective_to) of a row; None after reporting a problem."""
    start = row.get("effective_from", file.effective_from)
    end = row.get("effective_to")
    if not isinstance(start, date) or (end is not None and not isinstance(end, date)):
        problems.add(file.where(row), "effective_from/effective_to must be dates (YYYY-MM-DD)")
        return None
    if end is not None and end < start:
        problems.add(file.where(row, "effective_to"), "effective_to is before effective_from")
        return None
    reference = _text(row, "reference") or _text(file.data.get("meta", {}), "reference")
    if not reference:
        problems.add(file.where(row), "reference is required (the source the entry rests on)")
        return None
    return reference, start, end


def _unknown_keys(file: MappingFile, row: Mapping[str, Any], known: frozenset[str], problems: Problems) -> None:
    for key in row:
        if key not in known and key not in (LINE, KEY_LINES):
            problems.add(file.where(row, key), f"unknown key '{key}' (known: {', '.join(sorted(known))})")


def _text(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key) if isinstance(row, Mapping) else None
    return "" if value is None else str(value).strip()
