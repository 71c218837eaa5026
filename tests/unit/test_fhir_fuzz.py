"""FHIR adapter fuzzing: only AdapterError subclasses may escape ``read_fhir``, for any bytes.

Inputs per run (each hypothesis example is a batch drawn from its seeded ``randoms()``):
structural JSON mutations 400 x 24 = 9,600, byte mutations 250 x 24 = 6,000, random bytes
150 x 8 = 1,200: 16,800 in all, plus 150 checks that the memoised validation agrees with one
plain fhir.resources ``model_validate`` call. The mutators are plain functions of the seeded
generator, so they cost microseconds, not hypothesis draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connector.adapters.errors import AdapterError, InvalidFhir
from connector.adapters.fhir import is_r5, read_fhir
from connector.adapters.fhir.validate import R4B, R5, validate, validate_plain
from connector.model import ParsedRecord
from connector.policy.loader import load_policy

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "fhir"
RAWS = tuple(p.read_bytes() for p in sorted([*SAMPLES.glob("*.json"), *SAMPLES.glob("paired/paired-*.json")]))
DOCS = tuple(d for d in (orjson.loads(r) for r in RAWS if r.lstrip().startswith(b"{")) if isinstance(d, dict))
POLICY = load_policy()  # module level: hypothesis tests do not take function-scoped fixtures
FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)
STRUCTURAL = (400, 24)  # (examples, inputs per example)
BYTES = (250, 24)
RANDOM = (150, 8)
EQUIVALENCE = 150
TARGET_TYPES = ("MedicationAdministration", "Encounter")

RESOURCE_TYPES = (
    "Patient",
    "Bundle",
    "Medication",
    "MedicationGiven",
    "MedicationAdministration",
    "Encounter",
    "Coding",
)
TIMES = (
    "2026",
    "2026-03",
    "2026-03-02",
    "2026-03-02T09:00:00",
    "2026-03-02T09:00:00Z",
    "2026-03-02T09:00:60Z",
    "2026-13-45T99:99:99Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "",
    " ",
)
JSON_IN_STRINGS = ("5", "[1]", "null", '"x"', "{}", "true", '{"text": "x"}')  # fhir.resources parses these
WORDS = (
    *JSON_IN_STRINGS,
    "completed",
    "given",
    "not-done",
    "finished",
    "#med1",
    "Encounter/x",
    "urn:uuid:1",
    "h",
    "min",
    "\u0000",
    "é",
)
KEYS = ("foo", "_status", "occurrenceDateTime", "encounter", "context", "class", "resourceType", "extension")


class Rng(Protocol):
    """The part of ``random.Random`` the mutators use (hypothesis ``randoms()`` provides it)."""

    def random(self) -> float: ...
    def randrange(self, start: int, stop: int = ...) -> int: ...
    def getrandbits(self, k: int) -> int: ...


def pick(rng: Rng, items: Sequence[Any]) -> Any:
    return items[rng.randrange(len(items))]


def scalar(rng: Rng) -> Any:
    kind = rng.randrange(8)
    if kind == 0:
        return None
    if kind == 1:
        return bool(rng.getrandbits(1))
    if kind == 2:
        return rng.getrandbits(64) - (1 << 63)
    if kind == 3:
        return (rng.random() - 0.5) * 10.0 ** rng.randrange(-5, 300)
    if kind == 4:
        return "".join(chr(rng.randrange(1, 0x2FF)) for _ in range(rng.randrange(12)))
    if kind == 5:
        return pick(rng, TIMES)
    return pick(rng, WORDS)


def value(rng: Rng) -> Any:
    kind = rng.randrange(7)
    if kind == 0:
        return []
    if kind == 1:
        return {}
    if kind == 2:
        return [scalar(rng) for _ in range(rng.randrange(4))]
    if kind == 3:
        return {pick(rng, ("reference", "code", "system", "text", "value", "start", "id")): scalar(rng)}
    if kind == 4:
        return {"resourceType": pick(rng, RESOURCE_TYPES), "id": "x1"}
    return scalar(rng)


def places(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside the document (dict keys and list indexes)."""
    found: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        for key, item in node.items():
            found.append((*path, key))
            found.extend(places(item, (*path, key)))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            found.append((*path, i))
            found.extend(places(item, (*path, i)))
    return found


PLACES = tuple(tuple(places(d)) for d in DOCS)


def mutate_doc(rng: Rng, fewest: int = 1) -> bytes:
    """A sample with ``fewest``–3 structural mutations (drop, replace, retype, rename, wrap, time, stringify)."""
    index = rng.randrange(len(DOCS))
    doc = orjson.loads(orjson.dumps(DOCS[index]))
    known: Sequence[tuple[Any, ...]] = PLACES[index]
    for _ in range(fewest + rng.randrange(4 - fewest)):
        if not known:
            break
        path = pick(rng, known)
        parent: Any = doc
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        op = rng.randrange(8)
        if op == 0:
            del parent[last]
        elif op == 1:
            parent[last] = value(rng)
        elif op == 2:
            item = parent[last]
            parent[last] = [item] if not isinstance(item, list) else (item[0] if item else {})
        elif op == 3:
            target = parent if isinstance(parent, dict) else doc
            target["resourceType"] = pick(rng, RESOURCE_TYPES) if rng.random() < 0.7 else scalar(rng)
        elif op == 4 and isinstance(parent, dict):
            parent[pick(rng, KEYS)] = value(rng)
        elif op == 5:
            parent[last] = {"extension": [{"url": "http://x", "valueString": "a"}], "value": parent[last]}
        elif op == 6:
            parent[last] = pick(rng, TIMES)
        else:  # an element as JSON text: fhir.resources parses it, the adapter must reject it
            parent[last] = orjson.dumps(parent[last]).decode()
        known = places(doc)
    return orjson.dumps(doc)


def mutate_bytes(rng: Rng) -> bytes:
    """A sample's bytes truncated, flipped, with bytes inserted, deleted or spliced."""
    raw = bytearray(pick(rng, RAWS))
    at = rng.randrange(max(len(raw), 1))
    op = rng.randrange(5)
    if op == 0:
        del raw[at:]
    elif op == 1 and raw:
        raw[at] ^= 1 << rng.randrange(8)
    elif op == 2:
        raw[at:at] = bytes(rng.randrange(256) for _ in range(1 + rng.randrange(8)))
    elif op == 3:
        del raw[at : at + 1 + rng.randrange(16)]
    else:
        raw[at:at] = pick(rng, RAWS)[: rng.randrange(200)]
    return bytes(raw)


def check(raw: bytes) -> None:
    try:
        found = read_fhir(raw, POLICY, "fuzz")
    except AdapterError:
        return
    assert found.records or found.rejects
    for part in found.rejects:
        assert isinstance(part.error, AdapterError) and part.error.detail.startswith(f"Bundle.{part.part}")
    for record in found.records:
        assert isinstance(record, ParsedRecord) and record.dedup_key
        for admin in record.administrations:
            assert isinstance(admin.start, datetime) and admin.start.tzinfo is not None


@settings(FUZZ, max_examples=STRUCTURAL[0])
@given(st.randoms(use_true_random=True))
def test_structural_mutations_raise_only_adapter_errors(rng: Rng) -> None:
    for _ in range(STRUCTURAL[1]):
        check(mutate_doc(rng))


@settings(FUZZ, max_examples=BYTES[0])
@given(st.randoms(use_true_random=True))
def test_byte_mutations_raise_only_adapter_errors(rng: Rng) -> None:
    for _ in range(BYTES[1]):
        check(mutate_bytes(rng))


@settings(FUZZ, max_examples=RANDOM[0])
@given(st.lists(st.binary(max_size=64) | st.text(max_size=64).map(str.encode), min_size=RANDOM[1], max_size=RANDOM[1]))
def test_random_bytes_raise_only_adapter_errors(raws: list[bytes]) -> None:
    for raw in raws:
        check(raw)


def test_every_sample_parses_or_rejects_cleanly() -> None:
    for raw in RAWS:
        check(raw)


@settings(FUZZ, max_examples=EQUIVALENCE)
@given(st.randoms(use_true_random=True))
def test_memoised_validation_agrees_with_plain_fhir_resources(rng: Rng) -> None:
    doc = orjson.loads(mutate_doc(rng, fewest=0))
    if isinstance(doc, dict) and rng.random() < 0.5:
        doc["id"] = f"fuzz{rng.randrange(1 << 30)}"  # a new root over sub-elements the memo may hold
    if not isinstance(doc, dict) or doc.get("resourceType") not in ("MedicationAdministration", "Encounter", "Bundle"):
        return
    entries = doc.get("entry") if doc.get("resourceType") == "Bundle" else None
    targets = [e.get("resource") for e in entries if isinstance(e, dict)] if isinstance(entries, list) else [doc]
    flags = {is_r5(t) for t in targets if isinstance(t, dict) and t.get("resourceType") in TARGET_TYPES}
    version = R5 if flags == {True} else R4B
    try:
        validate_plain(version, orjson.loads(orjson.dumps(doc)))
        plain_ok = True
    except (ValidationError, KeyError, ValueError, TypeError, AttributeError, RecursionError):
        plain_ok = False
    try:
        validate(version, doc, "fuzz")
        memo_ok = True
    except InvalidFhir:
        memo_ok = False
    assert memo_ok == plain_ok
