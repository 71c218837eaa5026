"""A site's settings read from its feeds (pure: built by ``policy.siteload``, read by adapters).

``mappings/site.yaml`` (shipped defaults, overridden key by key by a site's own ``site.yaml``)
says which zone each facility's times are dated in, how an HL7 administration finds its
encounter when no visit number is sent, and where the feed marks the professional
``primary`` administration.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from functools import lru_cache

FIELD_STEPS = ("PV1-19", "PID-18", "PV1-50")
"""HL7 fields that can carry the visit number, in the order HL7 v2 converters try them."""
SERVICE_STEPS = ("order", "visit")
"""Steps the service resolves from earlier messages: an order id linked to a visit, an ADT visit window."""
DEFAULT_CHAIN = (*FIELD_STEPS, *SERVICE_STEPS)
FALLBACKS = ("reject", "patient_day")
"""What happens when no step of the chain finds the encounter."""


@lru_cache(maxsize=16)
def _field_steps(chain: tuple[str, ...]) -> tuple[str, ...]:
    """The HL7 field steps of an identity chain (read for every HL7 message: cached)."""
    return tuple(s for s in chain if s in FIELD_STEPS)


@lru_cache(maxsize=16)
def _service_steps(chain: tuple[str, ...]) -> tuple[str, ...]:
    """The service steps of an identity chain (read for every HL7 message: cached)."""
    return tuple(s for s in chain if s in SERVICE_STEPS)


_PRIMARY = re.compile(
    r"^(?P<segment>[A-Z][A-Z0-9]{2})-(?P<field>[1-9][0-9]*)(?:\.(?P<component>[1-9][0-9]*))?(?:=(?P<value>.+))?$"
)


@dataclass(frozen=True, slots=True)
class PrimaryField:
    """Where an HL7 message marks an administration as the professional ``primary`` one.

    Attributes:
        segment: Segment id (``RXA``, ``ZRX``).
        field: Field number (1-based, as in the HL7 tables).
        component: Component number (1-based), or None for the whole field (its first component).
        value: The value that means primary (compared case-insensitively), or None: any
            non-empty value, except ``N``/``0``/``false``, means primary.
    """

    segment: str
    field: int
    component: int | None = None
    value: str | None = None

    def marks(self, sent: str) -> bool:
        """Whether the value sent in the named field says ``primary``."""
        text = sent.strip()
        if self.value is not None:
            return text.upper() == self.value.upper()
        return bool(text) and text.upper() not in {"N", "0", "FALSE", "NO"}


def parse_primary_hl7(text: str) -> PrimaryField | None:
    """Parse ``SEG-F[.C][=VALUE]`` (``""`` means the feed carries no primary flag).

    Raises:
        ValueError: When the text is not of that form.
    """
    text = text.strip()
    if not text:
        return None
    found = _PRIMARY.match(text)
    if found is None:
        raise ValueError(f"primary_hl7 '{text}' is not of the form SEG-F[.C][=VALUE] (e.g. RXA-9.1=P, ZRX-2)")
    component = found.group("component")
    value = found.group("value")
    return PrimaryField(
        found.group("segment"),
        int(found.group("field")),
        int(component) if component else None,
        value.strip() if value and value.strip() else None,
    )


def chain_problem(chain: tuple[str, ...]) -> str | None:
    """Why an identity chain is not valid, or None.

    A chain is a non-empty selection of the HL7 field steps (each at most once, in any order),
    followed by the service steps it keeps, in their own order (``order`` before ``visit``).
    """
    if not chain:
        return "identity_chain needs at least one step"
    known = (*FIELD_STEPS, *SERVICE_STEPS)
    for step in chain:
        if step not in known:
            return f"identity_chain step '{step}' is not one of {list(known)}"
    if len(set(chain)) != len(chain):
        return "identity_chain names a step twice"
    fields = [s for s in chain if s in FIELD_STEPS]
    services = [s for s in chain if s in SERVICE_STEPS]
    if list(chain) != fields + services:
        return "identity_chain: the service steps (order, visit) come after the HL7 field steps"
    if services != [s for s in SERVICE_STEPS if s in services]:
        return "identity_chain: 'order' comes before 'visit'"
    return None


@dataclass(frozen=True, slots=True)
class SiteProfile:
    """The site settings, validated.

    Attributes:
        zones: Facility id (HL7 MSH-4 HD.1 / FHIR serviceProvider id, upper-cased) → the zone
            its times are dated in; a facility not listed uses ``--zone``.
        identity_chain: Where an HL7 administration's encounter key comes from, in order:
            HL7 fields (``PV1-19``, ``PID-18``, ``PV1-50``), then the service steps
            (``order``: an ORC-2/ORC-4 placer id seen earlier with a visit number; ``visit``:
            the patient's ADT visit window around the administration).
        fallback: ``reject`` (park as ``missing_encounter_key``) or ``patient_day`` (key the
            encounter ``authority|PID-3 CX.1|YYYY-MM-DD``, the local date of the first
            administration) when no step finds the encounter.
        primary_hl7: HL7 field marking the professional primary administration
            (``SEG-F[.C][=VALUE]``, e.g. ``RXA-9.1=P`` or ``ZRX-2``); ``""`` = not read.
        primary_fhir_extension: FHIR extension URL (boolean value) on MedicationAdministration
            marking it primary; ``""`` = not read.
        origin: ``file:line`` of the site file that set these, ``""`` for the shipped defaults.
    """

    zones: Mapping[str, tzinfo] = field(default_factory=dict)
    identity_chain: tuple[str, ...] = DEFAULT_CHAIN
    fallback: str = "reject"
    primary_hl7: str = ""
    primary_fhir_extension: str = ""
    origin: str = ""

    def zone_for(self, facility: str) -> tzinfo | None:
        """The zone of a facility (compared upper-cased), or None when the site names none."""
        return self.zones.get(facility.strip().upper()) if facility else None

    @property
    def field_steps(self) -> tuple[str, ...]:
        """The HL7 field steps of the chain, in order."""
        return _field_steps(self.identity_chain)

    @property
    def service_steps(self) -> tuple[str, ...]:
        """The service steps of the chain (``order``, ``visit``), in order."""
        return _service_steps(self.identity_chain)

    @property
    def rejects_unkeyed(self) -> bool:
        """Whether an HL7 administration without any visit number is rejected in the adapter.

        True only when the chain has no service step (nothing later can find the encounter)
        and the fallback is ``reject``.
        """
        return not self.service_steps and self.fallback == "reject"

    @property
    def primary_field(self) -> PrimaryField | None:
        """``primary_hl7`` parsed (validated at load, so never raises here)."""
        return parse_primary_hl7(self.primary_hl7)
