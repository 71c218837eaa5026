"""Drug identity: which active ingredient(s) a medication is (coding rules §5, "Same drug").

Strength, volume, brand, salt and package never make a drug "new". Identity resolves by a
mapped code (RxNorm ingredient, NDC, site-local formulary code), else by the ingredient
named in the text ("Zofran 8 mg IV" = "Ondansetron 4 mg/2 mL injection"), else falls back
to exact code (or text) equality and is flagged ``unmapped_drug``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from connector.model import CodedValue


class BillingClass(StrEnum):
    """How a drug's administration is coded."""

    THERAPEUTIC = "therapeutic"
    CHEMO = "chemo"
    HYDRATION = "hydration"
    CONTRAST = "contrast"


@dataclass(frozen=True, slots=True)
class DrugEntry:
    """One active ingredient and the spellings that name it."""

    ingredient: str
    rxcui: str | None
    category: str
    billing_class: BillingClass
    names: tuple[str, ...]
    brands: tuple[str, ...]
    tallman: tuple[str, ...]
    abbreviations: tuple[str, ...]
    codes: tuple[tuple[str, str], ...]
    reference: str
    origin: str


@dataclass(frozen=True, slots=True)
class DrugIdentity:
    """The resolved identity of a medication.

    Attributes:
        key: Identity used for "same drug" comparisons (``+``-joined ingredients, or
            ``code:…``/``text:…`` for unmapped drugs).
        ingredients: The ingredient entries matched (empty when unmapped).
        billing_class: The class that decides the codes.
        mapped: False when identity fell back to code/text equality.
        evidence: What matched, for explanations.
    """

    key: str
    ingredients: tuple[str, ...]
    billing_class: BillingClass
    mapped: bool
    evidence: str


class DrugIndex:
    """Resolves drugs to ingredients; built once per policy, then read-only.

    A per-instance memo keeps resolution of repeated drug descriptions cheap; it is
    invisible to callers (same input, same output).
    """

    def __init__(
        self,
        entries: Iterable[DrugEntry],
        combinations: Mapping[str, tuple[str, ...]],
        canonical_system: Mapping[str, str],
    ) -> None:
        self.entries: dict[str, DrugEntry] = {e.ingredient: e for e in entries}
        self._systems = canonical_system
        self._by_code: dict[tuple[str, str], tuple[str, ...]] = {}
        spellings: dict[str, tuple[str, ...]] = {}
        self._abbreviations: dict[str, tuple[str, ...]] = {}
        for entry in self.entries.values():
            own = (entry.ingredient,)
            if entry.rxcui:
                self._by_code[("RXNORM", entry.rxcui)] = own
            for system, code in entry.codes:
                self._by_code[(system, _normal_code(system, code))] = own
            for spelling in (*entry.names, *entry.brands, *entry.tallman):
                spellings[spelling.lower()] = own
            for abbreviation in entry.abbreviations:
                self._abbreviations[abbreviation.upper()] = own
        for brand, ingredients in combinations.items():
            spellings[brand.lower()] = tuple(sorted(ingredients))
        self._spellings = spellings
        alternatives = sorted(spellings, key=len, reverse=True)
        self._pattern = re.compile(r"(?<![a-z0-9])(" + "|".join(re.escape(s) for s in alternatives) + r")(?![a-z0-9])")
        self._memo: dict[CodedValue, DrugIdentity] = {}

    def resolve(self, drug: CodedValue) -> DrugIdentity:
        """Return the identity of a medication as sent by a feed."""
        found = self._memo.get(drug)
        if found is None:
            found = self._resolve(drug)
            if len(self._memo) < 100_000:
                self._memo[drug] = found
        return found

    def _resolve(self, drug: CodedValue) -> DrugIdentity:
        for coding in drug.codings:
            system = self._systems.get(coding.system.strip().lower(), coding.system.strip())
            hit = self._by_code.get((system, _normal_code(system, coding.code)))
            if hit:
                return self._identity(hit, f"code {system}|{coding.code}")
        for text in drug.texts():
            matched = self._names_in(text)
            if matched:
                return self._identity(matched, f'name in "{text}"')
        if drug.codings:
            first = drug.codings[0]
            system = self._systems.get(first.system.strip().lower(), first.system.strip())
            key = f"code:{system}|{first.code.strip()}"
        else:
            key = "text:" + " ".join(drug.text.lower().split())
        return DrugIdentity(key, (), BillingClass.THERAPEUTIC, False, "no mapping matched")

    def _names_in(self, text: str) -> tuple[str, ...]:
        found: set[str] = set()
        for match in self._pattern.finditer(text.lower()):
            found.update(self._spellings[match.group(1)])
        for token in re.findall(r"[A-Za-z0-9/.]+", text):
            found.update(self._abbreviations.get(token.upper().rstrip("."), ()))
        return tuple(sorted(found))

    def _identity(self, ingredients: Iterable[str], evidence: str) -> DrugIdentity:
        entries = [self.entries[i] for i in ingredients if i in self.entries]
        active = [e for e in entries if e.billing_class is not BillingClass.HYDRATION]
        # A fluid named beside an active drug ("cyclophosphamide in NS 250 mL") is its
        # vehicle, not a second ingredient.
        chosen = active or entries
        classes = {e.billing_class for e in chosen}
        if BillingClass.CHEMO in classes:
            billing = BillingClass.CHEMO
        elif BillingClass.CONTRAST in classes:
            billing = BillingClass.CONTRAST
        elif classes == {BillingClass.HYDRATION}:
            billing = BillingClass.HYDRATION
        else:
            billing = BillingClass.THERAPEUTIC
        names = tuple(sorted(e.ingredient for e in chosen))
        return DrugIdentity("+".join(names), names, billing, True, evidence)


def _normal_code(system: str, code: str) -> str:
    code = code.strip()
    if system == "NDC":
        return code.replace("-", "")
    return code.upper()
