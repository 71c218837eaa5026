"""What an adapter makes of one input: its records, plus the parts of it that were rejected on their own.

Most inputs have one fate: records, or an ``AdapterError`` for the whole input. A FHIR Bundle
is read entry by entry (``fhir.bundle``): an unusable entry is rejected with its index while the
other entries are kept, so its result carries both.
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.adapters.errors import AdapterError
from connector.model import ParsedRecord


@dataclass(frozen=True, slots=True)
class PartReject:
    """One rejected part of an input whose other parts were kept.

    Attributes:
        part: Where the part sits in its input, e.g. ``entry[3]`` (a Bundle entry); appended to
            the input's position as ``<position>#<part>`` in reject reports.
        error: Why; its detail names the part (``Bundle.entry[3]: …``) and never a value.
    """

    part: str
    error: AdapterError


@dataclass(frozen=True, slots=True)
class Parsed:
    """The records of one input and its rejected parts, both in input order.

    Attributes:
        records: One per administration or encounter that could be read.
        rejects: The parts that could not (empty for all but partly usable Bundles).
    """

    records: tuple[ParsedRecord, ...] = ()
    rejects: tuple[PartReject, ...] = ()

    def strict(self) -> list[ParsedRecord]:
        """The records when nothing was rejected (one input, one fate).

        Raises:
            AdapterError: The first rejected part's error.
        """
        if self.rejects:
            raise self.rejects[0].error
        return list(self.records)
