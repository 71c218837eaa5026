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
from connector.model.outcomes import AdministrationOutcome, HistoryEntry, OutcomeKind, Unmapped


def _coded(value: CodedValue) -> dict[str, Any]:
    return {"c": [[c.system, c.code, c.display] for c in value.codings], "t": value.text}


def _uncoded(data: dict[str, Any]) -> CodedValue:
    return CodedValue(tuple(Coding(*c) for c in data["c"]), data["t"])


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _untime(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _source(source: SourceRef) -> list[str]:
    """SourceRef → list; ``file`` only when set (rows written before it existed have three items)."""
    fields = [source.kind, source.message_id, source.position]
    return [*fields, source.file] if source.file else fields


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
        "source": _source(admin.source),
        **({"tr": admin.time_review} if admin.time_review else {}),
        **({"om": admin.ordered_minutes} if admin.ordered_minutes is not None else {}),
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
        ordered_minutes=data.get("om"),
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
        "payer_ids": list(encounter.payer_ids),
        "payer_at": _time(encounter.payer_at),
        "location": encounter.location,
        "class_hint": encounter.class_hint.value if encounter.class_hint is not None else None,
        "payer_version": encounter.payer_version,
        "class_version": encounter.class_version,
        **_account(encounter),
    }


def _account(encounter: Encounter) -> dict[str, Any]:
    """The account keys that are set (an encounter without an account encodes as before it existed)."""
    found: dict[str, Any] = {}
    if encounter.account:
        found["account"] = encounter.account
    if encounter.account_at is not None:
        found["account_at"] = _time(encounter.account_at)
    if encounter.account_version:
        found["account_version"] = encounter.account_version
    return found


def encounter_from_dicts(attrs: dict[str, Any], administrations: tuple[Administration, ...]) -> Encounter:
    """Dict + administrations → Encounter (administrations already sorted).

    Rows written before a field existed lack its key and decode to the field's default (no
    payer identifiers, no location, no class hint, no account); their stored ``class`` is kept
    as written. The attributes are JSON text in both stores, so a new field needs no migration.
    """
    hint = attrs.get("class_hint")
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
        payer_ids=tuple(attrs.get("payer_ids", ())),
        payer_at=_untime(attrs.get("payer_at")),
        location=attrs.get("location", ""),
        payer_version=attrs.get("payer_version", ""),
        class_version=attrs.get("class_version", ""),
        class_hint=PatientClass(hint) if hint is not None else None,
        account=attrs.get("account", ""),
        account_at=_untime(attrs.get("account_at")),
        account_version=attrs.get("account_version", ""),
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


def outcome_to_dict(outcome: AdministrationOutcome) -> dict[str, Any]:
    """AdministrationOutcome → dict."""
    return {
        "id": outcome.administration_id,
        "o": outcome.outcome.value,
        "r": outcome.reason,
        "d": outcome.detail,
        "codes": list(outcome.codes),
        "src": _source(outcome.source),
        "map": list(outcome.mappings),
        "un": [[u.kind, u.system, u.code, u.field] for u in outcome.unmapped],
    }


def outcome_from_dict(data: dict[str, Any]) -> AdministrationOutcome:
    """Dict → AdministrationOutcome."""
    return AdministrationOutcome(
        administration_id=data["id"],
        outcome=OutcomeKind(data["o"]),
        reason=data["r"],
        detail=data["d"],
        codes=tuple(data["codes"]),
        source=SourceRef(*data["src"]),
        mappings=tuple(data["map"]),
        unmapped=tuple(Unmapped(*u) for u in data["un"]),
    )


HistoryRow = tuple[str, int, str, float, str, bytes]


def history_to_row(entry: HistoryEntry) -> HistoryRow:
    """HistoryEntry → (encounter key, sequence, message id, recorded at, cause, body): the table's columns."""
    return (entry.encounter_key, entry.sequence, entry.message_id, entry.recorded_at, entry.cause, entry.body)


def history_from_row(row: tuple[Any, ...]) -> HistoryEntry:
    """A history table row (columns in ``history_to_row`` order) → HistoryEntry."""
    key, sequence, message_id, recorded_at, cause, body = row
    return HistoryEntry(key, int(sequence), message_id, float(recorded_at), cause, bytes(body))


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
    times = (encounter.inpatient_from, encounter.class_at, encounter.payer_at, encounter.account_at)
    if all(_fixed_zone(value) for value in times):
        return encounter
    return encounter_from_dicts(encounter_attrs_to_dict(encounter), encounter.administrations)
