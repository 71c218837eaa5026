"""The composition root: the one place that builds real objects from settings."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import tzinfo
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connector.emitters import chargeitem, dft, json_charge
from connector.emitters.dft import DftSettings
from connector.policy.loader import load_policy
from connector.policy.model import Policy
from connector.service import Renderer

MAPPINGS_ENV = "IVPUSH_MAPPINGS"
ZONE_ENV = "IVPUSH_TIMEZONE"
FORMATS = ("json", "dft", "chargeitem")


def policy_from_settings(mappings_dir: Path | None = None) -> Policy:
    """Load the shipped mappings, overlaid by a site directory.

    Args:
        mappings_dir: The site's mappings directory; defaults to ``$IVPUSH_MAPPINGS``.
    """
    if mappings_dir is None and os.environ.get(MAPPINGS_ENV):
        mappings_dir = Path(os.environ[MAPPINGS_ENV])
    return load_policy(mappings_dir)


def renderers(names: Iterable[str], dft_settings: DftSettings | None = None) -> dict[str, Renderer]:
    """The output renderers for the named formats (``json``, ``dft``, ``chargeitem``).

    Raises:
        KeyError: An unknown format name.
    """
    available: dict[str, Renderer] = {
        "json": json_charge.render,
        "dft": partial(dft.render, settings=dft_settings or dft.DftSettings()),
        "chargeitem": chargeitem.render,
    }
    return {name: available[name] for name in names}


def local_zone(name: str | None) -> tzinfo:
    """The site's zone for HL7 times sent without an offset (``--zone``/``IVPUSH_TIMEZONE``).

    Raises:
        ValueError: An unknown zone name.
    """
    name = name or os.environ.get(ZONE_ENV) or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone '{name}'") from error
