"""The key table of ``docs/configuration.md``, generated from the model.

``python -m connector.config.doc docs/configuration.md`` rewrites the table between the
``<!-- keys:start -->`` and ``<!-- keys:end -->`` markers; a unit test fails when they differ.
"""

from __future__ import annotations

import sys
import types
import typing
from enum import Enum
from pathlib import Path

import annotated_types
from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from connector.bus.topology import FORMATS
from connector.config.keys import Key, keys
from connector.config.redact import display

START = "<!-- keys:start -->"
END = "<!-- keys:end -->"
_BOUNDS = ((annotated_types.Ge, "≥"), (annotated_types.Gt, ">"), (annotated_types.Le, "≤"), (annotated_types.Lt, "<"))


def key_table() -> str:
    """The Markdown table: key, environment variables, default, allowed values, meaning."""
    rows = [
        "| Key | Environment variables | Default | Allowed | Meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    rows.extend(_row(key) for key in keys().values())
    return "\n".join(rows) + "\n"


def replace_table(document: str) -> str:
    """The document with the table between the markers regenerated.

    Raises:
        ValueError: The markers are missing.
    """
    head, start, rest = document.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"the document needs the markers {START} and {END}")
    return f"{head}{START}\n{key_table()}{END}{tail}"


def _row(key: Key) -> str:
    env = ", ".join(f"`{name}`" for name in key.env)
    if key.file_env:
        env += "; file: " + ", ".join(f"`{name}`" for name in key.file_env)
    name = f"`[{key.section}] {key.leaf}`" if key.section else f"`{key.name}` (top level)"
    cells = (name, env, _default(key.field), _allowed(key.field), (key.field.description or "").replace("|", "\\|"))
    return "| " + " | ".join(cells) + " |"


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined:
        return "—"
    value = display(field.default)
    if value in ("(not set)", ""):
        return "not set" if value else "empty"
    return f"`{value}`"


def _allowed(field: FieldInfo) -> str:
    base = _kind(field.annotation)
    bounds = [
        f"{sign} {getattr(item, type(item).__name__.lower())}"
        for item in field.metadata
        for kind, sign in _BOUNDS
        if isinstance(item, kind)
    ]
    patterns = [item.pattern for item in field.metadata if getattr(item, "pattern", None)]
    parts = [base, *bounds, *(f"matching `{p}`" for p in patterns)]
    return ", ".join(parts)


def _kind(annotation: object) -> str:
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _kind(args[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{value}`" for value in args)
    if origin is tuple:  # the one list-valued key: coding.formats
        return "list of " + ", ".join(f"`{name}`" for name in FORMATS)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of " + ", ".join(f"`{member.value}`" for member in annotation)
    names = {bool: "`true`/`false`", int: "integer", float: "number", str: "text", Path: "path", SecretStr: "secret"}
    if isinstance(annotation, type) and issubclass(annotation, SecretStr):
        return "secret"
    return names.get(annotation, str(annotation)) if isinstance(annotation, type) else str(annotation)


def main(argv: list[str]) -> int:
    """Rewrite the table of the named document in place."""
    if len(argv) != 1:
        sys.stderr.write("usage: python -m connector.config.doc docs/configuration.md\n")
        return 2
    path = Path(argv[0])
    path.write_text(replace_table(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
