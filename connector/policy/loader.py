"""Loads ``mappings/`` (the shipped defaults, then a site's overlay) into a ``Policy``.

Every entry is validated at load; problems name the file and line. A site directory holds
files of the same names; its entries replace the defaults entry by entry (same key) and add
new ones (local route texts, formulary codes, chargemaster items, payer settings).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from connector.model import AdminStatus, PatientClass
from connector.policy.cmsload import load_cms
from connector.policy.drugs import BillingClass, DrugEntry, DrugIndex
from connector.policy.model import (
    ChargeItem,
    Chargemaster,
    Dated,
    MethodKind,
    Policy,
    RouteEntry,
    RouteKind,
    normalise_text,
)
from connector.policy.payers import load_payers
from connector.policy.siteload import load_payer_map, load_places, load_site
from connector.policy.yamlfile import LINE, MappingFile, Problems, read
from connector.shipped import shipped_dir

E = TypeVar("E", bound=StrEnum)
DEFAULT_DIR = shipped_dir("mappings", "mappings")
TABLES = ("systems", "routes", "methods", "drugs", "chargemaster", "statuses", "patient_classes")
SITE_FILES = ("site", "payer_map", "places_of_service")


@dataclass(frozen=True)
class Sources:
    """The mapping files of one policy: defaults first, then a site overlay."""

    files: dict[str, list[MappingFile]]


def load_policy(site_dir: Path | None = None) -> Policy:
    """Load, overlay and validate the mappings.

    Args:
        site_dir: A site's mappings directory overlaying the shipped defaults.

    Raises:
        MappingError: Listing every problem found, each as ``file:line: message``.
    """
    problems = Problems()
    dirs = [DEFAULT_DIR] + ([site_dir] if site_dir else [])
    if site_dir is not None and not site_dir.is_dir():
        problems.add(str(site_dir), "site mappings directory does not exist")
        problems.raise_if_any()
    layers = {
        name: [
            f for d in dirs if (d / f"{name}.yaml").is_file() and (f := read(d / f"{name}.yaml", problems, DEFAULT_DIR))
        ]
        for name in (*TABLES, *SITE_FILES)
    }
    systems = _systems(layers["systems"], problems)
    routes, route_texts = _route_like(layers["routes"], problems, systems, need_route=True)
    methods, method_texts = _route_like(layers["methods"], problems, systems, need_route=False)
    drugs = _drugs(layers["drugs"], problems, systems)
    chargemaster = _chargemaster(layers["chargemaster"], problems)
    payers = load_payers(dirs, problems, DEFAULT_DIR)
    statuses = {
        f"{section}:{value}": status
        for section in ("hl7", "fhir")
        for value, status in _value_map(layers["statuses"], section, "status", AdminStatus, problems).items()
    }
    classes = _value_map(layers["patient_classes"], "entries", "class", PatientClass, problems)
    site = load_site(layers["site"], problems, DEFAULT_DIR)
    payer_map = load_payer_map(layers["payer_map"], problems, payers)
    places = load_places(layers["places_of_service"], problems)
    cms = load_cms(dirs, problems, DEFAULT_DIR)
    problems.raise_if_any()
    tables = (systems, routes, route_texts, methods, method_texts, drugs, payers, chargemaster, statuses, classes)
    return Policy(*tables, site=site, payer_map=payer_map, places=places, cms=cms)


def _value_map(files: list[MappingFile], section: str, key: str, kind: type[E], problems: Problems) -> dict[str, E]:
    """``value`` → enum member tables (statuses, patient classes), overlaid by value."""
    table: dict[str, E] = {}
    for file in files:
        seen: dict[str, int] = {}
        for row in file.rows(section, problems):
            value = normalise_text(_text(row, "value"))
            member = _enum(file, row, key, kind, problems)
            if not value or member is None:
                problems.add(file.where(row), f"value and {key} are required") if not value else None
                continue
            if value in seen:
                problems.add(file.where(row), f"duplicate of the entry at line {seen[value]}")
            seen[value] = int(row.get(LINE, 0))
            table[value] = member
    return table


def _text(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value).strip()


def _dated(file: MappingFile, row: Mapping[str, Any], problems: Problems) -> Dated:
    start = row.get("effective_from", file.effective_from)
    end = row.get("effective_to")
    if not isinstance(start, date) or (end is not None and not isinstance(end, date)):
        problems.add(file.where(row), "effective_from/effective_to must be dates (YYYY-MM-DD)")
        start, end = file.effective_from, None
    reference = _text(row, "reference") or _text(file.data.get("meta", {}), "reference")
    return Dated(file.where(row), reference, start, end)


def _systems(files: list[MappingFile], problems: Problems) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for file in files:
        for row in file.rows("entries", problems):
            system = _text(row, "system")
            if not system:
                problems.add(file.where(row), "system is required")
                continue
            for alias in [system, *(row.get("aliases") or [])]:
                aliases[str(alias).strip().lower()] = system
    return aliases


def _enum(
    file: MappingFile,
    row: Mapping[str, Any],
    key: str,
    kind: Callable[[str], Any],
    problems: Problems,
    default: str | None = None,
) -> Any:
    raw = _text(row, key) or default
    try:
        return kind(raw or "")
    except ValueError:
        problems.add(file.where(row), f"{key} '{raw}' is not one of {[m.value for m in kind]}")  # type: ignore[attr-defined]
        return None


def _route_like(
    files: list[MappingFile], problems: Problems, systems: dict[str, str], need_route: bool
) -> tuple[dict[tuple[str, str], tuple[RouteEntry, ...]], dict[str, tuple[RouteEntry, ...]]]:
    by_code: dict[tuple[str, str], list[RouteEntry]] = {}
    by_text: dict[str, list[RouteEntry]] = {}
    for layer, file in enumerate(files):
        seen: dict[object, int] = {}
        for section in ("codes", "texts"):
            for row in file.rows(section, problems):
                route = _enum(file, row, "route", RouteKind, problems, None if need_route else "unknown")
                method = _enum(file, row, "method", MethodKind, problems, "unknown")
                if route is None or method is None:
                    continue
                entry = RouteEntry(route, method, _dated(file, row, problems))
                if section == "codes":
                    system, code = _text(row, "system"), _text(row, "code").upper()
                    if not system or not code:
                        problems.add(file.where(row), "system and code are required")
                        continue
                    key: object = (systems.get(system.lower(), system), code)
                    target: dict[Any, list[RouteEntry]] = by_code
                else:
                    key = normalise_text(_text(row, "text"))
                    target = by_text
                if key in seen:
                    problems.add(file.where(row), f"duplicate of the entry at line {seen[key]}")
                    continue
                seen[key] = int(row.get(LINE, 0))
                if (
                    layer
                    and key in target
                    and not any(e.dated.origin.startswith(file.label + ":") for e in target[key])
                ):
                    target[key] = []  # a site entry replaces the default entry of the same key
                target.setdefault(key, []).append(entry)
    return ({k: tuple(v) for k, v in by_code.items()}, {k: tuple(v) for k, v in by_text.items()})


def _drugs(files: list[MappingFile], problems: Problems, systems: dict[str, str]) -> DrugIndex:
    entries: dict[str, DrugEntry] = {}
    combinations: dict[str, tuple[str, ...]] = {}
    local_codes: list[tuple[MappingFile, Mapping[str, Any]]] = []
    for file in files:
        for row in file.rows("entries", problems):
            ingredient = _text(row, "ingredient").lower()
            billing = _enum(file, row, "billing_class", BillingClass, problems)
            if not ingredient or billing is None:
                problems.add(file.where(row), "ingredient and billing_class are required") if not ingredient else None
                continue
            names = tuple(str(n) for n in row.get("names") or [ingredient])
            codes = tuple(_code_pair(str(c), systems) for c in row.get("codes") or [])
            rxcui = row.get("rxcui")
            entries[ingredient] = DrugEntry(
                ingredient,
                str(rxcui) if rxcui else None,
                _text(row, "category"),
                billing,
                names if ingredient in (n.lower() for n in names) else (ingredient, *names),
                tuple(str(b) for b in row.get("brands") or []),
                tuple(str(t) for t in row.get("tallman") or []),
                tuple(str(a) for a in row.get("abbreviations") or []),
                codes,
                _text(row, "reference"),
                file.where(row),
            )
        for row in file.rows("combinations", problems):
            combinations[_text(row, "brand")] = tuple(str(i).lower() for i in row.get("ingredients") or [])
            local_codes.append((file, row))
        for row in file.rows("local_codes", problems):
            local_codes.append((file, row))
    _check_drugs(entries, combinations, local_codes, problems)
    extra: dict[str, list[tuple[str, str]]] = {}
    for _file, row in local_codes:
        if "code" in row:
            pair = _code_pair(f"{_text(row, 'system')}|{_text(row, 'code')}", systems)
            extra.setdefault(_text(row, "ingredient").lower(), []).append(pair)
    merged = [
        DrugEntry(**{**{s: getattr(e, s) for s in e.__slots__}, "codes": (*e.codes, *extra.get(e.ingredient, ()))})
        for e in entries.values()
    ]
    return DrugIndex(merged, combinations, systems)


def _code_pair(text: str, systems: dict[str, str]) -> tuple[str, str]:
    system, _, code = text.partition("|")
    canonical = systems.get(system.strip().lower(), system.strip())
    code = code.strip()
    return canonical, code.replace("-", "") if canonical == "NDC" else code.upper()


def _check_drugs(
    entries: dict[str, DrugEntry],
    combinations: dict[str, tuple[str, ...]],
    local_codes: list[tuple[MappingFile, Mapping[str, Any]]],
    problems: Problems,
) -> None:
    owner: dict[str, str] = {}
    for entry in entries.values():
        for spelling in {s.lower() for s in (*entry.names, *entry.brands, *entry.tallman)}:
            if spelling in owner and owner[spelling] != entry.ingredient:
                problems.add(entry.origin, f"name '{spelling}' also names '{owner[spelling]}'")
            owner[spelling] = entry.ingredient
    for file, row in local_codes:
        wanted = (
            [_text(row, "ingredient").lower()]
            if "code" in row
            else [str(i).lower() for i in row.get("ingredients") or []]
        )
        for ingredient in wanted:
            if ingredient not in entries:
                problems.add(file.where(row), f"unknown ingredient '{ingredient}'")


def _chargemaster(files: list[MappingFile], problems: Problems) -> Chargemaster:
    items: dict[str, ChargeItem] = {}
    departments: dict[str, str] = {}
    default_revenue = "0260"
    for file in files:
        default_revenue = _text(file.data, "default_revenue_code") or default_revenue
        for row in file.rows("items", problems):
            code, charge = _text(row, "code"), _text(row, "charge_code")
            if not code or not charge:
                problems.add(file.where(row), "code and charge_code are required")
                continue
            revenue = _text(row, "revenue_code")
            if revenue and (not revenue.isdigit() or len(revenue) != 4):
                problems.add(file.where(row, "revenue_code"), "revenue_code must be 4 digits (UB-04 FL42)")
            items[code] = ChargeItem(code, charge, _text(row, "description"), revenue or None)
        for row in file.rows("departments", problems):
            department, revenue = _text(row, "department"), _text(row, "revenue_code")
            if not department or not revenue.isdigit() or len(revenue) != 4:
                problems.add(file.where(row), "department and a 4-digit revenue_code are required")
                continue
            departments[department] = revenue
    return Chargemaster(items, default_revenue, departments)
