"""The settings keys as data: dotted name, field, environment variable names, secret or not.

Derived from the model so that the loader, ``ivpush check`` and the documentation's key table
can never list a key the model does not have (or miss one it has).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from connector.config.model import Settings
from connector.config.section import Section

PREFIX = "IVPUSH_"

# The variable names used before this model existed; they keep working (the canonical names are
# IVPUSH_<SECTION>__<KEY>). A key's secret file variable is any of these names plus ``_FILE``.
ENV_ALIASES: dict[str, tuple[str, ...]] = {
    "amqp.url": ("IVPUSH_AMQP_URL",),
    "amqp.ca_file": ("IVPUSH_AMQP_CA_FILE",),
    "amqp.cert_file": ("IVPUSH_AMQP_CERT_FILE",),
    "amqp.key_file": ("IVPUSH_AMQP_KEY_FILE",),
    "amqp.server_hostname": ("IVPUSH_AMQP_SERVER_HOSTNAME",),
    "amqp.prefix": ("IVPUSH_TOPOLOGY_PREFIX",),
    "state.url": ("IVPUSH_STATE",),
    "coding.zone": ("IVPUSH_TIMEZONE",),
    "coding.mappings": ("IVPUSH_MAPPINGS",),
    "metrics.port": ("IVPUSH_METRICS_PORT",),
    "metrics.host": ("IVPUSH_METRICS_HOST",),
    "logging.level": ("IVPUSH_LOG_LEVEL",),
    "logging.format": ("IVPUSH_LOG_FORMAT",),
}


@dataclass(frozen=True)
class Key:
    """One setting.

    Attributes:
        name: Dotted name (``amqp.prefetch``; top-level keys have no dot).
        field: The model field (type, default, constraints, description).
        env: Environment variable names, the canonical one first, then the older aliases.
        secret: The value is a secret: redacted for display, also read from ``<VAR>_FILE`` files.
    """

    name: str
    field: FieldInfo
    env: tuple[str, ...]
    secret: bool

    @property
    def section(self) -> str | None:
        """The TOML table holding the key (``None``: top level)."""
        return self.name.split(".", 1)[0] if "." in self.name else None

    @property
    def leaf(self) -> str:
        """The key's name inside its table."""
        return self.name.rsplit(".", 1)[-1]

    @property
    def file_env(self) -> tuple[str, ...]:
        """Variables naming a file that holds the value (secrets only)."""
        return tuple(f"{name}_FILE" for name in self.env) if self.secret else ()


def canonical_env(name: str) -> str:
    """``amqp.prefetch`` → ``IVPUSH_AMQP__PREFETCH``."""
    return PREFIX + name.upper().replace(".", "__")


@cache
def keys() -> dict[str, Key]:
    """Every key, in model order."""
    found: dict[str, Key] = {}
    for name, field in Settings.model_fields.items():
        section = _section_type(field)
        if section is None:
            found[name] = _key(name, field)
            continue
        for leaf, leaf_field in section.model_fields.items():
            dotted = f"{name}.{leaf}"
            found[dotted] = _key(dotted, leaf_field)
    return found


@cache
def sections() -> dict[str, tuple[str, ...]]:
    """Each TOML table with its keys."""
    tables: dict[str, list[str]] = {}
    for key in keys().values():
        if key.section is not None:
            tables.setdefault(key.section, []).append(key.leaf)
    return {name: tuple(leaves) for name, leaves in tables.items()}


def _key(name: str, field: FieldInfo) -> Key:
    secret = _mentions(field.annotation, SecretStr)
    return Key(name, field, (canonical_env(name), *ENV_ALIASES.get(name, ())), secret)


def _section_type(field: FieldInfo) -> type[BaseModel] | None:
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return annotation
    return None


def _mentions(annotation: object, wanted: type) -> bool:
    if annotation is wanted or (isinstance(annotation, type) and issubclass(annotation, wanted)):
        return True
    return any(_mentions(arg, wanted) for arg in getattr(annotation, "__args__", ()))
