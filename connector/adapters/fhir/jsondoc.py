r"""FHIR JSON text → Python values, refusing objects that repeat a key.

orjson (like most parsers) keeps the last of two equal keys, so ``"status": "completed"``
followed by ``"status": "not-done"`` would silently decide a charge. RFC 8259 says names
SHOULD be unique and leaves what such an object means to each reader, so it is rejected: a
repeat inside a Bundle entry rejects that entry (``fhir.bundle``), anywhere else the whole
document.

Cost: orjson parses; a repeat drops pairs, so the check compares the colons of the text with
those of the parsed value written back by orjson (outside strings, a colon of JSON text ends
a key; orjson never escapes one). Equal counts prove there is no repeat, unless the text
escapes a colon as ``\u003a`` (a parsed string may then hold colons the text does not show).
Only when the counts differ or that escape occurs is the text parsed a second time with the
standard library, keeping every pair, to find the repeat and its path. On the sample corpus
the check costs about one more orjson parse (3–9 µs per KB, 3–5% of reading a document), where
a standard-library parse keeping pairs would cost 4–5 times orjson's; a document without
repeats takes the second pass only when it escapes a colon.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import orjson

from connector.adapters.errors import InvalidFhir
from connector.adapters.fhir.details import is_element_name

ROOT_TYPES: Final = frozenset({"MedicationAdministration", "Encounter", "Bundle"})
_ESCAPED_COLONS: Final = (b"\\u003a", b"\\u003A")


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed JSON document and the Bundle entries that repeat a key.

    Attributes:
        value: The parsed JSON (orjson's reading).
        repeated: ``Bundle.entry`` index → reject detail, for each entry holding a repeated key.
    """

    value: object
    repeated: Mapping[int, str] = field(default_factory=dict)


class _Pairs(list[tuple[str, object]]):
    """A JSON object as the list of its pairs, in text order, repeats kept (second pass only)."""


def load(raw: bytes) -> Document:
    """Parse one JSON document.

    Raises:
        InvalidFhir: Not JSON, or a repeated key outside the entries of a Bundle (the detail
            is the path of element names and ``duplicate key``, never the key when it is not
            an element name).
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidFhir("not JSON") from None
    if not _may_repeat(raw, value):
        return Document(value)
    return Document(value, _repeats(raw))


def _may_repeat(raw: bytes, value: object) -> bool:
    if not isinstance(value, dict | list):
        return False
    if b"\\u003" in raw and (_ESCAPED_COLONS[0] in raw or _ESCAPED_COLONS[1] in raw):
        return True
    try:
        written = orjson.dumps(value)
    except orjson.JSONEncodeError:  # deeper than orjson writes: let the second pass decide
        return True
    return raw.count(b":") != written.count(b":")


def _repeats(raw: bytes) -> dict[int, str]:
    """Second pass: the first repeat per Bundle entry; raise on a repeat outside the entries."""
    try:
        tree = json.loads(raw, object_pairs_hook=_Pairs)
    except RecursionError:
        raise InvalidFhir("elements nested too deeply") from None
    except ValueError:  # orjson read it; the standard library reads a superset of JSON
        raise InvalidFhir("not JSON") from None
    root = "document"
    if isinstance(tree, _Pairs):
        named = [v for k, v in tree if k == "resourceType" and isinstance(v, str) and v in ROOT_TYPES]
        root = named[-1] if named else root
    entries: dict[int, str] = {}
    # (node, path, path frozen below an unknown key, entry index or -1)
    stack: list[tuple[object, str, bool, int]] = [(tree, root, False, -1)]
    while stack:
        node, where, frozen, entry = stack.pop()
        children: list[tuple[object, str, bool, int]] = []
        if isinstance(node, _Pairs):
            seen: set[str] = set()
            for key, child in node:
                known = not frozen and is_element_name(key)
                if key in seen:
                    detail = f"{where}.{key}: duplicate key" if known else f"{where}: duplicate key"
                    if entry < 0:
                        raise InvalidFhir(detail)
                    entries.setdefault(entry, detail)
                seen.add(key)
                if node is tree and root == "Bundle" and key == "entry" and isinstance(child, list):
                    children.extend((item, f"Bundle.entry[{i}]", False, i) for i, item in enumerate(child))
                else:
                    children.append((child, f"{where}.{key}" if known else where, not known, entry))
        elif isinstance(node, list):
            children.extend((item, where if frozen else f"{where}[{i}]", frozen, entry) for i, item in enumerate(node))
        stack.extend(reversed(children))
    return entries
