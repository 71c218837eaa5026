"""Step 0: what the feed says about the setting — class, payer, place of service (coding rules §3, §7).

- Patient class: the encounter's own (PV1-2, FHIR Encounter.class, ADT), else the class an
  administration implied (FHIR ``category``), else outpatient *under review*: an encounter
  the feed never classed is never silently billed as outpatient (issue #13, part 6).
- Payer: the primary coverage's identifiers (HL7 IN1-2/3/4, FHIR Coverage.payor) through the
  site payer map, in force on the encounter's first date of service; identifiers the map
  lacks keep the default policy and put every line under review, naming them. Without
  insurance in the feed the default (``--policy``) applies, as before.
- Place of service: the one set explicitly (scenarios), else the site table's entry for the
  patient class and location (CMS POS code set), in force on the first date of service.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import NamedTuple

from connector.model import Encounter, PatientClass, Review
from connector.policy.model import Policy

UNKNOWN_CLASS = "unknown_class"
UNMAPPED_PAYER = "unmapped_payer"


class Setting(NamedTuple):
    """The encounter as it is coded, and what about it needs review.

    Attributes:
        encounter: The encounter with its effective class, payer and place of service.
        reviews: Encounter-wide reasons for review.
        mappings: ``file:line`` of the payer map and place-of-service entries used.
    """

    encounter: Encounter
    reviews: tuple[Review, ...]
    mappings: tuple[str, ...]


def resolve_setting(encounter: Encounter, policy: Policy) -> Setting:
    """The effective class, payer and place of service of an encounter, its times in the facility zone."""
    encounter = in_facility_zone(encounter, policy)
    day = first_day(encounter)
    reviews: list[Review] = []
    mappings: list[str] = []
    patient_class = encounter.patient_class
    if patient_class is PatientClass.UNKNOWN:
        patient_class = encounter.class_hint or PatientClass.OUTPATIENT
        if encounter.class_hint is None and encounter.administrations:
            reviews.append(
                Review(
                    UNKNOWN_CLASS,
                    "Patient class unknown (no PV1-2, Encounter.class, ADT or category): coded as outpatient.",
                )
            )
    payer = encounter.payer
    if encounter.payer_ids and day is not None:
        found = policy.payer_map.payer_for(encounter.payer_ids, day)
        if found is None:
            sent = ", ".join(f"'{identifier}'" for identifier in encounter.payer_ids)
            reviews.append(
                Review(
                    UNMAPPED_PAYER,
                    f"Payer identifiers {sent} not in the payer map: coded under policy {payer}.",
                    sent=encounter.payer_ids,
                )
            )
        else:
            payer, origin = found
            mappings.append(origin)
    place = encounter.place_of_service
    if not place and day is not None:
        found_place = policy.places.place_of_service(patient_class, encounter.location, day)
        if found_place is not None:
            place, origin = found_place
            mappings.append(origin)
    effective = encounter
    if (patient_class, payer, place) != (encounter.patient_class, encounter.payer, encounter.place_of_service):
        effective = replace(encounter, patient_class=patient_class, payer=payer, place_of_service=place)
    return Setting(effective, tuple(reviews), tuple(mappings))


def in_facility_zone(encounter: Encounter, policy: Policy) -> Encounter:
    """The encounter with every administration time shown in its facility's zone (site.yaml).

    The adapters already show times in the facility zone when the message names the facility
    (HL7 MSH-4, a FHIR Encounter in the same document); a FHIR administration sent alone only
    has the default zone. Converting here, from the encounter's facility, gives every
    administration of an encounter the same local dates whichever way it arrived. The instant
    is kept; the offset is the zone's at that instant, as a fixed offset (DST-safe).
    """
    zone = policy.site.zone_for(encounter.facility) if encounter.facility else None
    if zone is None:
        return encounter
    moved = []
    changed = False
    for admin in encounter.administrations:
        start = _local(admin.start, zone)
        end = _local(admin.end, zone) if admin.end is not None else None
        if start.utcoffset() != admin.start.utcoffset() or (
            end is not None and admin.end is not None and end.utcoffset() != admin.end.utcoffset()
        ):
            admin = replace(admin, start=start, end=end)  # noqa: PLW2901
            changed = True
        moved.append(admin)
    return replace(encounter, administrations=tuple(moved)) if changed else encounter


def _local(moment: datetime, zone: tzinfo) -> datetime:
    local = moment.astimezone(zone)
    return local.replace(tzinfo=timezone(local.utcoffset() or timedelta(0)))


def first_day(encounter: Encounter) -> date | None:
    """The first local date of service (administrations are sorted by start)."""
    return encounter.administrations[0].start.date() if encounter.administrations else None
