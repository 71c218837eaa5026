"""Replay's reject lines for what the service could not code or render (``coding_failed``, ``render_failed``).

An archive record whose encounter cannot be coded or rendered is left out of its batch
(``Outcome.rejected``): its line names the record (``source``, ``position``) like an adapter
reject. An encounter that cannot be closed at the end of the input (``Outcome.failed``) is not
charged: its line names the encounter key (an id, as in the charge messages) instead. Details
name the step and the exception class, never a value.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from connector.adapters.archive import Record
    from connector.service import Outcome


def report_uncoded(outcome: Outcome, records: list[Record], rejects: Counter[str], out: TextIO | None) -> Outcome:
    """Count (and write to ``out``) a reject per input left out and per encounter not closed; ``outcome``."""
    entries: list[dict[str, str | None]] = [
        {"source": records[index].source, "position": records[index].position, "code": f.code, "detail": f.detail}
        for index, f in sorted(outcome.rejected.items())
    ]
    entries += [
        {"source": None, "position": None, "encounter": key, "code": f.code, "detail": f.detail}
        for key, f in sorted(outcome.failed.items())
    ]
    for entry in entries:
        rejects[str(entry["code"])] += 1
        if out is not None:
            out.write(json.dumps(entry) + "\n")
    return outcome
