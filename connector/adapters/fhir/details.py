"""Reject details of the FHIR adapter: element paths of the specification's own names, error kinds.

A FHIR document is JSON whose object keys the sender chooses: an unknown element name can be
anything, a patient's name or MRN included. So a detail never repeats a key because it was
sent: a path part appears only when it is an element name of a fhir.resources model (the
vocabulary below, learned from the models the validator derives), list indexes are kept, and
an element the models do not know is reported as ``unknown element``. Error kinds are
pydantic/fhir_core codes; a ``value_error`` message is kept only when it is one of fhir_core's
fixed sentences (which name rules and model fields, never input values).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from pydantic import ValidationError

_known: set[str] = {"resourceType"}
MAX_MESSAGE: Final = 160
_SAFE_MESSAGES: Final = re.compile(
    r"[A-Za-z]{1,40} value string does not match spec regex\."
    r"|(?:DateTime|Instant|Time) must be timezone aware(?: if it has a time component)?\."
    r"|Instant value does not parse to datetime\."
    r"|Expect any of field value from this list \[(?:'[A-Za-z_]{1,64}'(?:, )?){1,32}\]\."
    r"|Any of one field value is expected from this list \[(?:'[A-Za-z_]{1,64}'(?:, )?){1,32}\], but got multiple!",
    re.ASCII,
)


def learn(names: Iterable[str]) -> None:
    """Add a model's element names (JSON names of its fields) to the vocabulary."""
    _known.update(names)


def is_element_name(name: object) -> bool:
    """Whether ``name`` is an element name of some FHIR model known to the validator."""
    return isinstance(name, str) and name in _known


def path(where: str, loc: Iterable[int | str]) -> str:
    """``where`` followed by the element names and list indexes of ``loc``; other parts are left out."""
    found = where
    for part in loc:
        if isinstance(part, int):
            found += f"[{part}]"
        elif part in _known:
            found += f".{part}"
    return found


def describe(where: str, error: ValidationError) -> str:
    """Element path and error kind of a validation error's first error: names only, never input values."""
    first = error.errors(include_url=False, include_context=False, include_input=False)[0]
    loc = tuple(first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden" and loc and not is_element_name(loc[-1]):
        loc, kind = loc[:-1], "unknown element (extra_forbidden)"
    elif kind == "value_error":
        message = first["msg"].removeprefix("Value error, ")[:MAX_MESSAGE]
        kind = message if _SAFE_MESSAGES.fullmatch(message) else kind
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{path(where, loc)}: {kind}{more}"
