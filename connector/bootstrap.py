"""The composition root: the one place that builds real objects from settings."""

from __future__ import annotations

import os
from pathlib import Path

from connector.policy.loader import load_policy
from connector.policy.model import Policy

MAPPINGS_ENV = "IVPUSH_MAPPINGS"


def policy_from_settings(mappings_dir: Path | None = None) -> Policy:
    """Load the shipped mappings, overlaid by a site directory.

    Args:
        mappings_dir: The site's mappings directory; defaults to ``$IVPUSH_MAPPINGS``.
    """
    if mappings_dir is None and os.environ.get(MAPPINGS_ENV):
        mappings_dir = Path(os.environ[MAPPINGS_ENV])
    return load_policy(mappings_dir)
