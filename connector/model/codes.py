"""Coded values as they arrive from a feed: a code is only meaningful with its system."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Coding:
    """One code in one coding system (HL7 CWE component or FHIR Coding).

    Attributes:
        system: The coding system as the feed names it (``HL70162``,
            ``http://snomed.info/sct``, a site's local name). Canonicalised by the policy.
        code: The code itself, exactly as sent.
        display: The human text sent beside the code, if any.
    """

    system: str
    code: str
    display: str = ""


@dataclass(frozen=True, slots=True)
class CodedValue:
    """A concept as sent: zero or more codings plus free text (CWE / CodeableConcept).

    Attributes:
        codings: Alternative codes for the same concept.
        text: Free text sent for the concept (HL7 CWE-9/original text, FHIR ``text``).
    """

    codings: tuple[Coding, ...] = ()
    text: str = ""

    @property
    def is_empty(self) -> bool:
        """True when the feed sent neither a code nor text."""
        return not self.codings and not self.text

    def texts(self) -> tuple[str, ...]:
        """Every human-readable string carried: the text, then each coding's display."""
        found = [self.text] if self.text else []
        found.extend(c.display for c in self.codings if c.display)
        return tuple(found)


EMPTY = CodedValue()
