"""The composition root: the one place that builds real objects from settings.

Imported by every command, so it imports what it builds (emitters, policy loader, stores) only
when it builds it: ``ivpush <command> --help`` pays for none of them (issue #15).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from datetime import tzinfo
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from connector.emitters.chargeitem import ChargeItemSettings
    from connector.emitters.dft import DftSettings
    from connector.policy.model import Policy
    from connector.service import Renderer
    from connector.store.base import Store

MAPPINGS_ENV = "IVPUSH_MAPPINGS"
ZONE_ENV = "IVPUSH_TIMEZONE"
FORMATS = ("json", "dft", "chargeitem")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")
_PARAM_PASSWORD = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)


def policy_from_settings(mappings_dir: Path | None = None) -> Policy:
    """Load the shipped mappings, overlaid by a site directory.

    Args:
        mappings_dir: The site's mappings directory; defaults to ``$IVPUSH_MAPPINGS``.
    """
    if mappings_dir is None and os.environ.get(MAPPINGS_ENV):
        mappings_dir = Path(os.environ[MAPPINGS_ENV])
    from connector.policy.loader import load_policy  # noqa: PLC0415 - start-up: yaml and the loader on use

    return load_policy(mappings_dir)


def renderers(
    names: Iterable[str],
    dft_settings: DftSettings | None = None,
    chargeitem_settings: ChargeItemSettings | None = None,
) -> dict[str, Renderer]:
    """The output renderers for the named formats (``json``, ``dft``, ``chargeitem``), with the site's settings.

    Raises:
        KeyError: An unknown format name.
    """
    from connector.emitters import chargeitem, dft, json_charge  # noqa: PLC0415 - start-up: fhir.resources on use

    available: dict[str, Renderer] = {
        "json": json_charge.render,
        "dft": partial(dft.render, settings=dft_settings or dft.DEFAULT_SETTINGS),
        "chargeitem": partial(chargeitem.render, settings=chargeitem_settings or chargeitem.DEFAULT_SETTINGS),
    }
    return {name: available[name] for name in names}


IDENTITY_KEY_ENV = "IVPUSH_IDENTITY_KEY"


def identity_key() -> bytes:
    """The site's secret for ``patient_day`` encounter keys (``IVPUSH_IDENTITY_KEY``; empty: none).

    Keep it stable: a new key gives the same patient's day a new encounter key.
    """
    return os.environ.get(IDENTITY_KEY_ENV, "").encode()


def local_zone(name: str | None) -> tzinfo | None:
    """The site's default zone (``--zone``/``coding.zone``/``IVPUSH_TIMEZONE``); None when none is set.

    With a zone, every instant is dated in it (times with an offset are moved to it; local times
    are read in it). Without one the zone is unknown: coding-rules.md §6 lets the sent offset
    decide the date, and local times without an offset are read as UTC.

    Raises:
        ValueError: An unknown zone name.
    """
    name = name or os.environ.get(ZONE_ENV)
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone '{name}'") from error


class StoreOpenError(RuntimeError):
    """The state store named by ``--state``/``IVPUSH_STATE`` cannot be opened (the message says why)."""


def store_label(spec: str) -> str:
    """The store spec for logs and messages, any password masked."""
    return _PARAM_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", spec))


def open_store(spec: str) -> Store:
    """The state store a spec names: ``postgresql://``/``postgres://`` URL, ``:memory:``, or a SQLite path.

    The PostgreSQL store is imported only for a URL, so the ``postgres`` extra (psycopg) stays
    optional.

    Raises:
        StoreOpenError: psycopg is missing, the server is unreachable, the schema is newer than
            this code, or the SQLite file cannot be opened.
    """
    if spec.startswith(POSTGRES_SCHEMES):
        try:
            from connector.store.postgres import PostgresStore  # noqa: PLC0415 - the optional extra
        except ImportError as error:
            raise StoreOpenError(
                f"a PostgreSQL state ({store_label(spec)}) needs psycopg: pip install 'ivpush[postgres]'"
            ) from error
        try:
            return PostgresStore(spec)
        except (OSError, RuntimeError) as error:  # StoreUnavailable, SchemaTooNew
            raise StoreOpenError(f"cannot open the PostgreSQL state {store_label(spec)}: {error}") from error
    if spec == ":memory:":
        from connector.store.memory import MemoryStore  # noqa: PLC0415 - start-up: the stores on use

        return MemoryStore()
    import sqlite3  # noqa: PLC0415 - start-up

    from connector.store.sqlite import SqliteStore  # noqa: PLC0415 - start-up

    try:
        return SqliteStore(spec)
    except sqlite3.Error as error:
        raise StoreOpenError(f"cannot open the SQLite state file {spec}: {error}") from error
