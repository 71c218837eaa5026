"""The encounter: the unit the coding rules apply to (coding rules §3)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from connector.model.administration import Administration
from connector.model.ids import digest


class ClaimType(StrEnum):
    """Which claim the lines are for: the hospital's or the practitioner's."""

    FACILITY = "facility"
    PROFESSIONAL = "professional"


class PatientClass(StrEnum):
    """Patient class, normalised from HL7 PV1-2 / FHIR Encounter.class."""

    EMERGENCY = "emergency"
    OUTPATIENT = "outpatient"
    OBSERVATION = "observation"
    INPATIENT = "inpatient"
    OTHER = "other"
    UNKNOWN = "unknown"  # nothing in the feed said yet (no PV1-2, no Encounter, no ADT)


@dataclass(frozen=True, slots=True)
class Encounter:
    """An encounter and the current version of each of its administrations.

    Attributes:
        key: Encounter identity (assigning authority + visit number).
        patient_class: Current patient class (``unknown`` until the feed says: the rules then
            read ``class_hint``, and flag the lines ``needs_review`` when there is none).
        inpatient_from: When the encounter became inpatient, if it did; administrations
            from then on are not coded as outpatient services (coding rules §3).
        class_at: Event time of the message the patient class was taken from.
        claim_type: Facility or professional claim.
        payer: Name of the payer policy overlay used when the feed names no insurance
            (the ``--policy``/``coding.payer`` default).
        payer_ids: Identifiers of the primary coverage as sent (HL7 IN1-2 plan, IN1-3
            company id, IN1-4 company name; FHIR Coverage payor/identifier), mapped to a payer
            policy by the rules through the site payer map, by date of service.
        payer_at: Event time of the message ``payer_ids`` were taken from.
        payer_version: Its message version (``EncounterEvent.version``), for ties in time.
        class_version: The message version the class (and location) were taken from.
        place_of_service: CMS place-of-service code, when set explicitly (scenarios); else
            the rules derive it from the patient class and ``location``.
        location: Where the patient was seen as sent (HL7 PV1-3 point of care / location type,
            FHIR Encounter.location type), read through the site place-of-service table.
        class_hint: Patient class an administration implied (FHIR ``category``): used only
            while no Encounter or ADT has given the class.
        facility: Sending facility (HL7 MSH-4 / FHIR serviceProvider), for the output.
        separate_same_day: The feed says this is a separate encounter on a day the patient
            already had one (coding rules §3; may take a payer modifier).
        closed: The encounter was discharged/finished.
        account: The patient (billing) account number as sent (HL7 PID-18 CX.1, FHIR
            Encounter.account), empty when the feed sent none. For finding the encounter
            (the console's search) only: the rules never read it, and no id derives from it.
        account_at: Event time of the message ``account`` was taken from.
        account_version: Its message version (``EncounterEvent.version``), for ties in time.
        administrations: Current version of each administration, sorted by (start, id).
    """

    key: str
    patient_class: PatientClass = PatientClass.UNKNOWN
    inpatient_from: datetime | None = None
    class_at: datetime | None = None
    claim_type: ClaimType = ClaimType.FACILITY
    payer: str = "default"
    payer_ids: tuple[str, ...] = ()
    payer_at: datetime | None = None
    payer_version: str = ""
    class_version: str = ""
    place_of_service: str = ""
    location: str = ""
    class_hint: PatientClass | None = None
    facility: str = ""
    separate_same_day: bool = False
    closed: bool = False
    account: str = ""
    account_at: datetime | None = None
    account_version: str = ""
    administrations: tuple[Administration, ...] = ()

    def with_administrations(self, incoming: Iterable[Administration]) -> Encounter:
        """Return the encounter with ``incoming`` applied as corrections by id and version.

        The result does not depend on the order the versions arrive in: for each id the
        largest ``version`` wins, and identical versions are broken by content fingerprint.
        """
        held = self.administrations
        current = {a.id: a for a in held}
        known = len(current)  # ids added below come after these, in the dict's order
        changed = False
        for admin in incoming:
            before = current.get(admin.id)
            if before is None or _precedence(admin) > _precedence(before):
                current[admin.id] = admin
                changed = True
        if not changed:
            return self  # nothing newer arrived
        values = list(current.values())
        fresh = sorted(values[known:], key=_order)
        if fresh and all(current[a.id] is a for a in held) and (not held or _order(fresh[0]) > _order(held[-1])):
            return replace(self, administrations=held + tuple(fresh))  # only new ones, all after those held
        return replace(self, administrations=tuple(sorted(values, key=_order)))


def fingerprint(admin: Administration) -> str:
    """A digest of an administration's content, independent of hash randomisation."""
    return digest(
        (
            admin.id,
            admin.encounter_key,
            repr(admin.drug),
            repr(admin.route),
            repr(admin.method),
            admin.start.isoformat(),
            admin.end.isoformat() if admin.end else "",
            admin.status.value,
            admin.version,
            admin.site,
            str(admin.dose),
            admin.dose_unit,
            str(admin.infuse_minutes),
            str(admin.has_rate),
            str(admin.primary),
            ",".join(sorted(admin.contexts)),
            admin.department,
            str(admin.ordered_minutes),
        )
    )


def _order(admin: Administration) -> tuple[datetime, str]:
    return (admin.start, admin.id)


def _precedence(admin: Administration) -> tuple[str, str]:
    return (admin.version, fingerprint(admin))
