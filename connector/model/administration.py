"""One medication administration, as documented on the MAR."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from connector.model.codes import EMPTY, CodedValue


class AdminStatus(StrEnum):
    """Completion status, normalised by the adapters through the status mapping."""

    GIVEN = "given"
    PARTIAL = "partial"
    NOT_GIVEN = "not_given"
    IN_PROGRESS = "in_progress"
    ENTERED_IN_ERROR = "entered_in_error"
    DELETED = "deleted"

    @property
    def counts(self) -> bool:
        """Whether the administration happened (coding rules §2, "Status")."""
        return self in (AdminStatus.GIVEN, AdminStatus.PARTIAL)


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where an administration came from, for explanations and rejects (no PHI).

    Attributes:
        kind: ``hl7v2``, ``fhir`` or ``scenario``.
        message_id: HL7 MSH-10 or the FHIR resource id.
        position: Where the record sits in its source (file offset, line, queue position).
        file: The archive file it was read from (replay, explain), if any.
    """

    kind: str
    message_id: str = ""
    position: str = ""
    file: str = ""


@dataclass(frozen=True, slots=True)
class Administration:
    """A single documented administration of a medication.

    Attributes:
        id: Stable id derived from the source identity (see ``connector.model.ids``).
        encounter_key: The encounter it belongs to (assigning authority + visit number).
        drug: The medication as sent (codes and text); identity is resolved by the policy.
        route: Route as sent (HL7 RXR-1, FHIR ``dosage.route``).
        method: Method/device signals as sent (HL7 RXR-4 and RXR-3 with their table
            systems, FHIR ``dosage.method``); classification reads them through mappings.
        start: When it started, timezone-aware, in the zone it was recorded in.
        end: When it stopped, if documented.
        status: Normalised completion status.
        version: Order key among versions of this id (larger wins); adapters build it
            from FHIR ``meta.versionId``/``lastUpdated`` or HL7 message/entry times.
        site: Vascular access site code, if documented (HL7 RXR-2, FHIR ``dosage.site``).
        dose: Administered amount, if sent.
        dose_unit: Unit of ``dose``.
        infuse_minutes: Documented infusion length when no stop time is sent
            (Oracle Health ``infuse-over-time``).
        ordered_minutes: How long the order said to infuse over (ordered rate or infuse-over
            time), if sent; a documented duration far beyond it is flagged for review.
        has_rate: Whether a rate was documented (an infusion signal).
        primary: The feed marks this as the primary reason for the encounter
            (professional claims choose the initial service by it).
        contexts: Clinical context flags (``imaging``, ``transfusion``, ``procedure``,
            ``kvo``, ``flush``, ``vehicle``); the policy decides what they imply.
        department: Ordering/administering department, for revenue-code overrides.
        source: Where the record came from.
        time_review: Why its times need review, naming fields, e.g. ``"RXA-3 fold"``: a local
            time sent without an offset that a DST change makes ambiguous (``fold``) or
            nonexistent (``gap``), read by the documented rule; the lines it feeds are flagged
            ``needs_review``. Empty for unambiguous times.
    """

    id: str
    encounter_key: str
    drug: CodedValue
    start: datetime
    route: CodedValue = EMPTY
    method: CodedValue = EMPTY
    end: datetime | None = None
    status: AdminStatus = AdminStatus.GIVEN
    version: str = ""
    site: str = ""
    dose: Decimal | None = None
    dose_unit: str = ""
    infuse_minutes: int | None = None
    ordered_minutes: int | None = None
    has_rate: bool = False
    primary: bool = False
    contexts: frozenset[str] = field(default_factory=frozenset)
    department: str = ""
    source: SourceRef = SourceRef(kind="unknown")
    time_review: str = ""

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or (self.end is not None and self.end.tzinfo is None):
            raise ValueError(
                f"administration {self.id}: times must carry their zone "
                "(adapters attach the site's zone to local HL7 times)"
            )
