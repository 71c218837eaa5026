"""Reading mapping files: YAML with line numbers, and errors that name file and line."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

try:  # libyaml's parser (in PyYAML's wheels): ~8x faster, same resolver, constructors and marks
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # a PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

LINE = "__line__"
KEY_LINES = "__key_lines__"


class MappingError(ValueError):
    """One or more problems in mapping files, each as ``file:line: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _LineLoader(_SafeLoader):
    """SafeLoader that records the line of every mapping under ``__line__``.

    Every policy load (each command's start, each test) reads ~0.5 MB of YAML: with the pure
    Python parser that was ~0.3 s, most of a replay's start-up.
    """


def _mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping[LINE] = node.start_mark.line + 1
    mapping[KEY_LINES] = {
        key.value: key.start_mark.line + 1 for key, _ in node.value if isinstance(key, yaml.ScalarNode)
    }
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


@dataclass
class Problems:
    """Collects every problem before failing, so one run shows them all."""

    items: list[str] = field(default_factory=list)

    def add(self, where: str, message: str) -> None:
        """Record a problem at ``file:line`` (once: a setting inherited by several payers is one problem)."""
        text = f"{where}: {message}"
        if text not in self.items:
            self.items.append(text)

    def raise_if_any(self) -> None:
        """Raise ``MappingError`` listing every problem recorded."""
        if self.items:
            raise MappingError(self.items)


@dataclass(frozen=True)
class MappingFile:
    """A parsed mapping file with its metadata checked."""

    path: Path
    data: Mapping[str, Any]
    label: str

    def where(self, node: Mapping[str, Any] | None = None, key: str | None = None) -> str:
        """``file:line`` of a node, or of one of its keys (or of the file)."""
        line = node.get(LINE, 1) if isinstance(node, Mapping) else 1
        if key is not None and isinstance(node, Mapping):
            line = node.get(KEY_LINES, {}).get(key, line)
        return f"{self.label}:{line}"

    @property
    def effective_from(self) -> date:
        """Default effective date of the file's entries."""
        value = self.data.get("meta", {}).get("effective_from")
        return value if isinstance(value, date) else date(2000, 1, 1)

    def rows(self, key: str, problems: Problems) -> Iterator[Mapping[str, Any]]:
        """The list under ``key``, skipping (and reporting) anything not a mapping."""
        value = self.data.get(key) or []
        if not isinstance(value, list):
            problems.add(self.where(self.data), f"'{key}' must be a list")
            return
        for row in value:
            if isinstance(row, Mapping):
                yield row
            else:
                problems.add(self.where(self.data), f"an entry of '{key}' is not a mapping: {row!r}")


REQUIRED_META = ("name", "reviewed", "reference")


def display_name(path: Path, shipped_root: Path) -> str:
    """Shipped files as ``mappings/…`` (short and stable), site files by their own path."""
    try:
        return str(path.relative_to(shipped_root.parent))
    except ValueError:
        return str(path)


def read(path: Path, problems: Problems, shipped_root: Path) -> MappingFile | None:
    """Parse a mapping file and check its metadata (reviewed, dated, sourced)."""
    label = display_name(path, shipped_root)
    try:
        text = path.read_text(encoding="utf-8")
        tab = text.find("\t")
        if tab >= 0:  # libyaml takes some tabs PyYAML's own parser refuses: refused here, whichever reads
            problems.add(
                f"{label}:{text.count(chr(10), 0, tab) + 1}", "a tab character: indent and separate with spaces"
            )
            return None
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except UnicodeDecodeError:
        problems.add(f"{label}:1", "not UTF-8 text")
        return None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problems.add(f"{label}:{line}", f"not valid YAML: {getattr(error, 'problem', error)}")
        return None
    except OSError as error:
        problems.add(label, f"cannot read: {error.strerror}")
        return None
    if not isinstance(data, Mapping):
        problems.add(f"{label}:1", "must be a YAML mapping with 'meta' and entries")
        return None
    meta = data.get("meta")
    if not isinstance(meta, Mapping):
        problems.add(f"{label}:1", "missing 'meta' (name, reviewed, reference, effective_from)")
        return MappingFile(path, data, label)
    for key in REQUIRED_META:
        if not meta.get(key):
            problems.add(f"{label}:{meta.get(LINE, 1)}", f"meta.{key} is required")
    if "reviewed" in meta and not isinstance(meta["reviewed"], date):
        problems.add(f"{label}:{meta.get(LINE, 1)}", "meta.reviewed must be a date (YYYY-MM-DD)")
    return MappingFile(path, data, label)
