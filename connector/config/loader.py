"""Load the settings: merge the sources by precedence, validate, and name the source of each problem."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from connector.bus.errors import ConfigError
from connector.config.keys import keys, sections
from connector.config.model import Settings, with_sources
from connector.config.sources import (
    Layer,
    Problem,
    from_env,
    from_env_files,
    from_overrides,
    from_secrets_dir,
    from_toml,
)

CONFIG_ENV = "IVPUSH_CONFIG"
SECRETS_DIR_ENV = "IVPUSH_SECRETS_DIR"


class SettingsError(ConfigError):
    """The configuration has problems; ``problems`` lists every one (``source: key: message``)."""

    def __init__(self, problems: tuple[Problem, ...]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


def load(
    config_path: Path | None = None,
    overrides: Mapping[str, object] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    secrets_dir: Path | None = None,
) -> Settings:
    """The effective settings, or every problem at once.

    Args:
        config_path: TOML file (default: ``$IVPUSH_CONFIG``; none: no file).
        overrides: Dotted keys given explicitly (``{"amqp.prefetch": 50}``); ``None`` values are
            ignored, so a command can pass every option and leave unset ones ``None``.
        environ: The environment (default: ``os.environ``).
        secrets_dir: Directory of secret files (default: ``$IVPUSH_SECRETS_DIR``; none: not used).

    Raises:
        SettingsError: Any problem (an unknown key or variable, a bad value, an unreadable file).
        KeyError: ``overrides`` names a key the model does not have.
    """
    settings, problems = collect(config_path, overrides, environ=environ, secrets_dir=secrets_dir)
    if problems or settings is None:
        raise SettingsError(problems)
    return settings


def collect(
    config_path: Path | None = None,
    overrides: Mapping[str, object] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    secrets_dir: Path | None = None,
) -> tuple[Settings | None, tuple[Problem, ...]]:
    """Like :func:`load`, but return the problems (and the settings when the values validate).

    The settings come back even when a source had a problem of its own (an unknown variable),
    as long as every value is valid: ``ivpush check --show`` shows them beside the problems.
    """
    env = os.environ if environ is None else environ
    config_label = "--config"
    if config_path is None and env.get(CONFIG_ENV):
        config_path, config_label = Path(env[CONFIG_ENV]), f"env {CONFIG_ENV}"
    secrets_label = "secrets_dir"
    if secrets_dir is None and env.get(SECRETS_DIR_ENV):
        secrets_dir, secrets_label = Path(env[SECRETS_DIR_ENV]), f"env {SECRETS_DIR_ENV}"
    layers = [
        from_overrides(overrides or {}),
        from_env(env),
        from_env_files(env),
        from_secrets_dir(secrets_dir, secrets_label) if secrets_dir is not None else Layer(),
        from_toml(config_path, config_label) if config_path is not None else Layer(),
    ]
    merged: dict[str, tuple[object, str]] = {}
    for layer in layers:  # highest first: the first source holding a key wins
        for key, pair in layer.values.items():
            merged.setdefault(key, pair)
    problems = [problem for layer in layers for problem in layer.problems]
    sources = {key: label for key, (_, label) in merged.items()}
    try:
        settings = Settings.model_validate(_nest({key: value for key, (value, _) in merged.items()}))
    except ValidationError as error:
        return None, tuple(problems + _problems(error, sources))
    return with_sources(settings, sources), tuple(problems)


def _nest(flat: Mapping[str, object]) -> dict[str, object]:
    top: dict[str, object] = {}
    tables: dict[str, dict[str, object]] = {}
    for key, value in flat.items():
        section, _, leaf = key.rpartition(".")
        if section:
            tables.setdefault(section, {})[leaf] = value
        else:
            top[leaf] = value
    return {**top, **tables}


def _problems(error: ValidationError, sources: Mapping[str, str]) -> list[Problem]:
    """Each validation error as ``source: key: message``, saying what is allowed, never a secret."""
    found: list[Problem] = []
    for item in error.errors(include_url=False):
        loc = [str(part) for part in item["loc"]]
        key = ".".join(loc[:2]) if loc and loc[0] in sections() else (loc[0] if loc else "settings")
        message = item["msg"].removeprefix("Value error, ")
        spec = keys().get(key)
        given = key in sources
        if given and spec is not None and not spec.secret and item["type"] != "value_error":
            message += f" (got {item['input']!r})"
        if not given and spec is not None:
            message += f"; set it with {spec.env[0]}" + (f" or [{spec.section}] {spec.leaf}" if spec.section else "")
        found.append(Problem(sources.get(key, "default"), key, message))
    return found
