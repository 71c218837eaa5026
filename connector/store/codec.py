"""Model ↔ JSON-able dicts for storage. Round trips are exact (tested)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from connector.model import (
    Administration,
    AdminStatus,
    ChargeLine,
    ClaimType,
    CodedValue,
    Coding,
    Encounter,
    PatientClass,
    SourceRef,
)
from connector.model.events import EncounterRef


def _coded(value: CodedValue) -> dict[str, Any]:
    return {"c": [[c.system, c.code, c.display] for c in value.codings], "t": value.text}


def _uncoded(data: dict[str, Any]) -> CodedValue:
    return CodedValue(tuple(Coding(*c) for c in data["c"]), data["t"])


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _untime(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def administration_to_dict(admin: Administration) -> dict[str, Any]:
    """Administration → dict."""
    return {
        "id": admin.id,
        "enc": admin.encounter_key,
        "drug": _coded(admin.drug),
        "start": admin.start.isoformat(),
        "route": _coded(admin.route),
        "method": _coded(admin.method),
        "end": _time(admin.end),
        "status": admin.status.value,
        "version": admin.version,
        "site": admin.site,
        "dose": str(admin.dose) if admin.dose is not None else None,
        "dose_unit": admin.dose_unit,
        "infuse_minutes": admin.infuse_minutes,
        "has_rate": admin.has_rate,
        "primary": admin.primary,
        "contexts": sorted(admin.contexts),
        "department": admin.department,
        "source": [admin.source.kind, admin.source.message_id, admin.source.position],
        **({"tr": admin.time_review} if admin.time_review else {}),
    }


def administration_from_dict(data: dict[str, Any]) -> Administration:
    """Dict → Administration."""
    start = datetime.fromisoformat(data["start"])
    return Administration(
        id=data["id"],
        encounter_key=data["enc"],
        drug=_uncoded(data["drug"]),
        start=start,
        route=_uncoded(data["route"]),
        method=_uncoded(data["method"]),
        end=_untime(data["end"]),
        status=AdminStatus(data["status"]),
        version=data["version"],
        site=data["site"],
        dose=Decimal(data["dose"]) if data["dose"] is not None else None,
        dose_unit=data["dose_unit"],
        infuse_minutes=data["infuse_minutes"],
        has_rate=data["has_rate"],
        primary=data["primary"],
        contexts=frozenset(data["contexts"]),
        department=data["department"],
        source=SourceRef(*data["source"]),
        time_review=data.get("tr", ""),
    )


def encounter_attrs_to_dict(encounter: Encounter) -> dict[str, Any]:
    """Encounter attributes (not its administrations) → dict."""
    return {
        "key": encounter.key,
        "class": encounter.patient_class.value,
        "inpatient_from": _time(encounter.inpatient_from),
        "class_at": _time(encounter.class_at),
        "claim": encounter.claim_type.value,
        "payer": encounter.payer,
        "pos": encounter.place_of_service,
        "facility": encounter.facility,
        "separate_same_day": encounter.separate_same_day,
        "closed": encounter.closed,
    }


def encounter_from_dicts(attrs: dict[str, Any], administrations: tuple[Administration, ...]) -> Encounter:
    """Dict + administrations → Encounter (administrations already sorted)."""
    return Encounter(
        key=attrs["key"],
        patient_class=PatientClass(attrs["class"]),
        inpatient_from=_untime(attrs["inpatient_from"]),
        class_at=_untime(attrs["class_at"]),
        claim_type=ClaimType(attrs["claim"]),
        payer=attrs["payer"],
        place_of_service=attrs["pos"],
        facility=attrs["facility"],
        separate_same_day=attrs["separate_same_day"],
        closed=attrs["closed"],
        administrations=administrations,
    )


def ref_to_dict(ref: EncounterRef) -> dict[str, Any]:
    """EncounterRef → dict."""
    return {
        "key": ref.key,
        "visit": ref.visit_number,
        "authority": ref.assigning_authority,
        "patient": ref.patient_id,
        "facility": ref.facility,
    }


def ref_from_dict(data: dict[str, Any]) -> EncounterRef:
    """Dict → EncounterRef."""
    return EncounterRef(data["key"], data["visit"], data["authority"], data["patient"], data["facility"])


def line_to_dict(line: ChargeLine) -> dict[str, Any]:
    """ChargeLine → dict."""
    return {
        "line_id": line.line_id,
        "code": line.code,
        "units": line.units,
        "date": line.service_date.isoformat(),
        "modifiers": list(line.modifiers),
        "revenue": line.revenue_code,
        "charge": line.charge_code,
        "admins": list(line.administration_ids),
        "rule": line.rule,
        "reason": line.reason,
        "flags": list(line.flags),
    }


def line_from_dict(data: dict[str, Any]) -> ChargeLine:
    """Dict → ChargeLine."""
    return ChargeLine(
        line_id=data["line_id"],
        code=data["code"],
        units=data["units"],
        service_date=date.fromisoformat(data["date"]),
        modifiers=tuple(data["modifiers"]),
        revenue_code=data["revenue"],
        charge_code=data["charge"],
        administration_ids=tuple(data["admins"]),
        rule=data["rule"],
        reason=data["reason"],
        flags=tuple(data["flags"]),
    )


def _fixed_zone(value: datetime | None) -> bool:
    return value is None or type(value.tzinfo) is timezone


def as_stored_administration(admin: Administration) -> Administration:
    """The administration a decode of its encoding returns (what a store read gives back).

    Equal to ``admin`` in every field; only a zone other than a fixed offset (a ``ZoneInfo``
    attached to an HL7 time sent without one) differs: ISO text keeps the offset, not the
    zone. Cheap when nothing differs (the object itself is returned).
    """
    if _fixed_zone(admin.start) and _fixed_zone(admin.end):
        return admin
    return administration_from_dict(administration_to_dict(admin))


def as_stored_encounter(encounter: Encounter) -> Encounter:
    """The encounter (attributes only; administrations kept) a decode of its encoding returns."""
    if _fixed_zone(encounter.inpatient_from) and _fixed_zone(encounter.class_at):
        return encounter
    return encounter_from_dicts(encounter_attrs_to_dict(encounter), encounter.administrations)
