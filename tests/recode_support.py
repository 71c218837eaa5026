"""What the recode tests share: a site overlay of the default payer policy, and the net lines of charge messages."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

# A site overlay of the default payer policy: an MUE-like cap on 96375 (one unit per line) and a
# 60-minute repeat interval, as a quarterly policy change would bring.
SITE_DEFAULT = """meta:
  name: default
  version: {version}
  reviewed: 2026-12-01
  reference: test overlay
  effective_from: 2020-01-01
settings:
  same_drug_min_interval_minutes: 60
  mue:
    - {{code: "96375", facility_units: 1, professional_units: 1, reference: "test cap (CMS-like MUE)"}}
"""


def write_site(folder: Path, version: str) -> Path:
    """The site directory ``folder`` (made if missing) with ``payers/default.yaml``: the overlay as ``version``."""
    (folder / "payers").mkdir(parents=True)
    (folder / "payers" / "default.yaml").write_text(SITE_DEFAULT.format(version=version), encoding="utf-8")
    return folder


def net(messages: Iterable[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Encounter → line id → line still charged, over JSON charge messages in order (as ``service.net_lines``)."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for message in messages:
        ref = message["encounter"]
        current = found.setdefault(f"{ref['assigning_authority']}|{ref['id']}", {})
        for line in message["lines"]:
            if line["action"] == "charge":
                current[line["line_id"]] = line
            else:
                current.pop(line["line_id"], None)
    return {key: lines for key, lines in found.items() if lines}
