"""Where settings come from: each source yields dotted keys with values, labelled for messages.

Sources, highest first: the command line (overrides), environment variables, secret files named by
``<VAR>_FILE`` variables, a secrets directory, the TOML file. A label says where a value was read
(``env IVPUSH_AMQP__PREFETCH``, ``/etc/ivpush.toml``, ``file /run/secrets/url (env IVPUSH_AMQP_URL_FILE)``)
so an error can name it; a secret's value is never part of a label or a problem.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from connector.config.keys import PREFIX, Key, keys, sections

COMMAND_LINE = "command line"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration, printed as ``source: key: message``."""

    source: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.key}: {self.message}"


@dataclass
class Layer:
    """What one source holds: dotted key → (value, label), and what was wrong reading it."""

    values: dict[str, tuple[object, str]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def from_overrides(overrides: Mapping[str, object]) -> Layer:
    """Values given explicitly (the command line's options); ``None`` means not given.

    Raises:
        KeyError: A key the model does not have (a programming error, not a user's).
    """
    layer = Layer()
    for name, value in overrides.items():
        if name not in keys():
            raise KeyError(f"unknown settings key '{name}' (known: {', '.join(keys())})")
        if value is not None:
            layer.values[name] = (value, COMMAND_LINE)
    return layer


def from_env(environ: Mapping[str, str]) -> Layer:
    """``IVPUSH_<SECTION>__<KEY>`` variables and the older names; empty values count as unset."""
    layer = Layer()
    known: set[str] = set()
    for key in keys().values():
        known.update(key.env, key.file_env)
        given = [(name, environ[name]) for name in key.env if environ.get(name)]
        if not given:
            continue
        first_name, first_value = given[0]
        layer.values[key.name] = (first_value, f"env {first_name}")
        for name, value in given[1:]:
            if value != first_value:
                message = f"conflicts with {first_name} (which wins); set only one of {', '.join(key.env)}"
                layer.problems.append(Problem(f"env {name}", key.name, message))
    for name in sorted(environ):
        if name.startswith(PREFIX) and "__" in name and name not in known:
            layer.problems.append(Problem(f"env {name}", _guess(name), _unknown_variable(name)))
    return layer


def from_env_files(environ: Mapping[str, str]) -> Layer:
    """Secrets read from the files that ``<VAR>_FILE`` variables name (Docker/Kubernetes secrets)."""
    layer = Layer()
    for key in keys().values():
        for name in key.file_env:
            path = environ.get(name)
            if path:
                _read_secret(layer, key, Path(path), f"file {path} (env {name})", f"env {name}")
                break
    return layer


def from_secrets_dir(directory: Path, label: str) -> Layer:
    """Secrets from files in a directory, each named like one of its key's variables (any case).

    Args:
        directory: The directory (``/run/secrets``).
        label: Where the directory was named (for a problem with the directory itself).
    """
    layer = Layer()
    if not directory.is_dir():
        layer.problems.append(Problem(label, "secrets_dir", f"{directory} is not a directory"))
        return layer
    for key in keys().values():
        if not key.secret:
            continue
        for name in key.env:
            found = next((directory / n for n in (name, name.lower()) if (directory / n).is_file()), None)
            if found is not None:
                _read_secret(layer, key, found, f"secret file {found}", f"secret file {found}")
                break
    return layer


def from_toml(path: Path, label: str) -> Layer:
    """The TOML file: a table per section (``[amqp]``, ``[state]``, ...), top-level keys beside them.

    Args:
        path: The file.
        label: Where the file was named (``--config``, ``env IVPUSH_CONFIG``), for a file-level problem.
    """
    layer = Layer()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        layer.problems.append(Problem(label, "config", f"cannot read {path}: {error.strerror}"))
        return layer
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        layer.problems.append(Problem(str(path), "config", f"not valid TOML: {error}"))
        return layer
    tables = sections()
    for name, value in document.items():
        if name in tables:
            if not isinstance(value, dict):
                layer.problems.append(Problem(str(path), name, f"must be a table [{name}], not a value"))
                continue
            for leaf, leaf_value in value.items():
                if leaf in tables[name]:
                    layer.values[f"{name}.{leaf}"] = (leaf_value, str(path))
                else:
                    message = f"unknown key; [{name}] allows: {', '.join(tables[name])}"
                    layer.problems.append(Problem(str(path), f"{name}.{leaf}", message))
        elif name in keys():
            layer.values[name] = (value, str(path))
        else:
            top = [key for key in keys() if "." not in key]
            allowed = f"tables {', '.join(f'[{t}]' for t in tables)} and keys {', '.join(top)}"
            layer.problems.append(Problem(str(path), name, f"unknown; allowed: {allowed}"))
    return layer


def _read_secret(layer: Layer, key: Key, path: Path, label: str, problem_source: str) -> None:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        layer.problems.append(Problem(problem_source, key.name, f"cannot read {path}: {reason}"))
        return
    if not value:
        layer.problems.append(Problem(problem_source, key.name, f"{path} is empty"))
        return
    layer.values[key.name] = (value, label)


def _guess(variable: str) -> str:
    """The dotted key an unknown ``IVPUSH_A__B`` variable was probably meant for."""
    return variable.removeprefix(PREFIX).lower().replace("__", ".")


def _unknown_variable(variable: str) -> str:
    section = variable.removeprefix(PREFIX).split("__", 1)[0].lower()
    tables = sections()
    if section in tables:
        return f"unknown setting; [{section}] has: {', '.join(tables[section])}"
    return f"unknown section '{section}'; sections: {', '.join(tables)}"
