"""One settings model for the connector: command line > environment > secret files > TOML > defaults.

``load(config_path, overrides)`` returns a validated, frozen :class:`Settings` that knows the source
of every key, or raises :class:`SettingsError` listing every problem as ``source: key: message``.
Imported by the CLI and bootstrap only (it sits at their level; it imports nothing above ``bus``).
"""

from connector.config.keys import Key, keys
from connector.config.loader import CONFIG_ENV, SECRETS_DIR_ENV, SettingsError, collect, load
from connector.config.model import Settings
from connector.config.redact import redact_url
from connector.config.sources import Problem

__all__ = [
    "CONFIG_ENV",
    "SECRETS_DIR_ENV",
    "Key",
    "Problem",
    "Settings",
    "SettingsError",
    "collect",
    "keys",
    "load",
    "redact_url",
]
