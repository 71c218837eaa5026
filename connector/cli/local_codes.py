"""Local codes the mappings lack, counted from stored outcomes (``ivpush unmapped``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from connector.cli.explain_render import source_text
from connector.model import AdministrationOutcome, SourceRef

KINDS = ("route", "method", "drug", "payer")


@dataclass(frozen=True)
class LocalCode:
    """One code the mappings lack, as sent, and how often it was seen.

    Attributes:
        kind: ``route``, ``method``, ``drug`` or ``payer``.
        system: Its coding system as sent (empty: a text, or an identifier).
        code: The code, text or identifier as sent (site dictionary values, not patient data).
        count: Administrations whose outcome names it.
        fields: The fields it was read from (``RXR-1``, ``dosage.route``, ``IN1-2/IN1-3/IN1-4`` …).
        sample: Where the first of them came from.
    """

    kind: str
    system: str
    code: str
    count: int
    fields: tuple[str, ...]
    sample: SourceRef


def tally(outcomes: Iterable[AdministrationOutcome]) -> list[LocalCode]:
    """Every unmapped code of ``outcomes``, most seen first (then by kind, system, code)."""
    counts: dict[tuple[str, str, str], int] = {}
    fields: dict[tuple[str, str, str], dict[str, None]] = {}
    samples: dict[tuple[str, str, str], SourceRef] = {}
    for outcome in outcomes:
        for item in dict.fromkeys(outcome.unmapped):  # a code named twice in one outcome counts once
            key = (item.kind, item.system, item.code)
            counts[key] = counts.get(key, 0) + 1
            fields.setdefault(key, {})[item.field] = None
            samples.setdefault(key, outcome.source)
    order = {kind: index for index, kind in enumerate(KINDS)}
    found = [LocalCode(*key, count, tuple(fields[key]), samples[key]) for key, count in counts.items()]
    return sorted(found, key=lambda c: (-c.count, order.get(c.kind, len(KINDS)), c.system, c.code))


def table(codes: list[LocalCode]) -> str:
    """The codes as a table: count, kind, system, code, fields, sample source."""
    if not codes:
        return "No local codes missing from the mappings."
    rows = [("count", "kind", "system", "code", "field", "sample source")]
    rows += [
        (str(c.count), c.kind, c.system or "-", c.code or "(none sent)", ",".join(c.fields), source_text(c.sample))
        for c in codes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    out = []
    for row in rows:
        cells = [
            row[0].rjust(widths[0]),
            *(cell.ljust(width) for cell, width in zip(row[1:5], widths[1:], strict=True)),
        ]
        out.append("  ".join([*cells, row[5]]).rstrip())
    return "\n".join(out)
