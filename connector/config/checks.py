"""Checks that need the file system: the files the settings name exist and load.

The model validates values; these checks look at what the values point to, so ``ivpush check``
can say "amqp.ca_file: no such file" before a deployment instead of at the first connection.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from urllib.parse import urlsplit

from connector.bus.errors import ConfigError
from connector.config.model import STATE_SCHEMES, Settings
from connector.config.sources import Problem

TLS_KEYS = (
    "amqp.ca_file",
    "amqp.cert_file",
    "amqp.key_file",
    "forward.ca_file",
    "forward.cert_file",
    "forward.key_file",
)


def file_problems(settings: Settings) -> list[Problem]:
    """Every named file or directory that is missing or unusable, and TLS material that does not load."""
    problems: list[Problem] = []
    for key in TLS_KEYS:
        section, leaf = key.split(".")
        path: Path | None = getattr(getattr(settings, section), leaf)
        if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
            problems.append(Problem(settings.source_of(key), key, f"{path}: no such readable file"))
    mappings = settings.coding.mappings
    if mappings is not None and not mappings.is_dir():
        source = settings.source_of("coding.mappings")
        problems.append(Problem(source, "coding.mappings", f"{mappings}: no such directory"))
    problems.extend(_state_problems(settings))
    if not problems:
        problems.extend(_tls_problems(settings))
    return problems


def _state_problems(settings: Settings) -> list[Problem]:
    spec = settings.state.spec
    source = settings.source_of("state.url")
    if urlsplit(spec).scheme in STATE_SCHEMES:
        if importlib.util.find_spec("psycopg") is None:
            return [Problem(source, "state.url", "PostgreSQL needs psycopg: pip install 'ivpush[postgres]'")]
        return []
    if spec == ":memory:":
        return []
    folder = Path(spec).expanduser().resolve().parent
    if not folder.is_dir():
        return [Problem(source, "state.url", f"the SQLite file's directory {folder} does not exist")]
    return []


def _tls_problems(settings: Settings) -> list[Problem]:
    amqp = settings.amqp
    if amqp.url is None or not (urlsplit(amqp.url.get_secret_value()).scheme == "amqps" or amqp.cert_file):
        return []
    try:
        settings.amqp_settings().ssl_context()
    except ConfigError as error:
        key = "amqp.cert_file" if amqp.cert_file else "amqp.ca_file"
        return [Problem(settings.source_of(key), key, str(error))]
    return []
