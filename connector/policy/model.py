"""Typed, dated view of the mappings (pure: built by ``policy.loader``, read by the rules)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any, TypeVar

from connector.model import AdminStatus, ClaimType, CodedValue, PatientClass
from connector.policy.cms import CmsTables
from connector.policy.drugs import DrugIndex
from connector.policy.payer_map import PayerMap
from connector.policy.places import PlaceTable
from connector.policy.site import SiteProfile

MEMO_SIZE = 50_000  # entries per memo; a full memo is emptied, never grown further
K = TypeVar("K")
V = TypeVar("V")


class RouteKind(StrEnum):
    """Route class used by the rules (coding rules §2, "Route")."""

    IV = "iv"
    IM = "im"
    SQ = "sq"
    OTHER = "other"
    UNKNOWN = "unknown"


class MethodKind(StrEnum):
    """What a method/device code says about how the drug was given."""

    PUSH = "push"
    INFUSION = "infusion"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Dated:
    """Where a mapping entry comes from and when it applies.

    Attributes:
        origin: ``file:line`` of the entry, for explanations and errors.
        reference: The source the entry rests on.
        effective_from: First date of service the entry applies to.
        effective_to: Last date of service it applies to (inclusive), or open.
    """

    origin: str
    reference: str
    effective_from: date
    effective_to: date | None = None

    def covers(self, day: date) -> bool:
        """Whether the entry is in force on ``day``."""
        if day < self.effective_from:
            return False
        return self.effective_to is None or day <= self.effective_to


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """A route (and optionally method) meaning for one code or text."""

    route: RouteKind
    method: MethodKind
    dated: Dated


@dataclass(frozen=True, slots=True)
class MueLimit:
    """A payer file's MUE entry for one code: it overrides the loaded CMS table's value.

    Attributes:
        code: HCPCS/CPT code.
        facility_units: Most units on a facility claim (None: the CMS table decides).
        professional_units: Most units on a professional claim (None: the CMS table decides).
        reference: The quarterly CMS file (or payer publication) the values come from.
        mai: MUE adjudication indicator: 1 per line (the default), 2 or 3 per date of service.
    """

    code: str
    facility_units: int | None
    professional_units: int | None
    reference: str
    mai: int = 1

    def limit(self, claim_type: ClaimType) -> int | None:
        """The cap for a claim type, or None when the file gives none."""
        if claim_type is ClaimType.FACILITY:
            return self.facility_units
        return self.professional_units


@dataclass(frozen=True, slots=True)
class PayerPolicy:
    """One payer's settings after its overlay was applied over the default (CPT) policy.

    Attributes mirror the policy keys named in ``coding-rules.md``.
    """

    name: str
    version: str
    same_drug_min_interval_minutes: int = 30
    facility_only_codes: frozenset[str] = frozenset({"96376"})
    allow_second_site_initial: bool = False
    second_site_modifier: str = "59"
    separate_encounter_modifier: str | None = None
    professional_suppressed_pos: frozenset[str] = frozenset()
    professional_suppressed_codes: frozenset[str] = frozenset()
    professional_suppression_action: str = "write_off"
    mue: Mapping[str, MueLimit] = field(default_factory=dict)
    references: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChargeItem:
    """Chargemaster item for one CPT code."""

    code: str
    charge_code: str
    description: str
    revenue_code: str | None = None


@dataclass(frozen=True, slots=True)
class Chargemaster:
    """Code → chargemaster item, with revenue codes overridable per department."""

    items: Mapping[str, ChargeItem]
    default_revenue_code: str = "0260"
    department_revenue_codes: Mapping[str, str] = field(default_factory=dict)

    def lookup(self, code: str, department: str) -> tuple[str, str]:
        """Return (charge code, revenue code) for a code billed from a department."""
        item = self.items.get(code)
        charge_code = item.charge_code if item else ""
        revenue = self.department_revenue_codes.get(department) or (
            item.revenue_code if item and item.revenue_code else self.default_revenue_code
        )
        return charge_code, revenue


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything the rules read, already validated.

    Attributes:
        systems: Alias of a coding system → canonical system name.
        routes: (canonical system, upper-case code) → dated route entries.
        route_texts: Normalised free text → dated route entries.
        methods: (canonical system, upper-case code) → dated method entries.
        method_texts: Normalised free text → dated method entries.
        drugs: Ingredient identity resolver.
        payers: Payer name → policy.
        chargemaster: Charge items.
        integral_contexts: Context flags that make an administration not separately
            reportable (imaging, transfusion premedication, procedure).
        statuses: ``hl7:``/``fhir:`` + normalised status → completion status (adapters).
        patient_classes: Normalised patient class code → class (adapters).
        non_hydration_contexts: Context flags that make a fluid not hydration
            (KVO, flush, vehicle).
        site: The site's zones per facility, encounter identity chain and primary field
            (``site.yaml``).
        payer_map: Insurance identifiers as sent → payer policy (``payer_map.yaml``).
        places: Patient class and location → CMS place of service (``places_of_service.yaml``).
        cms: The CMS MUE and PTP tables a site loaded (``cms/*.yaml``), by claim type and quarter.
    """

    systems: Mapping[str, str]
    routes: Mapping[tuple[str, str], tuple[RouteEntry, ...]]
    route_texts: Mapping[str, tuple[RouteEntry, ...]]
    methods: Mapping[tuple[str, str], tuple[RouteEntry, ...]]
    method_texts: Mapping[str, tuple[RouteEntry, ...]]
    drugs: DrugIndex
    payers: Mapping[str, PayerPolicy]
    chargemaster: Chargemaster
    statuses: Mapping[str, AdminStatus] = field(default_factory=dict)
    patient_classes: Mapping[str, PatientClass] = field(default_factory=dict)
    integral_contexts: frozenset[str] = frozenset({"imaging", "transfusion", "procedure"})
    non_hydration_contexts: frozenset[str] = frozenset({"kvo", "flush", "vehicle"})
    site: SiteProfile = field(default_factory=SiteProfile)
    payer_map: PayerMap = field(default_factory=PayerMap)
    places: PlaceTable = field(default_factory=PlaceTable)
    cms: CmsTables = field(default_factory=CmsTables)
    # Memos: pure caches (same question, same answer), invisible to callers and bounded by
    # MEMO_SIZE. Not constructor arguments, so ``dataclasses.replace`` gives a policy with
    # other mappings fresh memos. ``memo`` holds route/method lookups; ``rule_memo`` holds
    # results the rules derive from this policy alone (per-administration classification).
    memo: dict[object, tuple[RouteEntry | None, str]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )
    rule_memo: dict[object, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    def payer(self, name: str) -> PayerPolicy:
        """The payer's policy, or the default (CPT) policy for an unknown payer."""
        return self.payers.get(name.lower()) or self.payers["default"]

    def status_of(self, sent: str, source: str = "hl7") -> AdminStatus | None:
        """Normalised completion status of a sent status (``source`` hl7 or fhir); None if unmapped."""
        return self.statuses.get(f"{source}:{normalise_text(sent)}")

    def patient_class_of(self, sent: str) -> PatientClass | None:
        """Normalised patient class of a sent class code (None if unmapped)."""
        return self.patient_classes.get(normalise_text(sent))

    def canonical_system(self, system: str) -> str:
        """The canonical name of a coding system (unknown systems stay as sent)."""
        return self.systems.get(system.strip().lower(), system.strip())

    def route_of(self, value: CodedValue, day: date) -> tuple[RouteEntry | None, str]:
        """Route meaning of a coded route, with the evidence used."""
        key = ("route", value, day)
        found = self.memo.get(key)
        if found is None:
            found = remember(self.memo, key, self._lookup(value, day, self.routes, self.route_texts))
        return found

    def method_of(self, value: CodedValue, day: date) -> tuple[RouteEntry | None, str]:
        """Method meaning of a coded method/device, with the evidence used."""
        key = ("method", value, day)
        found = self.memo.get(key)
        if found is None:
            found = remember(self.memo, key, self._lookup(value, day, self.methods, self.method_texts))
        return found

    def _lookup(
        self,
        value: CodedValue,
        day: date,
        by_code: Mapping[tuple[str, str], tuple[RouteEntry, ...]],
        by_text: Mapping[str, tuple[RouteEntry, ...]],
    ) -> tuple[RouteEntry | None, str]:
        for coding in value.codings:
            key = (self.canonical_system(coding.system), coding.code.strip().upper())
            entry = _in_force(by_code.get(key, ()), day)
            if entry:
                return entry, f"{key[0]}|{key[1]} ({entry.dated.origin})"
        for text in value.texts():
            entry = _in_force(by_text.get(normalise_text(text), ()), day)
            if entry:
                return entry, f'"{text}" ({entry.dated.origin})'
        return None, ""


def remember(memo: dict[K, V], key: K, value: V) -> V:
    """Store ``value`` in a bounded memo (emptied when full) and return it."""
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[key] = value
    return value


def normalise_text(text: str) -> str:
    """Lower-case, single-spaced text used as a mapping key."""
    return " ".join(text.lower().split())


def _in_force(entries: tuple[RouteEntry, ...], day: date) -> RouteEntry | None:
    for entry in entries:
        if entry.dated.covers(day):
            return entry
    return None
