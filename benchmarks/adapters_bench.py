"""Adapters: messages/s and resources/s of the inbound adapters, against the floor of their group.

HL7 v2 (one synthetic RAS^O17/ADT^A03 corpus, per message): the project's ``parse_hl7`` vs
python-hl7 ``hl7.parse`` vs hl7apy ``parse_message`` (TOLERANT, ``find_groups=False``, its
faster mode; ~30–90 msg/s, so on the first messages of the corpus only) vs the physical floor,
a bare split of the decoded message on its segment and field separators.

FHIR R4 MedicationAdministration (per resource): ``parse_fhir`` vs ``fhir.resources`` R4B
``MedicationAdministration.model_validate`` on the same (already decoded) documents vs the
floor, ``json.loads``. ``parse_fhir`` memoises the validation of repeated sub-elements, so
it is measured twice:

- ``stream``: each round reads a fresh corpus (another seed) once, as a live feed would: routes,
  methods, drugs and doses repeat and hit the memo; metas, periods and references mostly don't.
- ``cold``: every element of every document carries a unique element ``id`` (valid FHIR that
  changes nothing the adapter reads), so no sub-element ever repeats and the memo never hits.
  Its floor is ``json.loads`` of the same, slightly larger, cold documents.

Every figure is the best of N interleaved rounds (machines are shared; the best round is the
least disturbed one). Ratios are rate / floor rate of the same run: 1.0 is the floor.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta, timezone
from typing import Any

import orjson
from fhir.resources.R4B.medicationadministration import MedicationAdministration

from connector.adapters.fhir import parse_fhir
from connector.adapters.hl7v2 import parse_hl7
from connector.policy.loader import load_policy
from connector.synth.render import records

try:
    import hl7  # python-hl7 (PyPI: hl7), a benchmark-only comparison
except ImportError:  # pragma: no cover - reported as "not installed"
    hl7 = None
try:
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message
except ImportError:  # pragma: no cover
    parse_message = None

ZONE = timezone(timedelta(hours=-5))
HL7_SEED, FHIR_SEED, WARM_SEED = 101, 201, 999


def _hl7_corpus(encounters: int) -> list[bytes]:
    return [record.rstrip(b"\n") for record in records("hl7", HL7_SEED, encounters)]


def _fhir_corpus(seed: int, encounters: int) -> list[bytes]:
    return [line.rstrip(b"\n") for line in records("fhir", seed, encounters) if b'"MedicationAdministration"' in line]


def _with_element_ids(value: Any, tag: str, path: str = "") -> Any:
    """A copy where every complex element below the root has a unique ``id``."""
    if isinstance(value, dict):
        out = {key: _with_element_ids(item, tag, f"{path}.{key}") for key, item in value.items()}
        if path:
            out["id"] = f"{tag}{path.replace('.', '-').replace('[', '-').replace(']', '')}"
        return out
    if isinstance(value, list):
        return [_with_element_ids(item, tag, f"{path}[{i}]") for i, item in enumerate(value)]
    return value


def _cold(documents: list[bytes], round_number: int) -> list[bytes]:
    return [
        orjson.dumps(_with_element_ids(orjson.loads(doc), f"r{round_number}n{n}")) for n, doc in enumerate(documents)
    ]


def repeated_elements(documents: list[bytes]) -> tuple[int, int]:
    """(sub-elements, of which repeats of an earlier one) over a corpus, by canonical JSON."""
    seen: Counter[bytes] = Counter()

    def walk(value: Any, root: bool) -> None:
        if isinstance(value, dict):
            if not root:
                seen[orjson.dumps(value, option=orjson.OPT_SORT_KEYS)] += 1
            for item in value.values():
                walk(item, False)
        elif isinstance(value, list):
            for item in value:
                walk(item, False)

    for doc in documents:
        walk(orjson.loads(doc), True)
    total = sum(seen.values())
    return total, total - len(seen)


def _seconds(fn: Callable[[Any], object], items: list[Any]) -> float:
    started = time.perf_counter()
    for item in items:
        fn(item)
    return time.perf_counter() - started


def _bare_split(raw: bytes) -> list[list[str]]:
    return [segment.split("|") for segment in raw.decode().split("\r")]


def _hl7apy_parse(raw: bytes) -> object:
    return parse_message(raw.decode(), validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)


def _hl7_candidates(policy: Any) -> Iterator[tuple[str, Callable[[bytes], object], bool]]:
    """(name, parse one message, runs on the small subset only)."""
    yield "bare split (floor)", _bare_split, False
    yield "ivpush parse_hl7", lambda raw: parse_hl7(raw, policy, ZONE), False
    if hl7 is not None:
        yield "python-hl7 hl7.parse", lambda raw: hl7.parse(raw.decode()), False
    if parse_message is not None:
        yield "hl7apy parse_message", _hl7apy_parse, True


def _hl7(policy: Any, encounters: int, subset: int, rounds: int) -> dict[str, Any]:
    corpus = _hl7_corpus(encounters)
    candidates = list(_hl7_candidates(policy))
    best: dict[str, float] = {}
    for _, fn, small in candidates:  # warm up: imports, caches, first-call costs
        fn(corpus[0])
        _seconds(fn, corpus[:subset] if small else corpus[:200])
    for _ in range(rounds):
        for name, fn, small in candidates:
            items = corpus[:subset] if small else corpus
            best[name] = min(best.get(name, float("inf")), _seconds(fn, items) / len(items))
    floor = best["bare split (floor)"]
    result: dict[str, Any] = {
        "corpus_messages": len(corpus),
        "subset_messages": subset,
        "mean_message_bytes": round(sum(map(len, corpus)) / len(corpus)),
        "rounds": rounds,
    }
    for name, _, small in candidates:
        result[name] = {
            "per_s": round(1 / best[name]),
            "us_per_item": round(best[name] * 1e6, 1),
            "messages": subset if small else len(corpus),
            "baseline": "bare split (floor)",
            "baseline_per_s": round(1 / floor),
            "ratio_to_floor": round(floor / best[name], 4),
        }
    for name in ("python-hl7 hl7.parse", "hl7apy parse_message"):
        if name not in result:
            result[name] = {"skipped": "not installed"}
    return result


def _fhir(policy: Any, encounters: int, rounds: int) -> dict[str, Any]:
    validate = MedicationAdministration.model_validate
    warm = _fhir_corpus(WARM_SEED, max(encounters // 4, 5))
    for doc in warm:  # imports, pydantic's first-use costs, a memo as a running consumer has it
        parse_fhir(doc, policy)
        validate(json.loads(doc))
    best: dict[str, float] = {}
    facts: dict[str, Any] = {}
    for round_number in range(rounds):
        stream = _fhir_corpus(FHIR_SEED + round_number, encounters)
        cold = _cold(_fhir_corpus(FHIR_SEED + 100 + round_number, encounters), round_number)
        if round_number == 0:
            for label, docs in (("stream", stream), ("cold", cold)):
                total, repeated = repeated_elements(docs)
                facts[f"{label}_resources_per_round"] = len(docs)
                facts[f"{label}_mean_resource_bytes"] = round(sum(map(len, docs)) / len(docs))
                facts[f"{label}_sub_elements_repeated"] = f"{repeated} of {total}"
        stream_dicts = [json.loads(doc) for doc in stream]
        cold_dicts = [json.loads(doc) for doc in cold]
        plan: list[tuple[str, Callable[[Any], object], list[Any]]] = [
            ("json.loads (floor)", json.loads, stream),
            ("orjson.loads", orjson.loads, stream),
            ("ivpush parse_fhir, stream", lambda doc: parse_fhir(doc, policy), stream),
            ("fhir.resources model_validate", validate, stream_dicts),
            ("json.loads, cold docs (floor)", json.loads, cold),
            ("ivpush parse_fhir, cold", lambda doc: parse_fhir(doc, policy), cold),
            ("fhir.resources model_validate, cold docs", validate, cold_dicts),
        ]
        for name, fn, items in plan:
            best[name] = min(best.get(name, float("inf")), _seconds(fn, items) / len(items))
    result: dict[str, Any] = {**facts, "rounds": rounds}
    for name, per_item in best.items():
        floor_name = "json.loads, cold docs (floor)" if "cold" in name else "json.loads (floor)"
        result[name] = {
            "per_s": round(1 / per_item),
            "us_per_item": round(per_item * 1e6, 1),
            "baseline": floor_name,
            "baseline_per_s": round(1 / best[floor_name]),
            "ratio_to_floor": round(best[floor_name] / per_item, 4),
        }
    return result


def run(quick: bool = False) -> dict[str, Any]:
    """Measure and return the adapter figures."""
    policy = load_policy()
    if quick:
        return {"hl7": _hl7(policy, 40, 15, 3), "fhir": _fhir(policy, 30, 3)}
    return {"hl7": _hl7(policy, 200, 100, 5), "fhir": _fhir(policy, 150, 5)}


def rows(results: dict[str, Any]) -> Iterator[tuple[str, str, int, str, int, float, str]]:
    """Table rows: (group, benchmark, items/s, baseline, baseline/s, ratio, note)."""
    for group, unit in (("hl7", "msg"), ("fhir", "res")):
        for name, row in results[group].items():
            if not isinstance(row, dict):
                continue
            if "skipped" in row:
                yield f"adapters {group}", name, 0, "", 0, 0.0, row["skipped"]
                continue
            note = f"{row['us_per_item']} us/{unit}"
            if "messages" in row and row["messages"] != results[group]["corpus_messages"]:
                note += f", first {row['messages']} msgs"
            yield (
                f"adapters {group}",
                name,
                row["per_s"],
                row["baseline"],
                row["baseline_per_s"],
                row["ratio_to_floor"],
                note,
            )
