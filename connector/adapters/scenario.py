"""Scenario files: encounters written by hand in YAML (golden cases, `ivpush explain`).

The format is documented in ``docs/golden-cases.md``. Times without an offset take the
scenario's ``zone`` (default -05:00); codes are written ``SYSTEM|CODE``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from connector.model import (
    Administration,
    AdminStatus,
    ClaimType,
    CodedValue,
    Coding,
    Encounter,
    PatientClass,
    SourceRef,
)

DEFAULT_ZONE = "-05:00"


class ScenarioError(ValueError):
    """A scenario file that does not follow the format."""


@dataclass(frozen=True)
class Scenario:
    """One named encounter with its policy overrides and expectations."""

    name: str
    rule: str
    encounter: Encounter
    policy_overrides: Mapping[str, Any]
    expect: Mapping[str, Any]


def load_scenarios(path: Path) -> list[Scenario]:
    """Read every case of a scenario file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    cases = data.get("cases") if isinstance(data, Mapping) else None
    if not isinstance(cases, list):
        raise ScenarioError(f"{path}: expected a mapping with a 'cases' list")
    return [scenario(case, f"{path.name}#{index + 1}") for index, case in enumerate(cases)]


def _zone(text: str) -> timezone:
    sign = -1 if text.startswith("-") else 1
    hours, _, minutes = text.lstrip("+-").partition(":")
    return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes or 0)))


def _time(value: Any, zone: timezone) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _coding(text: str, default_system: str) -> CodedValue:
    if text.startswith("text:"):
        return CodedValue(text=text[5:])
    system, sep, code = text.partition("|")
    return CodedValue((Coding(system, code) if sep else Coding(default_system, system),))


def scenario(case: Mapping[str, Any], where: str) -> Scenario:
    """Build one scenario from its mapping."""
    try:
        enc = case.get("encounter") or {}
        zone = _zone(str(enc.get("zone", DEFAULT_ZONE)))
        key = str(enc.get("key", "ENC-1"))
        admins = [_administration(row, key, zone, where) for row in case["administrations"]]
        inpatient_from = enc.get("inpatient_from")
        encounter = Encounter(
            key=key,
            patient_class=PatientClass(enc.get("class", "emergency")),
            inpatient_from=_time(inpatient_from, zone) if inpatient_from else None,
            claim_type=ClaimType(enc.get("claim", "facility")),
            payer=str(enc.get("payer", "default")),
            place_of_service=str(enc.get("place_of_service", "")),
            separate_same_day=bool(enc.get("separate_same_day", False)),
        ).with_administrations(admins)
        return Scenario(
            str(case["name"]),
            str(case.get("rule", "")),
            encounter,
            case.get("policy_overrides") or {},
            case.get("expect") or {},
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ScenarioError(f"{where} ({case.get('name', '?')}): {error}") from error


def _administration(row: Mapping[str, Any], key: str, zone: timezone, where: str) -> Administration:
    short_id = str(row["id"])
    drug = CodedValue(text=str(row.get("drug", "")))
    if row.get("code"):
        drug = CodedValue(_coding(str(row["code"]), "LOCAL").codings, drug.text)
    method = CodedValue()
    if row.get("method"):
        method = _coding(str(row["method"]), "HL70165")
    if row.get("device"):
        method = CodedValue((*method.codings, *_coding(str(row["device"]), "HL70164").codings), method.text)
    end = row.get("end")
    return Administration(
        id=short_id,
        encounter_key=key,
        drug=drug,
        start=_time(row["start"], zone),
        route=_coding(str(row.get("route", "IV")), "HL70162"),
        method=method,
        end=_time(end, zone) if end else None,
        status=AdminStatus(row.get("status", "given")),
        version=str(row.get("version", "")),
        site=str(row.get("site", "")),
        infuse_minutes=row.get("infuse_minutes"),
        primary=bool(row.get("primary", False)),
        contexts=frozenset(row.get("contexts") or ()),
        department=str(row.get("department", "")),
        source=SourceRef("scenario", where),
    )
