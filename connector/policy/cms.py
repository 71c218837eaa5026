"""CMS quarterly edit tables: Medically Unlikely Edits and NCCI procedure-to-procedure edits (pure).

Built by ``policy.cmsload`` from the files ``ivpush policy import-mue`` and ``import-ptp`` write
into a site's ``mappings/cms/`` (``docs/cms-policy-files.md``); read by ``rules.edits``.

- A table is one CMS file for one claim type (practitioner → professional, outpatient hospital
  → facility), in force from its effective date until the next loaded table of the same kind
  and claim type begins: several quarters can be loaded side by side.
- An encounter is coded with the tables in force on its first date of service, one version per
  encounter (``docs/rules.md`` decision 27), so every line of it names the same quarters.
- A PTP edit applies on a date of service ``d`` when ``effective_from <= d < deleted_from``: a
  pair CMS deleted retroactively carries equal dates and never applies.
- A table's version is its quarter and a digest of its content (``mue-2026q1.3fa2b1c0``): a
  re-import of the same quarter with other rows (a CMS revision, a file added, a value changed)
  names another version, so the lines it changes get new ids (credit and rebill).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TypeVar

from connector.model import ClaimType

MAI_LINE = 1  # line edit: units on one claim line
MAI_POLICY = 2  # date-of-service edit, policy: absolute
MAI_CLINICAL = 3  # date-of-service edit, clinical: documentation may support more on appeal
MAI_NAMES = {
    MAI_LINE: "line edit",
    MAI_POLICY: "date-of-service edit: policy",
    MAI_CLINICAL: "date-of-service edit: clinical",
}
MODIFIER_NOT_ALLOWED = 0
MODIFIER_ALLOWED = 1
MODIFIER_NOT_APPLICABLE = 9


@dataclass(frozen=True, slots=True)
class MueEdit:
    """One code's Medically Unlikely Edit.

    Attributes:
        code: HCPCS/CPT code.
        value: Most units of service per line (MAI 1) or per date of service (MAI 2, 3).
        mai: MUE adjudication indicator (1, 2 or 3).
        rationale: CMS's MUE rationale, as published.
        origin: ``file:line`` of the entry in the mappings.
        source: The CMS file it was imported from, for explanations.
    """

    code: str
    value: int
    mai: int
    rationale: str
    origin: str
    source: str


@dataclass(frozen=True, slots=True)
class PtpEdit:
    """One NCCI procedure-to-procedure edit: the column-2 code is denied beside the column-1 code.

    Attributes:
        column1: The code that stays payable.
        column2: The code that is denied unless an allowed modifier shows the services distinct.
        effective_from: First date of service the edit applies to.
        deleted_from: First date of service it no longer applies to (None: not deleted).
        modifier: 0 not allowed, 1 allowed, 9 not applicable.
        rationale: CMS's PTP edit rationale, as published.
        origin: ``file:line`` of the entry in the mappings.
        source: The CMS file it was imported from, for explanations.
    """

    column1: str
    column2: str
    effective_from: date
    deleted_from: date | None
    modifier: int
    rationale: str
    origin: str
    source: str

    def applies(self, day: date) -> bool:
        """Whether the edit is in force on ``day`` (effective ≤ day < deletion)."""
        return self.effective_from <= day and (self.deleted_from is None or day < self.deleted_from)


@dataclass(frozen=True, slots=True)
class MueTable:
    """The MUE values of one CMS file for one claim type.

    Attributes:
        label: The quarter it names in the policy version (``2026q1``).
        claim_type: Facility (outpatient hospital) or professional (practitioner).
        effective_from: First date of service it is in force.
        source: The CMS file name.
        origin: The mappings file it was read from.
        edits: Code → edit.
        digest: Its content digest (``table_digest``), named in the policy version after the quarter.
    """

    label: str
    claim_type: ClaimType
    effective_from: date
    source: str
    origin: str
    edits: Mapping[str, MueEdit] = field(default_factory=dict)
    digest: str = ""


@dataclass(frozen=True, slots=True)
class PtpTable:
    """The PTP edits of one CMS file for one claim type.

    Attributes:
        label: The quarter it names in the policy version (``2026q1``).
        claim_type: Facility (hospital) or professional (practitioner).
        effective_from: First date of service it is in force.
        source: The CMS file name.
        origin: The mappings file it was read from.
        by_column2: Column-2 code → its edits (every column-1 code, every dated version).
        digest: Its content digest (``table_digest``), named in the policy version after the quarter.
    """

    label: str
    claim_type: ClaimType
    effective_from: date
    source: str
    origin: str
    by_column2: Mapping[str, tuple[PtpEdit, ...]] = field(default_factory=dict)
    digest: str = ""

    @property
    def count(self) -> int:
        """How many edits the table holds."""
        return sum(len(edits) for edits in self.by_column2.values())


@dataclass(frozen=True, slots=True)
class CmsTables:
    """Every loaded MUE and PTP table, each kind sorted by claim type and effective date."""

    mue: tuple[MueTable, ...] = ()
    ptp: tuple[PtpTable, ...] = ()

    def mue_for(self, claim_type: ClaimType, day: date | None) -> MueTable | None:
        """The MUE table in force for a claim type on ``day`` (the latest that began by then)."""
        return _latest(self.mue, claim_type, day)

    def ptp_for(self, claim_type: ClaimType, day: date | None) -> PtpTable | None:
        """The PTP table in force for a claim type on ``day`` (the latest that began by then)."""
        return _latest(self.ptp, claim_type, day)


T = TypeVar("T", "MueTable", "PtpTable")


DIGEST_LENGTH = 8  # hex digits of the content digest named in the policy version
MueEntry = tuple[str, int, int, str, str]  # code, value, MAI, rationale, source (file:line)
PtpEntry = tuple[str, str, str, str | None, int, str, str]  # column 1, column 2, effective, deleted, modifier, …


def table_digest(
    table: str,
    claim_type: ClaimType,
    effective: date,
    source_sha256: Sequence[str],
    entries: Iterable[MueEntry | PtpEntry],
) -> str:
    """The first 8 hex digits of a SHA-256 over a table's identity, its CMS files' digests and its entries.

    Computed by the import from the rows it keeps (written as ``meta.digest``) and by the loader
    from the entries it reads: the same file gives the same digest, any other content another.
    Dates are ISO text; the entries are in file order.
    """
    canonical = json.dumps(
        [table, claim_type.value, effective.isoformat(), list(source_sha256), [list(e) for e in entries]],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:DIGEST_LENGTH]


def table_version(kind: str, label: str, digest: str) -> str:
    """``mue-2026q1.3fa2b1c0``: a table as its policy version names it (no digest: ``mue-2026q1``)."""
    return f"{kind}-{label}" + (f".{digest}" if digest else "")


def version_suffix(mue: MueTable | None, ptp: PtpTable | None) -> str:
    """What the tables in force add to a policy version: ``/mue-2026q1.3fa2b1c0/ptp-2026q1.0c9d2e71`` (empty: none)."""
    return (f"/{table_version('mue', mue.label, mue.digest)}" if mue is not None else "") + (
        f"/{table_version('ptp', ptp.label, ptp.digest)}" if ptp is not None else ""
    )


def quarter_label(effective: date) -> str:
    """``2026q1`` for a quarter's first day; ``2026q1-0215`` for a file effective within the quarter."""
    quarter = (effective.month - 1) // 3 + 1
    label = f"{effective.year}q{quarter}"
    if effective.day != 1 or effective.month != 3 * quarter - 2:
        label += f"-{effective.month:02d}{effective.day:02d}"
    return label


def _latest(tables: tuple[T, ...], claim_type: ClaimType, day: date | None) -> T | None:
    if day is None or not tables:
        return None
    found: T | None = None
    for table in tables:
        if table.claim_type is claim_type and table.effective_from <= day:
            found = table  # sorted by effective date: the last one that began wins
    return found
