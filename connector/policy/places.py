"""Patient class and location as sent → CMS place-of-service code (pure: built by ``policy.siteload``).

``mappings/places_of_service.yaml`` gives each patient class a default place of service and
lets a site name its own locations (HL7 PV1-3 point of care, FHIR Encounter.location type)
where the default is wrong, e.g. an off-campus infusion clinic (19) or a physician office (11).
Codes are from the CMS Place of Service code set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from connector.model import PatientClass
from connector.policy.dated import DatedSpan, in_force, normalise_key

normalise_location = normalise_key
"""A location as compared: upper-case, runs of whitespace as one space, trimmed."""


@dataclass(frozen=True, slots=True)
class PlaceEntry(DatedSpan):
    """The place of service of a (class, location) over a span of dates of service.

    Attributes:
        patient_class: The patient class.
        location: The location, normalised; ``""`` for the class default.
        pos: CMS place-of-service code (two digits).
        origin: ``file:line`` of the entry.
        reference: The source the entry rests on.
        effective_from: First date of service it applies to.
        effective_to: Last date of service it applies to (inclusive), or open.
    """

    patient_class: PatientClass
    location: str
    pos: str
    origin: str
    reference: str
    effective_from: date
    effective_to: date | None = None


@dataclass(frozen=True, slots=True)
class PlaceTable:
    """(class, normalised location) → dated entries; location ``""`` is the class default."""

    entries: Mapping[tuple[PatientClass, str], tuple[PlaceEntry, ...]] = field(default_factory=dict)

    def place_of_service(self, patient_class: PatientClass, location: str, day: date) -> tuple[str, str] | None:
        """The place of service: the exact (class, location) entry, else the class default.

        Returns:
            ``(CMS POS code, "file:line")``, or None when the table has neither on ``day``.
        """
        wanted = normalise_location(location)
        keys = [(patient_class, wanted)] if wanted else []
        for key in [*keys, (patient_class, "")]:
            if (entry := in_force(self.entries.get(key, ()), day)) is not None:
                return entry.pos, entry.origin
        return None

    @property
    def count(self) -> int:
        """How many entries the table holds (all dates)."""
        return sum(len(v) for v in self.entries.values())
