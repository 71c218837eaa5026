"""One batch of archive records through the adapters and the service: what ``--jobs 1`` and each worker run.

The same code codes a batch whether the replay runs in one process or in ``--jobs N``
workers (``connector.cli.replay_jobs``): parse each record (an adapter reject is counted and
written), apply the ``--since/--until/--encounter`` filter, hand the batch to the service as
one transaction, and count what it could not code.
"""

from __future__ import annotations

import importlib
import json
from typing import TYPE_CHECKING, TextIO

from connector.cli.replay_options import ReplayOptions, keep
from connector.cli.replay_report import ReplayReport, add
from connector.cli.uncoded import report_uncoded

if TYPE_CHECKING:
    from connector.adapters.archive import Record
    from connector.adapters.errors import AdapterError
    from connector.model import ParsedRecord
    from connector.policy.model import Policy
    from connector.service import Service


def load_adapters(fhir: bool = False) -> None:
    """Import the adapters now, with the start-up, not in the first batch.

    Args:
        fhir: Also the FHIR adapter (fhir.resources and its warm-up, ~0.5 s), which ``dispatch``
            otherwise imports at the first FHIR record: for ``--jobs`` workers, forked after
            this, so that they inherit it instead of each importing it.
    """
    importlib.import_module("connector.adapters.dispatch")
    if fhir:
        importlib.import_module("connector.adapters.fhir")


def code_batch(
    batch: list[Record],
    service: Service,
    options: ReplayOptions,
    policy: Policy,
    report: ReplayReport,
    reject_file: TextIO | None,
) -> None:
    """Parse, filter and apply one batch of records (one service transaction), counting into ``report``."""
    from connector.adapters.dispatch import read_record
    from connector.adapters.errors import AdapterError

    inputs: list[tuple[Record, list[ParsedRecord]]] = []
    for record in batch:
        report.records += 1
        try:
            found = read_record(record, policy, options.zone, options.max_bytes, window=options.window)
        except AdapterError as error:
            reject(report, reject_file, record, record.position, error)
            continue
        for part in found.rejects:  # a Bundle entry rejected on its own: the rest is kept
            reject(report, reject_file, record, f"{record.position}#{part.part}", part.error)
        kept = [keep(i, options.since, options.until, options.encounter) for i in found.records]
        inputs.append((record, kept))
    outcome = service.handle_inputs([parsed for _, parsed in inputs])
    add(report.totals, report_uncoded(outcome, [r for r, _ in inputs], report.rejects, reject_file))


def close_all(service: Service, report: ReplayReport, reject_file: TextIO | None) -> None:
    """Close every open encounter of the service's state (end of input), counting into ``report``."""
    add(report.totals, report_uncoded(service.close(), [], report.rejects, reject_file))


def reject(
    report: ReplayReport, reject_file: TextIO | None, record: Record, position: str, error: AdapterError
) -> None:
    """Count a reject and write its line (source, position, code, detail) to the rejects file."""
    report.rejects[error.code] += 1
    if reject_file:
        entry = {"source": record.source, "position": position, "code": error.code, "detail": error.detail}
        reject_file.write(json.dumps(entry) + "\n")
