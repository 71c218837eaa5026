"""The PHI log scan: every patient value of the sample inputs, searched for in log files.

What counts as PHI here (the values a leak would copy from an input into a log line):

- HL7 v2 ``PID``: identifiers (PID-2, PID-3 and PID-4 CX.1 of every repetition, PID-19 SSN,
  PID-20 licence), names (PID-5 patient, PID-6 mother's maiden name, PID-9 alias: family,
  given and middle of every repetition), birth date (PID-7, as ``YYYYMMDD`` and
  ``YYYY-MM-DD``), address (PID-11 street, other designation, ZIP), phone and e-mail (PID-13,
  PID-14); ``NTE-3`` comments and the text values of ``OBX-5`` (types TX, FT, ST): free text.
- FHIR: ``Patient``/``RelatedPerson``/``Person`` names (family, given, text), identifiers,
  ``birthDate`` (both forms), telecom values, address lines and postal codes; anywhere in a
  resource, the ``display`` of a ``subject``/``patient`` reference (a patient's name, also
  split at the comma) and its identifier, and every ``note`` text (free text).

Not scanned: visit and account numbers (PV1-19, PID-18, Encounter ids): they are the
encounter keys the connector is allowed to log as ids; drug, route and facility names (coding
data, not about the patient); staff names.

The filter drops values that would match innocent log text and prove nothing: shorter than
4 characters (``F``, ``MR``, ``Jo``; 2 for non-ASCII text such as the Japanese ``患者``), only
digits and shorter than 6 (``0001`` is any count), and
generic words that are placeholders in test data rather than names (``TEST``, ``PATIENT``,
``DEMO``, ``JUNIOR`` …; see ``GENERIC``). A value matches case-insensitively and only as a whole
token (not inside a longer word or a hex id), in its raw form and JSON-escaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIRS = (REPO / "tests" / "samples" / "hl7", REPO / "tests" / "samples" / "fhir", REPO / "examples" / "feeds")
GENERIC = frozenset(
    {"test", "testing", "patient", "demo", "sample", "unknown", "none", "null", "male", "female", "junior",
     "senior", "home", "work", "mobile", "phone", "email", "official", "usual", "temp", "nickname"}
)  # fmt: skip
MIN_LENGTH = 4
MIN_LENGTH_NON_ASCII = 2
MIN_DIGITS = 6
PERSON_TYPES = frozenset({"Patient", "RelatedPerson", "Person"})
TEXT_OBX = frozenset({"TX", "FT", "ST"})


@dataclass(frozen=True)
class PhiValue:
    """One PHI value found in a sample: what, which kind and where."""

    text: str
    kind: str
    source: str


@dataclass(frozen=True)
class Hit:
    """A PHI value found in a log."""

    log: str
    line: int
    value: PhiValue

    def __str__(self) -> str:
        return f"{self.log}:{self.line}: {self.value.kind} '{self.value.text}' (from {self.value.source})"


def meaningful(text: str) -> bool:
    """Long and specific enough that finding it in a log means a leak (see the module docstring)."""
    text = text.strip()
    # the logs are ASCII: two CJK characters of a name there are a leak
    shortest = MIN_LENGTH if text.isascii() else MIN_LENGTH_NON_ASCII
    if len(text) < shortest or text.lower() in GENERIC:
        return False
    return not (text.isdigit() and len(text) < MIN_DIGITS)


# --- HL7 v2 -----------------------------------------------------------------------------------

_ESCAPES = {"F": "|", "S": "^", "T": "&", "R": "~", "E": "\\"}


def _unescape(text: str) -> str:
    return re.sub(r"\\([FSTRE])\\", lambda m: _ESCAPES[m.group(1)], text)


def hl7_values(text: str, source: str) -> list[PhiValue]:
    """PHI values of every PID, NTE and text OBX segment in HL7 v2 text (any framing)."""
    found: list[PhiValue] = []
    separators = "|^~\\&"
    for raw in re.split(r"[\r\n\x0b\x1c]+", text):
        segment = raw.lstrip()
        if segment[:3] in ("MSH", "FHS", "BHS") and len(segment) > 8:
            declared = segment[3:8]
            # a message with clashing delimiters is rejected by the connector, but its PID still
            # holds PHI: read it with the standard ones
            separators = declared if len(set(declared)) == len(declared) else "|^~\\&"
        fields = segment.split(separators[0])
        name = fields[0]
        if name == "PID":
            found.extend(_pid_values(fields, separators, source))
        elif name == "NTE" and len(fields) > 3:
            found.extend(PhiValue(_unescape(t), "free text (NTE-3)", source) for t in fields[3].split(separators[2]))
        elif name == "OBX" and len(fields) > 5 and fields[2] in TEXT_OBX:
            found.extend(PhiValue(_unescape(t), "free text (OBX-5)", source) for t in fields[5].split(separators[2]))
    return found


def _components(field: str, separators: str) -> Iterator[list[str]]:
    component, repetition, subcomponent = separators[1], separators[2], separators[4]
    for rep in field.split(repetition):
        yield [_unescape(c.split(subcomponent)[0]) for c in rep.split(component)]


def _pid_values(fields: list[str], separators: str, source: str) -> list[PhiValue]:
    def field(n: int) -> str:
        return fields[n] if len(fields) > n else ""

    out: list[PhiValue] = []
    for n, kind in ((2, "patient id (PID-2)"), (3, "MRN (PID-3)"), (4, "alternate id (PID-4)"), (19, "SSN (PID-19)")):
        out.extend(PhiValue(c[0], kind, source) for c in _components(field(n), separators) if c and c[0])
    out.extend(PhiValue(c[0], "licence (PID-20)", source) for c in _components(field(20), separators) if c)
    for n, kind in ((5, "name (PID-5)"), (6, "mother's maiden name (PID-6)"), (9, "alias (PID-9)")):
        for parts in _components(field(n), separators):
            out.extend(PhiValue(part, kind, source) for part in parts[:3] if part)
    birth = re.match(r"\d{8}", field(7))
    if birth:
        out.extend(PhiValue(t, "birth date (PID-7)", source) for t in _date_forms(birth.group()))
    for parts in _components(field(11), separators):
        out.extend(PhiValue(parts[i], "address (PID-11)", source) for i in (0, 1, 4) if len(parts) > i and parts[i])
    for n in (13, 14):
        for parts in _components(field(n), separators):
            out.extend(PhiValue(parts[i], f"phone/e-mail (PID-{n})", source) for i in (0, 3) if len(parts) > i)
    return out


def _date_forms(compact: str) -> list[str]:
    return [compact, f"{compact[:4]}-{compact[4:6]}-{compact[6:8]}"]


# --- FHIR -------------------------------------------------------------------------------------


def fhir_values(document: Any, source: str) -> list[PhiValue]:
    """PHI values anywhere in a FHIR JSON document (resources, Bundles, contained resources)."""
    found: list[PhiValue] = []
    _walk(document, source, found)
    return found


def _walk(node: Any, source: str, found: list[PhiValue]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, source, found)
        return
    if not isinstance(node, dict):
        return
    if node.get("resourceType") in PERSON_TYPES:
        found.extend(_person_values(node, source))
    for key in ("subject", "patient"):
        reference = node.get(key)
        if isinstance(reference, dict):
            display = reference.get("display")
            if isinstance(display, str):
                found.append(PhiValue(display, f"patient name ({key}.display)", source))
                parts = re.split(r"[,\s]+", display)
                found.extend(PhiValue(p, f"patient name ({key}.display)", source) for p in parts if p)
            value = (reference.get("identifier") or {}).get("value")
            if isinstance(value, str):
                found.append(PhiValue(value, f"patient identifier ({key}.identifier)", source))
    for note in node.get("note") or []:
        if isinstance(note, dict) and isinstance(note.get("text"), str):
            found.append(PhiValue(note["text"], "free text (note)", source))
    for value in node.values():
        _walk(value, source, found)


def _person_values(person: dict[str, Any], source: str) -> list[PhiValue]:
    kind = person["resourceType"]
    out: list[PhiValue] = []
    for name in person.get("name") or []:
        parts = [name.get("family"), name.get("text"), *(name.get("given") or [])]
        out.extend(PhiValue(p, f"{kind} name", source) for p in parts if isinstance(p, str))
    for ident in person.get("identifier") or []:
        if isinstance(ident.get("value"), str):
            out.append(PhiValue(ident["value"], f"{kind} identifier", source))
    birth = person.get("birthDate")
    if isinstance(birth, str) and len(birth) >= 10:
        out.extend(PhiValue(t, f"{kind} birthDate", source) for t in (birth[:10], birth[:10].replace("-", "")))
    for telecom in person.get("telecom") or []:
        if isinstance(telecom.get("value"), str):
            out.append(PhiValue(telecom["value"], f"{kind} telecom", source))
    for address in person.get("address") or []:
        parts = [*(address.get("line") or []), address.get("postalCode")]
        out.extend(PhiValue(p, f"{kind} address", source) for p in parts if isinstance(p, str))
    return out


# --- samples and logs -------------------------------------------------------------------------


def sample_files() -> list[Path]:
    """Every sample input: tests/samples/hl7, tests/samples/fhir (with paired/) and examples/feeds."""
    return sorted(path for folder in SAMPLE_DIRS for path in folder.rglob("*") if path.is_file())


def values_of_bytes(data: bytes, source: str) -> list[PhiValue]:
    """PHI values of one input (FHIR JSON or NDJSON, else HL7 v2)."""
    text = data.decode("utf-8", "replace").lstrip("\ufeff")
    if text.lstrip()[:1] in ("{", "["):
        found: list[PhiValue] = []
        for chunk in [text] if text.lstrip()[:1] == "[" or "\n{" not in text.strip() else text.splitlines():
            try:
                found.extend(fhir_values(json.loads(chunk), source))
            except json.JSONDecodeError:
                continue
        return found
    return hl7_values(text, source)


def sample_phi(paths: Iterable[Path], extra: Iterable[tuple[bytes, str]] = ()) -> dict[str, PhiValue]:
    """Meaningful PHI values (lower-cased text → first occurrence) of files and extra inputs."""
    values: dict[str, PhiValue] = {}
    inputs = [(path.read_bytes(), str(path)) for path in paths]
    for data, source in [*inputs, *extra]:
        for value in values_of_bytes(data, source):
            text = value.text.strip()
            if meaningful(text):
                values.setdefault(text.lower(), PhiValue(text, value.kind, value.source))
    return values


def _pattern(values: dict[str, PhiValue]) -> re.Pattern[str]:
    forms: set[str] = set()
    for value in values.values():
        forms.add(re.escape(value.text))
        escaped = json.dumps(value.text)[1:-1]
        if escaped != value.text:
            forms.add(re.escape(escaped))
    alternatives = "|".join(sorted(forms, key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", re.IGNORECASE)


def scan(logs: dict[str, str], values: dict[str, PhiValue]) -> list[Hit]:
    """Every occurrence of a PHI value in the logs (name → text)."""
    if not values:
        raise ValueError("no PHI values to scan for: the scan would pass whatever the logs hold")
    pattern = _pattern(values)
    by_form = {**{v.text.lower(): v for v in values.values()}}
    by_form.update({json.dumps(v.text)[1:-1].lower(): v for v in values.values()})
    hits: list[Hit] = []
    for name, text in logs.items():
        for number, line in enumerate(text.splitlines(), 1):
            for match in pattern.finditer(line):
                hits.append(Hit(name, number, by_form[match.group().lower()]))
    return hits


# --- the hostile corpus (tests/hostile) -----------------------------------------------------------

HOSTILE = REPO / "tests" / "hostile"


def hostile_files() -> list[Path]:
    """Every stored input of the hostile corpus (its ``expected.yaml`` files left out)."""
    return sorted(p for p in HOSTILE.glob("*/*") if p.is_file() and p.name != "expected.yaml")


def hostile_secrets() -> list[PhiValue]:
    """The sender-chosen strings the corpus expectations list under ``secrets``: never to be echoed."""
    found = []
    for expected in sorted(HOSTILE.glob("*/expected.yaml")):
        for name, spec in (yaml.safe_load(expected.read_text(encoding="utf-8")) or {}).items():
            found += [
                PhiValue(str(s), "secret", f"{expected.parent.name}/{name}") for s in (spec or {}).get("secrets", [])
            ]
    return found
