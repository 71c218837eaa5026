"""What reading one FHIR resource needs besides the resource: mappings, references, window, zones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

from connector.adapters.fhir.references import NO_ENTRIES, Resolver
from connector.adapters.sanity import DEFAULT_WINDOW, TimeWindow
from connector.policy.model import Policy


@dataclass(frozen=True, slots=True)
class Reading:
    """The settings one document is read with.

    Attributes:
        policy: Status, patient class mappings and the site profile (facility zones, the
            ``primary`` extension URL).
        resolver: The document's Bundle entries, for references.
        position: Where the document sits in its source.
        window: Accepted instants.
        zone: The default zone (``--zone``/``coding.zone``) for instants of a facility the
            site profile names no zone for; None keeps every instant's offset as sent.
    """

    policy: Policy
    resolver: Resolver = NO_ENTRIES
    position: str = ""
    window: TimeWindow = DEFAULT_WINDOW
    zone: tzinfo | None = None

    def zone_of(self, facility: str) -> tzinfo | None:
        """The zone a facility's instants are dated in: the site's zone for it, else the default."""
        found = self.policy.site.zone_for(facility) if facility else None
        return found if found is not None else self.zone
